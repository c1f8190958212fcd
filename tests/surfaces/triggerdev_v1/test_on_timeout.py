"""``onTimeout`` on the v1 API: accepted on create, shown on the token, bad values refused."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, bad_dates, nulls, url_of
from tokens.domain import lifecycle
from tokens.models import Token

pytestmark = pytest.mark.django_db


def stored(token_id: str) -> Token:
    return Token.objects.get(pk=token_id.removeprefix("waitpoint_"))


def test_a_rejection_at_the_deadline_reads_as_a_decision(api_client):
    created = api_client.post(TOKENS, {"timeout": "1h", "onTimeout": "reject"}, format="json")
    token_id = created.json()["id"]
    assert api_client.get(url_of(token_id)).json()["onTimeout"] == {"action": "reject"}
    Token.objects.filter(pk=stored(token_id).pk).update(
        timeout_at=timezone.now() - timedelta(seconds=1)
    )
    for swept in (False, True):
        if swept:
            assert lifecycle.token_expire_due() == 1
        body = api_client.get(url_of(token_id)).json()
        assert (body["status"], body["statusDetail"], body["outputIsError"]) == (
            "COMPLETED",
            "COMPLETED",
            False,
        )
        assert body["outputType"] == "application/super+json"
        output = json.loads(body["output"])["json"]
        assert output["status"] == "rejected" and output["by"] == "deadline rule"
        assert body["completedAt"] == body["timeoutAt"]
        listed = api_client.get(TOKENS, {"filter[status]": "COMPLETED"}).json()["data"]
        assert [item["id"] for item in listed] == [token_id]
        assert api_client.get(TOKENS, {"filter[status]": "TIMED_OUT"}).json()["data"] == []


def test_an_escalation_shows_both_deadlines(api_client):
    spec = {"action": "escalate", "escalateTo": ["lead@example.com"], "timeout": "90m"}
    response = api_client.post(TOKENS, {"timeout": "1h", "onTimeout": spec}, format="json")
    assert response.status_code == 200, response.content
    body = api_client.get(url_of(response.json()["id"])).json()
    assert body["onTimeout"] == {**spec, "timeout": "1h30m", "then": "timeout"}
    timeout_at = timezone.datetime.fromisoformat(body["timeoutAt"].replace("Z", "+00:00"))
    escalates = timezone.datetime.fromisoformat(body["escalatesAt"].replace("Z", "+00:00"))
    assert timeout_at - escalates == timedelta(minutes=90)
    assert not nulls(body) and not bad_dates(body)


@pytest.mark.parametrize(
    "value",
    [None, "later", {"action": "escalate"}, ["reject"], {"action": "reject", "timeout": "1h"}],
)
def test_bad_values_are_a_400_and_create_nothing(api_client, value):
    response = api_client.post(TOKENS, {"timeout": "1h", "onTimeout": value}, format="json")
    body = assert_error(response, 400)
    assert body["error"].startswith("Invalid onTimeout")
    assert not Token.objects.exists()
