"""``consume_token``: approve → consume → act, against a live server, and its retries."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from waitpoints_client import (
    AlreadyConsumedError,
    ApprovalExpiredError,
    Client,
    ConsumptionRefusedError,
    NotApprovedError,
)

from tokens.models import Token

pytestmark = pytest.mark.django_db(transaction=True)


def test_approve_consume_act(client: Client) -> None:
    created = client.create_token(timeout="1h", decisionValidFor="15m")
    client.complete_token(created, {"status": "approved", "comment": "go"})
    token = client.retrieve_token(created)
    assert token.decision_valid_for == "15m"
    assert token.decision_expires_at is not None and token.consumed_at is None

    used = client.consume_token(created, consumer="refund-worker")
    assert not used.replayed and used.consumed_by == "refund-worker"
    assert used.output == {"status": "approved", "comment": "go"}
    assert used.consumed_at is not None
    assert client.retrieve_token(created).consumed_at == used.consumed_at

    with pytest.raises(AlreadyConsumedError) as again:
        client.consume_token(created, consumer="another-worker")
    assert again.value.status == 409 and again.value.code == "already_consumed"
    assert again.value.consumed_by == "refund-worker"
    assert again.value.consumed_at == used.consumed_at


def test_the_same_key_replays(client: Client) -> None:
    created = client.create_token(timeout="1h")
    client.complete_token(created, {"status": "approved"})
    first = client.consume_token(created, idempotency_key="job-7")
    again = client.consume_token(created, idempotency_key="job-7")
    assert again.replayed and again.consumed_at == first.consumed_at


def test_refusals_say_why(client: Client) -> None:
    waiting = client.create_token(timeout="1h")
    with pytest.raises(NotApprovedError) as refused:
        client.consume_token(waiting)
    assert refused.value.token_status == "WAITING"

    expired = client.create_token(timeout="1h", decisionValidFor="5m")
    client.complete_token(expired, {"status": "approved"})
    past = timezone.now() - timedelta(seconds=1)
    Token.objects.filter(pk=expired.id.removeprefix("waitpoint_")).update(decision_expires_at=past)
    with pytest.raises(ApprovalExpiredError) as late:
        client.consume_token(expired)
    assert isinstance(late.value, ConsumptionRefusedError)
    assert late.value.decision_expires_at is not None


def test_the_public_access_token_may_consume(client: Client) -> None:
    created = client.create_token(timeout="1h")
    client.complete_token(created, {"status": "approved"})
    used = client.consume_token(created, access_token=created.public_access_token)
    assert used.consumed_by == "public access token (issued on create)"


# -- retries (a scripted transport) --------------------------------------------------------------


def consumed_body(key: str) -> dict:
    return {
        "id": "waitpoint_a",
        "url": "u",
        "status": "COMPLETED",
        "statusDetail": "COMPLETED",
        "tags": [],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "consumedAt": "2026-01-01T00:01:00.000Z",
        "consumedBy": "w",
        "replayed": key == "replay",
    }


def test_a_retry_after_a_lost_answer_sends_the_same_key(monkeypatch) -> None:
    keys: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        keys.append(json.loads(request.content)["idempotencyKey"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset")
        return httpx.Response(200, json=consumed_body("replay"))

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    http = httpx.Client(transport=httpx.MockTransport(transport))
    with Client(base_url="http://waitpoints.test", secret_key="tr_dev_x", http_client=http) as wp:
        assert wp.consume_token("waitpoint_a").replayed
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_a_409_is_not_retried(monkeypatch) -> None:
    calls: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"error": "Already consumed", "code": "already_consumed", "consumedBy": "w"}
        return httpx.Response(409, headers={"x-should-retry": "false"}, json=body)

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    http = httpx.Client(transport=httpx.MockTransport(transport))
    wp = Client(base_url="http://waitpoints.test", secret_key="tr_dev_x", http_client=http)
    with wp, pytest.raises(AlreadyConsumedError) as refused:
        wp.consume_token("waitpoint_a", consumer="me")
    assert len(calls) == 1 and refused.value.consumed_by == "w"
    assert json.loads(calls[0].content)["consumer"] == "me"


def test_on_timeout_reads_back(client: Client) -> None:
    spec = {"action": "escalate", "escalateTo": ["lead@example.com"], "timeout": "2h"}
    created = client.create_token(timeout="1h", onTimeout=spec)
    token = client.retrieve_token(created)
    assert token.on_timeout == {**spec, "then": "timeout"}
    assert token.escalates_at is not None and token.timeout_at is not None
    assert token.timeout_at - token.escalates_at == timedelta(hours=2)
