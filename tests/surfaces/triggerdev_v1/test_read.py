"""GET …/tokens/{id} and GET …/tokens: shapes, scoping, pagination and filters."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, bad_dates, nulls, url_of
from tokens.domain import actors, lifecycle
from tokens.models import Token

SYSTEM = actors.Actor.system()


def ids(body):
    return [item["id"] for item in body["data"]]


def get_list(client, params):
    response = client.get(TOKENS, params)
    assert response.status_code == 200, response.content
    return response.json()


# ------------------------------------------------------------------------------------------------
# Retrieve
# ------------------------------------------------------------------------------------------------


def test_it_retrieves_a_waiting_token(api_client, make_token):
    token = make_token(tags=["a", "b"], idempotency_key="k1")
    response = api_client.get(url_of(token))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == token.friendly_id
    assert body["status"] == "WAITING"
    assert body["statusDetail"] == "WAITING"
    assert body["tags"] == ["a", "b"]
    assert body["idempotencyKey"] == "k1"
    assert body["outputType"] == "application/json"
    assert body["outputIsError"] is False
    assert body["timeoutAt"] == body["completedAfter"]
    assert "output" not in body and "completedAt" not in body and "cancelledAt" not in body
    assert nulls(body) == [] and bad_dates(body) == []
    assert body["url"].startswith("http://testserver/api/v1/waitpoints/tokens/")


def test_retrieve_always_says_type_and_whose_idempotency_key_it_is(api_client, make_token):
    # Upstream's ApiWaitpointPresenter always sends type, idempotencyKey (a random 24-character
    # one when the caller gave none) and userProvidedIdempotencyKey.
    keyed = api_client.get(url_of(make_token(idempotency_key="k1"))).json()
    assert keyed["type"] == "MANUAL"
    assert (keyed["idempotencyKey"], keyed["userProvidedIdempotencyKey"]) == ("k1", True)
    assert "inactiveIdempotencyKey" not in keyed
    token = make_token()
    plain = api_client.get(url_of(token)).json()
    assert plain["type"] == "MANUAL"
    assert plain["userProvidedIdempotencyKey"] is False
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", plain["idempotencyKey"])
    # The same on every read, different for every token, and never one a caller gave.
    assert api_client.get(url_of(token)).json()["idempotencyKey"] == plain["idempotencyKey"]
    other = api_client.get(url_of(make_token())).json()["idempotencyKey"]
    assert other != plain["idempotencyKey"]
    assert get_list(api_client, {"filter[idempotencyKey]": plain["idempotencyKey"]})["data"] == []
    # List items carry the caller's key only (upstream's WaitpointListPresenter).
    listed = {item["id"]: item for item in get_list(api_client, {})["data"]}
    assert "idempotencyKey" not in listed[token.friendly_id]
    assert "type" not in listed[token.friendly_id]


def test_retrieve_of_a_rotated_key_shows_it_as_inactive(api_client, environment):
    now = timezone.now()
    first = lifecycle.token_create(
        environment=environment,
        actor=SYSTEM,
        idempotency_key="k",
        idempotency_key_ttl="1m",
        now=now - timedelta(minutes=5),
    ).token
    second = lifecycle.token_create(environment=environment, actor=SYSTEM, idempotency_key="k")
    assert second.token.pk != first.pk
    old = api_client.get(url_of(first)).json()
    assert old["inactiveIdempotencyKey"] == "k"
    assert old["userProvidedIdempotencyKey"] is True
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", old["idempotencyKey"])
    new = api_client.get(url_of(second.token)).json()
    assert new["idempotencyKey"] == "k" and "inactiveIdempotencyKey" not in new
    listed = {i["id"]: i for i in get_list(api_client, {"filter[idempotencyKey]": "k"})["data"]}
    assert {i["idempotencyKey"] for i in listed.values()} == {"k"}  # the caller's, as upstream


def test_it_retrieves_by_bare_id(api_client, make_token):
    token = make_token()
    assert api_client.get(url_of(token.pk)).json()["id"] == token.friendly_id


def test_it_retrieves_a_completed_token_with_its_output(api_client, make_token):
    token = make_token()
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"status": "approved"})
    body = api_client.get(url_of(token)).json()
    assert body["status"] == "COMPLETED"
    assert body["output"] == '{"json":{"status":"approved"}}'
    assert body["outputType"] == "application/super+json"
    assert body["outputIsError"] is False
    assert "completedAt" in body
    assert nulls(body) == [] and bad_dates(body) == []


def test_it_never_emits_nulls_for_a_token_without_timeout_or_key(api_client, make_token, settings):
    settings.WAITPOINTS_DEFAULT_TIMEOUT = ""
    token = make_token()
    body = api_client.get(url_of(token)).json()
    assert "timeoutAt" not in body and "idempotencyKeyExpiresAt" not in body
    assert "completedAfter" not in body
    assert body["tags"] == []
    assert nulls(body) == []
    listed = api_client.get(TOKENS).json()
    assert nulls(listed) == [] and bad_dates(listed) == []


def test_it_retrieves_a_cancelled_token_as_timed_out(api_client, make_token):
    token = make_token()
    lifecycle.token_cancel(token=token, actor=SYSTEM, reason="dup")
    body = api_client.get(url_of(token)).json()
    assert body["status"] == "TIMED_OUT"
    assert body["statusDetail"] == "CANCELLED"
    assert body["outputIsError"] is True
    assert json.loads(body["output"]) == {
        "code": "WAITPOINT_CANCELLED",
        "message": "Cancelled: dup",
    }
    assert "cancelledAt" in body and bad_dates(body) == []


def test_it_retrieves_an_overdue_token_as_timed_out(api_client, environment):
    past = timezone.now() - timedelta(minutes=5)
    token = lifecycle.token_create(
        environment=environment, actor=SYSTEM, timeout="1m", now=past
    ).token
    body = api_client.get(url_of(token)).json()
    assert body["status"] == "TIMED_OUT"
    assert body["completedAt"] == body["timeoutAt"]
    assert json.loads(body["output"])["code"] == "TRIGGER_WAITPOINT_TIMEOUT"
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING


@pytest.mark.parametrize(
    "token_id",
    [
        "waitpoint_cdoesnotexist000000000000",
        "waitpoint_a_b",
        "waitpoint_ABC",
        "waitpoint_",
        "x" * 41,
        "%20",
        "waitpoint_c'or'1'='1",
    ],
)
def test_it_answers_404_for_unknown_or_malformed_ids(api_client, make_token, token_id):
    make_token()
    assert_error(api_client.get(url_of(token_id)), 404, "Waitpoint not found")


def test_it_hides_another_environments_token(api_client, other_api_client, make_token):
    token = make_token()
    assert_error(other_api_client.get(url_of(token)), 404, "Waitpoint not found")
    assert api_client.get(url_of(token)).status_code == 200


# ------------------------------------------------------------------------------------------------
# List
# ------------------------------------------------------------------------------------------------


def test_it_lists_newest_first(api_client, make_token):
    made = []
    for _ in range(3):
        made.append(make_token().friendly_id)
        time.sleep(0.002)  # ids are time-ordered to the millisecond
    body = get_list(api_client, {})
    assert ids(body) == list(reversed(made))
    assert body["pagination"] == {}
    assert nulls(body) == [] and bad_dates(body) == []
    assert all("output" not in item for item in body["data"])


def test_it_pages_by_25_by_default_and_100_at_most(api_client, environment):
    tokens = [
        lifecycle.token_create(environment=environment, actor=SYSTEM).token for _ in range(105)
    ]
    assert len(tokens) == 105
    body = get_list(api_client, {})
    assert len(body["data"]) == 25
    assert "next" in body["pagination"]
    assert len(get_list(api_client, {"page[size]": "100"})["data"]) == 100
    assert len(get_list(api_client, {"page[size]": "1"})["data"]) == 1


def test_it_walks_all_pages_forward_and_backward(api_client, environment):
    expected = sorted(
        (
            lifecycle.token_create(environment=environment, actor=SYSTEM).token.friendly_id
            for _ in range(23)
        ),
        reverse=True,
    )
    pages = [get_list(api_client, {"page[size]": "5"})]
    assert "previous" not in pages[0]["pagination"]
    while "next" in pages[-1]["pagination"]:
        pages.append(
            get_list(
                api_client, {"page[size]": "5", "page[after]": pages[-1]["pagination"]["next"]}
            )
        )
    forward = [item for page in pages for item in ids(page)]
    assert forward == expected  # no duplicates, no gaps, newest first
    assert [len(page["data"]) for page in pages] == [5, 5, 5, 5, 3]
    assert "next" not in pages[-1]["pagination"]
    assert all(nulls(page) == [] for page in pages)

    back = [pages[-1]]
    while "previous" in back[-1]["pagination"]:
        back.append(
            get_list(
                api_client, {"page[size]": "5", "page[before]": back[-1]["pagination"]["previous"]}
            )
        )
    assert [ids(page) for page in reversed(back)] == [ids(page) for page in pages]


def test_it_has_no_next_on_an_exactly_full_last_page(api_client, make_token):
    for _ in range(4):
        make_token()
    first = get_list(api_client, {"page[size]": "2"})
    second = get_list(api_client, {"page[size]": "2", "page[after]": first["pagination"]["next"]})
    assert len(second["data"]) == 2
    assert "next" not in second["pagination"]
    assert second["pagination"]["previous"] == second["data"][0]["id"].removeprefix("waitpoint_")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page[size]", "0"),
        ("page[size]", "101"),
        ("page[size]", "abc"),
        ("page[size]", "-1"),
        ("page[size]", "1e9"),
        ("page[size]", ""),
        ("page[after]", "not-a-cursor!"),
        ("page[before]", "c' OR 1=1 --"),
        ("page[after]", "x" * 500),
        ("filter[status]", "BOGUS"),
        ("filter[status]", "WAITING,BOGUS"),
        ("filter[status]", "waiting"),
        ("filter[createdAt][period]", "forever"),
        ("filter[createdAt][from]", "yesterday"),
        ("filter[createdAt][to]", "2025-13-45"),
    ],
)
def test_it_rejects_a_bad_query(api_client, make_token, param, value):
    make_token()
    body = assert_error(api_client.get(TOKENS, {param: value}), 400, "Query Error")
    assert isinstance(body["details"], list) and body["details"]
    assert any(param in json.dumps(issue) for issue in body["details"])


def test_it_never_lists_another_environments_tokens(
    api_client, other_api_client, make_token, other_environment
):
    mine = make_token(tags=["shared"], idempotency_key="same")
    theirs = make_token(env=other_environment, tags=["shared"], idempotency_key="same")
    assert ids(get_list(api_client, {})) == [mine.friendly_id]
    assert ids(get_list(other_api_client, {})) == [theirs.friendly_id]
    for params in ({"filter[tags]": "shared"}, {"filter[idempotencyKey]": "same"}):
        assert ids(get_list(api_client, params)) == [mine.friendly_id]
    # A cursor taken from another environment's id shows nothing of theirs either.
    assert ids(get_list(api_client, {"page[before]": "c0"})) == [mine.friendly_id]


@pytest.fixture
def mixed(environment):
    now = timezone.now()

    def create(**kwargs):
        return lifecycle.token_create(environment=environment, actor=SYSTEM, **kwargs).token

    waiting = create(timeout="1h")
    overdue = create(timeout="1m", now=now - timedelta(minutes=5))
    completed = create()
    lifecycle.token_complete(token=completed, actor=SYSTEM, data="ok")
    cancelled = create()
    lifecycle.token_cancel(token=cancelled, actor=SYSTEM, reason="no")
    forced = create()
    lifecycle.token_force_timeout(token=forced, actor=SYSTEM)
    return {
        "waiting": waiting.friendly_id,
        "overdue": overdue.friendly_id,
        "completed": completed.friendly_id,
        "cancelled": cancelled.friendly_id,
        "forced": forced.friendly_id,
    }


@pytest.mark.parametrize(
    ("status", "names"),
    [
        ("WAITING", {"waiting"}),
        ("COMPLETED", {"completed"}),
        ("TIMED_OUT", {"overdue", "cancelled", "forced"}),
        ("CANCELLED", {"cancelled"}),
        ("WAITING,COMPLETED", {"waiting", "completed"}),
        ("WAITING,WAITING", {"waiting"}),
    ],
)
def test_it_filters_by_status(api_client, mixed, status, names):
    body = get_list(api_client, {"filter[status]": status})
    assert set(ids(body)) == {mixed[name] for name in names}
    assert len(ids(body)) == len(names)


def test_it_shows_overdue_and_cancelled_tokens_as_timed_out_in_the_list(api_client, mixed):
    items = {item["id"]: item for item in get_list(api_client, {})["data"]}
    assert items[mixed["overdue"]]["status"] == "TIMED_OUT"
    assert items[mixed["cancelled"]]["status"] == "TIMED_OUT"
    assert items[mixed["cancelled"]]["statusDetail"] == "CANCELLED"
    assert items[mixed["waiting"]]["status"] == "WAITING"
    assert {item["status"] for item in items.values()} <= {"WAITING", "COMPLETED", "TIMED_OUT"}


def test_it_filters_by_any_of_the_tags(api_client, make_token):
    a = make_token(tags=["a", "x"])
    b = make_token(tags=["b"])
    make_token(tags=["c"])
    make_token()
    body = get_list(api_client, {"filter[tags]": "a,b"})
    assert set(ids(body)) == {a.friendly_id, b.friendly_id}
    assert ids(get_list(api_client, {"filter[tags]": "x"})) == [a.friendly_id]
    assert ids(get_list(api_client, {"filter[tags]": "nope"})) == []


def test_it_accepts_a_long_tag_filter(api_client, make_token):
    make_token(tags=["t5"])
    assert (
        len(get_list(api_client, {"filter[tags]": ",".join(f"t{i}" for i in range(100))})["data"])
        == 1
    )
    response = api_client.get(TOKENS, {"filter[tags]": ",".join(f"t{i}" for i in range(1000))})
    assert response.status_code == 400


def test_it_finds_old_and_new_tokens_by_idempotency_key(api_client, environment, make_token):
    past = timezone.now() - timedelta(hours=2)
    old = lifecycle.token_create(
        environment=environment, actor=SYSTEM, idempotency_key="K", now=past
    )
    new = lifecycle.token_create(environment=environment, actor=SYSTEM, idempotency_key="K")
    assert new.is_cached is False and new.token.pk != old.token.pk
    make_token(idempotency_key="other")
    body = get_list(api_client, {"filter[idempotencyKey]": "K"})
    assert set(ids(body)) == {old.token.friendly_id, new.token.friendly_id}
    assert {item["idempotencyKey"] for item in body["data"]} == {"K"}


def test_it_filters_by_creation_time(api_client, environment):
    now = timezone.now()

    def at(delta):
        return lifecycle.token_create(
            environment=environment, actor=SYSTEM, timeout="4w", now=now - delta
        ).token.friendly_id

    recent = at(timedelta(minutes=5))
    yesterday = at(timedelta(hours=30))
    last_week = at(timedelta(days=8))

    assert ids(get_list(api_client, {"filter[createdAt][period]": "1d"})) == [recent]
    assert set(ids(get_list(api_client, {"filter[createdAt][period]": "7d"}))) == {
        recent,
        yesterday,
    }

    millis = int((now - timedelta(days=2)).timestamp() * 1000)
    assert set(ids(get_list(api_client, {"filter[createdAt][from]": str(millis)}))) == {
        recent,
        yesterday,
    }
    iso_from = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    iso_to = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert ids(
        get_list(api_client, {"filter[createdAt][from]": iso_from, "filter[createdAt][to]": iso_to})
    ) == [yesterday]
    to_millis = int((now - timedelta(days=7)).timestamp() * 1000)
    assert ids(get_list(api_client, {"filter[createdAt][to]": str(to_millis)})) == [last_week]
