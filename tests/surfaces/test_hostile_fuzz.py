"""Hypothesis generates the hostile input schema-driven fuzzing did not find (NUL, lone
surrogates, deep nesting, NaN/Infinity, numbers too large for a double or for Python's int
parser, out-of-range durations and dates) into every field of create, complete, cancel, the
callback URL and the list filters, through the real API on the real database. Whatever it sends,
the answer is never a 5xx, and every 4xx is JSON ``{"error": "<specific message>"}``.

Bounded (``derandomize``, 30 examples per test, no shrinking, no example database) so it runs in
seconds and the same way on every machine; triggerdev_v1/test_hostile_input.py pins each case.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.surfaces.triggerdev_v1.helpers import TOKENS
from tokens.domain import actors, lifecycle
from tokens.domain.links import callback_url

pytestmark = pytest.mark.django_db

BOUNDED = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: a failure reports its raw example at once instead of spending minutes
    # minimising it, so CI time stays bounded even when something breaks.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

POISON = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\u202e", ","]
# Raw JSON number tokens json.dumps cannot produce (or not safely).
RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" + "0" * 400 + ".5",
    "9" * 5000,
    "-" + "9" * 4400,
    "1e-400",
    "123456789012345678901234567890",
]
DURATION_NONSENSE = [
    "99999999999999999999d",
    "9" * 99 + "w",
    "1e30s",
    "0s",
    "-1h",
    "365d1s",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+23:59",
    "2026-02-30T00:00:00Z",
    "+275760-09-13T00:00:00Z",
]

poisoned_text = st.builds(
    lambda head, poison, tail: head + poison + tail,
    st.text(max_size=8),
    st.sampled_from(POISON),
    st.text(max_size=8),
)
hostile_text = st.one_of(poisoned_text, st.sampled_from(DURATION_NONSENSE), st.text(max_size=20))


class Raw:
    """A JSON fragment inserted verbatim (NaN, 1e400, a 5000-digit integer, deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text


def nest(depth: int, opener: str) -> Raw:
    if opener == "[":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


deep = st.builds(nest, st.integers(min_value=95, max_value=3000), st.sampled_from(["[", "{"]))


json_leaf = st.one_of(
    hostile_text,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(RAW_NUMBERS).map(Raw),
)
json_value = (
    st.recursive(
        json_leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_text, children, max_size=4),
        ),
        max_leaves=12,
    )
    | deep
)


def dumps(value: Any) -> str:
    """JSON text, like a careless client's: NaN/Infinity from floats, Raw fragments verbatim,
    lone surrogates as \\ud800 escapes (ensure_ascii)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def assert_client_error_or_success(response) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), response.content[:200]
        error = response.json()["error"]
        assert isinstance(error, str) and error and error != "Internal Server Error"


def post(client, path: str, body: str):
    # What the client sends on the wire: UTF-8, with lone surrogates escaped by dumps().
    data = body.encode("utf-8", "surrogatepass")
    return client.generic("POST", path, data, content_type="application/json")


CREATE_FIELDS = ["timeout", "idempotencyKey", "idempotencyKeyTTL", "tags", "approvers"]


@BOUNDED
@given(fields=st.dictionaries(st.sampled_from(CREATE_FIELDS), json_value, min_size=1))
def test_create_never_fails_with_a_5xx(api_client: APIClient, fields: dict[str, Any]) -> None:
    body = "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in fields.items()) + "}"
    assert_client_error_or_success(post(api_client, TOKENS, body))


@BOUNDED
@given(field=st.sampled_from(["data", "output"]), value=json_value)
def test_complete_never_fails_with_a_5xx(api_client, environment, field, value) -> None:
    token = lifecycle.token_create(environment=environment, actor=actors.Actor.system()).token
    path = f"{TOKENS}/{token.friendly_id}/complete"
    assert_client_error_or_success(post(api_client, path, f'{{"{field}":{dumps(value)}}}'))


@BOUNDED
@given(value=json_value)
def test_cancel_never_fails_with_a_5xx(api_client, environment, value) -> None:
    token = lifecycle.token_create(environment=environment, actor=actors.Actor.system()).token
    path = f"{TOKENS}/{token.friendly_id}/cancel"
    assert_client_error_or_success(post(api_client, path, f'{{"reason":{dumps(value)}}}'))


@BOUNDED
@given(value=json_value)
def test_the_callback_url_never_fails_with_a_5xx(environment, value) -> None:
    token = lifecycle.token_create(environment=environment, actor=actors.Actor.system()).token
    response = post(Client(), callback_url(token, base=""), dumps(value))
    assert_client_error_or_success(response)


LIST_PARAMS = [
    "filter[status]",
    "filter[tags]",
    "filter[idempotencyKey]",
    "filter[createdAt][period]",
    "filter[createdAt][from]",
    "filter[createdAt][to]",
    "page[size]",
    "page[after]",
    "page[before]",
]
query_value = st.one_of(
    hostile_text,
    st.sampled_from(RAW_NUMBERS),
    st.integers().map(str),
    st.floats().map(str),
)


def query_string(params: dict[str, str]) -> str:
    # Percent-encode the UTF-8 bytes, surrogates included (as invalid UTF-8 on the wire).
    return "&".join(
        f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in params.items()
    )


@BOUNDED
@given(params=st.dictionaries(st.sampled_from(LIST_PARAMS), query_value, min_size=1))
def test_list_filters_never_fail_with_a_5xx(api_client, params: dict[str, str]) -> None:
    response = api_client.get(TOKENS, QUERY_STRING=query_string(params))
    assert_client_error_or_success(response)
    if response.status_code == 400:
        assert response.json()["error"] == "Query Error"
        assert response.json()["details"]


DASHBOARD_PARAMS = ["tag", "key", "id", "status", "period", "created_from", "created_to", "after"]


@BOUNDED
@given(params=st.dictionaries(st.sampled_from(DASHBOARD_PARAMS), query_value, min_size=1))
def test_dashboard_filters_never_fail_with_a_5xx(environment, params: dict[str, str]) -> None:
    from django.contrib.auth.models import User

    from tests.surfaces.dashboard.conftest import client_for, member
    from tokens.models import Membership

    user = User.objects.filter(username="vera").first() or member(
        environment, "vera", Membership.Role.VIEWER
    )
    path = f"/projects/{environment.project.slug}/{environment.slug}/tokens"
    response = client_for(user).get(path, QUERY_STRING=query_string(params))
    assert response.status_code == 200
