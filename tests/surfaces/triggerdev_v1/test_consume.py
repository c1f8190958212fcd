"""Decisions valid for a while, used once, on the v1 API: ``decisionValidFor`` on create,
``decisionExpiresAt`` / ``consumedAt`` on the token, and ``POST …/{id}/consume``."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.domain.test_races import run_together
from tests.surfaces.triggerdev_v1.helpers import (
    TOKENS,
    assert_error,
    bad_dates,
    nulls,
    post_raw,
    url_of,
)
from tokens.models import Token, TokenEvent

APPROVED = {"data": {"status": "approved", "comment": "go"}}


def bearer(credential: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


def create(api_client, **body) -> tuple[str, str]:
    """A token through the API: its id and its public access token."""
    response = api_client.post(TOKENS, {"timeout": "1h", **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["id"], response["x-trigger-jwt"]


def approve(api_client, token_id: str) -> None:
    response = api_client.post(url_of(token_id, "/complete"), APPROVED, format="json")
    assert response.status_code == 200 and response.json()["applied"], response.content


def consume(client, token_id: str, body: dict | None = None):
    return client.post(url_of(token_id, "/consume"), body or {}, format="json")


def stored(token_id: str) -> Token:
    return Token.objects.get(pk=token_id.removeprefix("waitpoint_"))


@pytest.mark.django_db
def test_it_shows_the_window_and_when_the_approval_expires(api_client):
    token_id, _ = create(api_client, decisionValidFor="15m")
    waiting = api_client.get(url_of(token_id)).json()
    assert waiting["decisionValidFor"] == "15m"
    assert "decisionExpiresAt" not in waiting and "consumedAt" not in waiting
    approve(api_client, token_id)
    token = stored(token_id)
    assert token.decision_expires_at == token.completed_at + timedelta(minutes=15)
    for item in (api_client.get(url_of(token_id)).json(), api_client.get(TOKENS).json()["data"][0]):
        assert item["decisionExpiresAt"].endswith("Z")
        assert item["decisionValidFor"] == "15m"
        assert "consumedAt" not in item
        assert not nulls(item) and not bad_dates(item)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["soon", "0s", "366d", "", 900, ["15m"], "-5m"])
def test_it_refuses_a_window_that_is_not_a_duration(api_client, value):
    response = api_client.post(TOKENS, {"decisionValidFor": value}, format="json")
    body = assert_error(response, 400)
    assert body["error"].startswith("Invalid decisionValidFor: expected a duration")
    assert Token.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_null_for_the_window(api_client):
    response = api_client.post(TOKENS, {"decisionValidFor": None}, format="json")
    assert_error(
        response, 400, "Invalid decisionValidFor: null is not accepted; omit the field instead."
    )


@pytest.mark.django_db
def test_the_first_consume_succeeds_and_a_later_one_is_a_409_naming_it(api_client):
    token_id, _ = create(api_client, decisionValidFor="10m")
    approve(api_client, token_id)
    first = consume(api_client, token_id, {"consumer": "billing-worker"})
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["replayed"] is False and body["consumedBy"] == "billing-worker"
    assert body["id"] == token_id and body["status"] == "COMPLETED"
    assert json.loads(body["output"]) == {"json": {"status": "approved", "comment": "go"}}
    assert not nulls(body) and not bad_dates(body)
    retrieved = api_client.get(url_of(token_id)).json()
    assert retrieved["consumedAt"] == body["consumedAt"]

    again = consume(api_client, token_id, {"consumer": "someone-else"})
    refused = assert_error(again, 409)
    assert again["x-should-retry"] == "false"
    assert refused["code"] == "already_consumed"
    assert refused["consumedAt"] == body["consumedAt"]
    assert refused["consumedBy"] == "billing-worker"
    assert "by billing-worker" in refused["error"]
    kinds = list(stored(token_id).events.values_list("kind", flat=True))
    assert kinds.count(TokenEvent.Kind.CONSUMED) == 1
    assert kinds.count(TokenEvent.Kind.CONSUME_REFUSED) == 1


@pytest.mark.django_db
def test_without_a_consumer_it_records_the_credential(api_client):
    token_id, _ = create(api_client)
    approve(api_client, token_id)
    response = consume(api_client, token_id)  # no body at all is fine too
    assert response.status_code == 200
    assert response.json()["consumedBy"].startswith("API key tr_dev_")
    event = stored(token_id).events.get(kind=TokenEvent.Kind.CONSUMED)
    assert event.credential == TokenEvent.Credential.SECRET_KEY and event.api_key is not None


@pytest.mark.django_db
def test_the_same_idempotency_key_replays(api_client):
    token_id, _ = create(api_client)
    approve(api_client, token_id)
    first = consume(api_client, token_id, {"idempotencyKey": "attempt-1"}).json()
    again = consume(api_client, token_id, {"idempotencyKey": "attempt-1"})
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["consumedAt"] == first["consumedAt"]
    assert consume(api_client, token_id, {"idempotencyKey": "attempt-2"}).status_code == 409


@pytest.mark.django_db
def test_after_the_window_it_is_its_own_409(api_client):
    token_id, _ = create(api_client, decisionValidFor="5m")
    approve(api_client, token_id)
    past = timezone.now() - timedelta(seconds=1)
    Token.objects.filter(pk=stored(token_id).pk).update(decision_expires_at=past)
    response = consume(api_client, token_id)
    body = assert_error(response, 409)
    assert body["code"] == "approval_expired" and body["decisionExpiresAt"].endswith("Z")
    assert "expired" in body["error"] and "consumedAt" not in body
    assert stored(token_id).consumed_at is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resolve", "status"),
    [
        (None, "WAITING"),
        ({"data": {"status": "rejected"}}, "COMPLETED"),
        ({"data": {"anything": 1}}, "COMPLETED"),
        ("cancel", "CANCELLED"),
    ],
)
def test_a_token_not_approved_is_its_own_409(api_client, resolve, status):
    token_id, _ = create(api_client)
    if resolve == "cancel":
        api_client.post(url_of(token_id, "/cancel"), {}, format="json")
    elif resolve is not None:
        api_client.post(url_of(token_id, "/complete"), resolve, format="json")
    body = assert_error(consume(api_client, token_id), 409)
    assert body["code"] == "not_approved" and body["statusDetail"] == status
    assert stored(token_id).consumed_at is None


@pytest.mark.django_db
def test_the_tokens_public_access_token_may_consume_it_and_no_other(api_client):
    token_id, jwt = create(api_client)
    other_id, _ = create(api_client)
    approve(api_client, token_id)
    approve(api_client, other_id)
    assert consume(bearer(jwt), other_id).status_code == 403
    response = consume(bearer(jwt), token_id, {"consumer": "browser"})
    assert response.status_code == 200, response.content
    event = stored(token_id).events.get(kind=TokenEvent.Kind.CONSUMED)
    assert event.credential == TokenEvent.Credential.PUBLIC_ACCESS_TOKEN
    assert stored(other_id).consumed_at is None


@pytest.mark.django_db
def test_wiring_errors(api_client, other_api_client, anonymous_client):
    token_id, _ = create(api_client)
    approve(api_client, token_id)
    assert_error(consume(other_api_client, token_id), 404, "Waitpoint not found")
    assert_error(consume(api_client, "waitpoint_nope"), 404)
    assert_error(consume(anonymous_client, token_id), 401)
    assert_error(api_client.get(url_of(token_id, "/consume")), 405)
    assert_error(consume(api_client, token_id, {"consumer": 7}), 400)
    assert_error(consume(api_client, token_id, {"consumer": "x" * 301}), 400)
    assert_error(consume(api_client, token_id, {"idempotencyKey": ["k"]}), 400)
    assert_error(post_raw(api_client, url_of(token_id, "/consume"), b"[1]"), 400)
    assert_error(post_raw(api_client, url_of(token_id, "/consume"), b"{nope"), 400)
    assert stored(token_id).consumed_at is None


# ------------------------------------------------------------------------------------------------
# Real concurrent PostgreSQL connections, each request through the full HTTP stack
# ------------------------------------------------------------------------------------------------


def post_consume(secret_key: str, token_id: str, body: dict) -> tuple[int, dict]:
    response = Client().post(
        url_of(token_id, "/consume"),
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret_key}",
    )
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_concurrent_consumes_succeeds(secret_key):
    assert connection.vendor == "postgresql"
    api_client = bearer(secret_key)
    token_id, _ = create(api_client, decisionValidFor="1h")
    approve(api_client, token_id)

    def attempt(index: int):
        return lambda: post_consume(secret_key, token_id, {"consumer": f"worker-{index}"})

    answers = run_together([attempt(i) for i in range(12)])
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 1 and statuses.count(409) == 11, answers
    winner = statuses.index(200)
    assert {body["code"] for status, body in answers if status == 409} == {"already_consumed"}
    token = stored(token_id)
    assert token.consumed_by == f"worker-{winner}"
    assert all(
        body["consumedBy"] == f"worker-{winner}" for status, body in answers if status == 409
    )
    assert token.events.filter(kind=TokenEvent.Kind.CONSUMED).count() == 1
    assert token.events.filter(kind=TokenEvent.Kind.CONSUME_REFUSED).count() == 11


@pytest.mark.django_db(transaction=True)
def test_consumes_racing_the_end_of_the_window_are_before_it_or_refused(secret_key):
    """One token per consume, each window ending at about the same moment; each consume fires
    at its own offset around that moment. A success always lies before the end of the window,
    a refusal after it leaves the token unconsumed, and one sent after the end never wins."""
    api_client = bearer(secret_key)
    offsets = [-0.3, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.3]
    ids = []
    for _ in offsets:
        token_id, _ = create(api_client, decisionValidFor="2s")
        approve(api_client, token_id)
        ids.append(token_id)
    # Every window ends 2 s after its approval; wait from the latest of those ends.
    ends = {token_id: stored(token_id).decision_expires_at for token_id in ids}
    end = max(ends.values())

    def attempt(token_id: str, offset: float):
        def run() -> tuple[int, dict, float]:
            target = (ends[token_id] + timedelta(seconds=offset) - timezone.now()).total_seconds()
            if target > 0:
                time.sleep(target)  # a moment on the clock, not an event to await
            sent = timezone.now()
            status, body = post_consume(secret_key, token_id, {})
            return status, body, (sent - ends[token_id]).total_seconds()

        return run

    answers = run_together([attempt(t, o) for t, o in zip(ids, offsets, strict=True)])
    assert end is not None
    for token_id, (status, body, sent_after_end) in zip(ids, answers, strict=True):
        token = stored(token_id)
        if status == 200:
            assert token.consumed_at is not None and token.consumed_at < token.decision_expires_at
            assert sent_after_end < 0, "a consume sent after the window ended won"
        else:
            assert (status, body["code"]) == (409, "approval_expired"), body
            assert token.consumed_at is None
    assert answers[-1][0] == 409  # sent 0.3 s after its window ended
