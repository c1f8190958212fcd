"""The list renders its page from rows (one SELECT of the columns it shows), not from model
instances: each item must read exactly as ``TokenOutputSerializer(detail=False)`` renders the
token read through the selectors, key order included (the body's bytes), on tokens of every
kind a list can show."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.surfaces.triggerdev_v1.helpers import TOKENS, url_of
from tokens.domain import actors, lifecycle
from tokens.domain.representation import TokenOutputSerializer
from tokens.models import Token
from tokens.persistence import selectors

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()


@pytest.fixture
def varied(api_client, environment) -> set[str]:
    """Tokens of each status and of every optional field, created as the API creates them."""

    def post(**body) -> str:
        response = api_client.post(TOKENS, body, format="json")
        assert response.status_code == 200, response.content
        return response.json()["id"]

    def service(**kwargs) -> Token:
        return lifecycle.token_create(environment=environment, actor=SYSTEM, **kwargs).token

    made = {
        post(timeout="1h", tags=["order:42", "refund", "ünïcødé ✓"]),
        post(timeout="1h", idempotencyKey="refund-42", idempotencyKeyTTL="2h"),
        post(
            timeout="2h",
            title="Ship it? 🚀",
            description="**Markdown** — with “quotes”",
            context={"amount": 5, "who": "Zoë", "nested": {"list": [1, 2.5, None, True]}},
            decision={"approve": "Yes", "reject": "No"},
            requiredApprovals=2,
            requestedBy="bot@example.com",
        ),
        post(
            proposal={"amount": 5},
            proposalSchema={"type": "object", "properties": {"amount": {"type": "integer"}}},
            proposalEditable=["amount"],
        ),
        post(timeout="1h", onTimeout="reject"),
        post(
            timeout="1h",
            onTimeout={"action": "escalate", "escalateTo": ["lead@example.com"], "timeout": "90m"},
        ),
        post(),  # no timeout (settings' default), no tags
    }
    consumed = post(timeout="1h", decisionValidFor="15m")
    approved = {"data": {"status": "approved", "comment": "go"}}
    assert (
        api_client.post(url_of(consumed, "/complete"), approved, format="json").status_code == 200
    )
    assert api_client.post(url_of(consumed, "/consume"), {"consumer": "billing"}, format="json")
    made.add(consumed)

    completed = service(tags=["done"])
    lifecycle.token_complete(token=completed, actor=SYSTEM, data={"ok": "ü"})
    errored = service()
    lifecycle.token_complete(token=errored, actor=SYSTEM, data="boom")
    Token.objects.filter(pk=errored.pk).update(output_is_error=True)  # as a failed task's
    cancelled = service(idempotency_key="cancel-me")
    lifecycle.token_cancel(token=cancelled, actor=SYSTEM, reason="not needed")
    forced = service()
    lifecycle.token_force_timeout(token=forced, actor=SYSTEM)
    now = timezone.now()
    overdue = service(timeout="1m", now=now - timedelta(minutes=5))
    overdue_ruled = service(timeout="1m", on_timeout="approve", now=now - timedelta(minutes=5))
    rotated = service(
        idempotency_key="short", idempotency_key_ttl="1s", now=now - timedelta(hours=1)
    )
    service(idempotency_key="short")  # takes the key over: the first one's is inactive now
    tokens = (completed, errored, cancelled, forced, overdue, overdue_ruled, rotated)
    return made | {token.friendly_id for token in tokens}


def test_each_list_item_reads_as_the_serializer_renders_the_model(api_client, environment, varied):
    response = api_client.get(TOKENS, {"page[size]": "100"})
    assert response.status_code == 200
    items = response.json()["data"]
    assert varied <= {item["id"] for item in items}
    models = {t.friendly_id: t for t in selectors.token_list(environment=environment)}
    serializer = TokenOutputSerializer(now=timezone.now(), base="http://testserver", detail=False)
    for item in items:
        expected = serializer.to_representation(models[item["id"]])
        assert json.dumps(item) == json.dumps(expected), item["id"]
    statuses = {(item["status"], item["statusDetail"]) for item in items}
    assert statuses == {
        ("WAITING", "WAITING"),
        ("COMPLETED", "COMPLETED"),
        ("TIMED_OUT", "TIMED_OUT"),
        ("TIMED_OUT", "CANCELLED"),
    }


@pytest.mark.parametrize(
    "query",
    [
        {"filter[status]": "TIMED_OUT"},
        {"filter[status]": "COMPLETED"},
        {"filter[status]": "WAITING,CANCELLED"},
        {"filter[tags]": "refund,done"},
        {"filter[idempotencyKey]": "short"},
        {"page[size]": "3"},
    ],
)
def test_filtered_pages_read_as_the_serializer_renders_them(api_client, environment, varied, query):
    items = api_client.get(TOKENS, query).json()["data"]
    assert items
    serializer = TokenOutputSerializer(now=timezone.now(), base="http://testserver", detail=False)
    for item in items:
        token = selectors.token_get_for_environment(environment=environment, token_id=item["id"])
        assert json.dumps(item) == json.dumps(serializer.to_representation(token)), item["id"]


def test_a_status_filter_of_several_parts_walks_every_page_both_ways(api_client, environment):
    """TIMED_OUT reads three parts (stored TIMED_OUT, overdue WAITING, CANCELLED), each its own
    ordered slice of a UNION ALL: interleaved by id, they page with no gap or duplicate."""
    now = timezone.now()
    expected = []
    for index in range(13):
        kind = index % 4
        token = lifecycle.token_create(
            environment=environment,
            actor=SYSTEM,
            timeout="1m" if kind == 1 else "1h",
            now=now - timedelta(minutes=5) if kind == 1 else None,
        ).token
        if kind == 0:
            lifecycle.token_force_timeout(token=token, actor=SYSTEM)
        elif kind == 2:
            lifecycle.token_cancel(token=token, actor=SYSTEM)
        if kind != 3:  # kind 3 stays WAITING: not in the list
            expected.append(token.friendly_id)
    expected.sort(reverse=True)
    query = {"page[size]": "3", "filter[status]": "TIMED_OUT"}

    def page(**cursor: str) -> dict:
        response = api_client.get(TOKENS, {**query, **cursor})
        assert response.status_code == 200, response.content
        return response.json()

    pages = [page()]
    while "next" in pages[-1]["pagination"]:
        pages.append(page(**{"page[after]": pages[-1]["pagination"]["next"]}))
    assert [item["id"] for p in pages for item in p["data"]] == expected
    assert [len(p["data"]) for p in pages] == [3, 3, 3, 1]
    back = [pages[-1]]
    while "previous" in back[-1]["pagination"]:
        back.append(page(**{"page[before]": back[-1]["pagination"]["previous"]}))
    assert [p["data"] for p in reversed(back)] == [p["data"] for p in pages]
