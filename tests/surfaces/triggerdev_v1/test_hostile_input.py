"""Hostile input through the real API and the real database: NUL, lone surrogates, deep nesting,
non-finite and out-of-range numbers. Each one is a 400 with a specific JSON error, never a 500,
and nothing is stored. (surfaces/test_hostile_fuzz.py generates more of them with hypothesis.)"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, post_raw, url_of
from tokens.domain.links import callback_url
from tokens.models import Token, TokenTag
from tokens.surfaces.common.body import MAX_JSON_DEPTH

pytestmark = pytest.mark.django_db

NUL = "a\u0000b"
SURROGATE = "a\ud800b"


def nested(depth: int) -> bytes:
    return b'{"data":' + b"[" * depth + b"]" * depth + b"}"


def body_of(value: object) -> bytes:
    # ensure_ascii: a lone surrogate travels as the escape "\ud800", as JavaScript would send it
    return json.dumps(value).encode()


@pytest.fixture
def token(make_token) -> Token:
    return make_token(timeout="1h")


# -- create --------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["timeout", "idempotencyKey", "idempotencyKeyTTL", "tags"])
@pytest.mark.parametrize(("bad", "word"), [(NUL, "NUL"), (SURROGATE, "surrogate")])
def test_create_refuses_nul_and_surrogates_in_every_field(api_client, field, bad, word) -> None:
    value: object = [bad] if field == "tags" else bad
    response = post_raw(api_client, TOKENS, body_of({field: value}))
    error = assert_error(response, 400)["error"]
    assert word in error and f"$.{field}" in error
    assert not Token.objects.exists()


@pytest.mark.parametrize(("bad", "word"), [(NUL, "NUL"), (SURROGATE, "surrogate")])
def test_create_refuses_them_in_approvers_and_in_keys(api_client, bad, word) -> None:
    response = post_raw(api_client, TOKENS, body_of({"approvers": [f"x{bad}@example.com"]}))
    assert word in assert_error(response, 400)["error"]
    response = post_raw(api_client, TOKENS, body_of({bad: 1}))
    assert word in assert_error(response, 400)["error"]
    assert not Token.objects.exists()


@pytest.mark.parametrize("field", ["timeout", "idempotencyKeyTTL"])
@pytest.mark.parametrize("value", ["99999999999999999999d", "9" * 99 + "w", "1e30s", 1e30, -1])
def test_create_refuses_out_of_range_durations(api_client, field, value) -> None:
    body = {field: value, "idempotencyKey": "k"}
    error = assert_error(post_raw(api_client, TOKENS, body_of(body)), 400)["error"]
    assert field in error
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    "timeout", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00Z"]
)
def test_create_refuses_dates_at_the_ends_of_the_calendar(api_client, timeout) -> None:
    error = assert_error(post_raw(api_client, TOKENS, body_of({"timeout": timeout})), 400)["error"]
    assert "timeout" in error


def test_create_refuses_deep_nesting(api_client) -> None:
    body = b'{"tags":' + b"[" * 1000 + b"]" * 1000 + b"}"
    error = assert_error(post_raw(api_client, TOKENS, body), 400)["error"]
    assert f"nested more than {MAX_JSON_DEPTH} levels" in error


# -- tags: stored and filtered exactly as sent, as upstream ----------------------------------------


def test_tags_with_a_comma_are_stored_and_found_on_the_dashboard_not_by_the_api(
    api_client,
) -> None:
    # Upstream stores them; its filter[tags] splits on commas, so the API cannot match one
    # (ours neither, to stay the same). The dashboard's ?tag=a,b (one parameter per tag) can.
    response = post_raw(api_client, TOKENS, body_of({"tags": ["ok", "a,b"]}))
    assert response.status_code == 200, response.content
    token = Token.objects.get()
    assert token.tags == ["ok", "a,b"]
    assert api_client.get(TOKENS, {"filter[tags]": "a,b"}).json()["data"] == []
    found = api_client.get(TOKENS, {"filter[tags]": "ok"}).json()["data"]
    assert [row["id"] for row in found] == [token.friendly_id]


def test_tags_are_filtered_as_sent(api_client) -> None:
    response = post_raw(api_client, TOKENS, body_of({"tags": [" refund ", "\teu"]}))
    assert response.status_code == 200
    token = Token.objects.get()
    assert token.tags == [" refund ", "\teu"]
    assert sorted(TokenTag.objects.values_list("name", flat=True)) == ["\teu", " refund "]
    assert api_client.get(TOKENS, {"filter[tags]": "refund,eu"}).json()["data"] == []
    listed = api_client.get(TOKENS, {"filter[tags]": " refund ,x"}).json()["data"]
    assert [row["id"] for row in listed] == [token.friendly_id]
    listed = api_client.get(TOKENS, {"filter[tags]": "\teu"}).json()["data"]
    assert [row["id"] for row in listed] == [token.friendly_id]


# -- complete, cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "word"),
    [
        (NUL, "NUL"),
        ({"note": NUL}, "NUL"),
        ({"a": [1, {"b": SURROGATE}]}, "surrogate"),
        ({NUL: 1}, "NUL"),
    ],
)
def test_complete_refuses_nul_and_surrogates_in_the_output(api_client, token, data, word) -> None:
    response = post_raw(api_client, url_of(token, "/complete"), body_of({"data": data}))
    assert word in assert_error(response, 400)["error"]
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING


def test_the_error_says_where(api_client, token) -> None:
    response = post_raw(
        api_client, url_of(token, "/complete"), body_of({"data": {"a": [0, {"b": NUL}]}})
    )
    assert assert_error(response, 400)["error"] == (
        "Invalid JSON: the string at $.data.a[1].b contains a NUL character (\\u0000), "
        "which cannot be stored."
    )


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_complete_refuses_non_standard_numbers(api_client, token, constant) -> None:
    body = b'{"data":{"x":[1,' + constant + b"]}}"
    error = assert_error(post_raw(api_client, url_of(token, "/complete"), body), 400)["error"]
    assert constant.decode() in error and "not a JSON number" in error
    assert Token.objects.get(pk=token.pk).output is None


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 400 + b".5"])
def test_complete_refuses_numbers_that_overflow_to_infinity(api_client, token, number) -> None:
    body = b'{"data":' + number + b"}"
    error = assert_error(post_raw(api_client, url_of(token, "/complete"), body), 400)["error"]
    assert "too large" in error
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING


def test_complete_refuses_integers_longer_than_any_number(api_client, token) -> None:
    body = b'{"data":' + b"9" * 5000 + b"}"
    error = assert_error(post_raw(api_client, url_of(token, "/complete"), body), 400)["error"]
    assert "digits" in error


def test_complete_keeps_accepting_ordinary_numbers(api_client, token) -> None:
    body = b'{"data":{"big":1e300,"small":-1e-300,"int":' + b"9" * 300 + b"}}"
    assert post_raw(api_client, url_of(token, "/complete"), body).status_code == 200
    assert Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 1000, 100_000])
def test_complete_refuses_deep_nesting(api_client, token, depth) -> None:
    error = assert_error(post_raw(api_client, url_of(token, "/complete"), nested(depth)), 400)
    assert f"nested more than {MAX_JSON_DEPTH} levels" in error["error"]


def test_complete_accepts_nesting_up_to_the_limit(api_client, token) -> None:
    response = post_raw(api_client, url_of(token, "/complete"), nested(MAX_JSON_DEPTH - 1))
    assert response.status_code == 200


@pytest.mark.parametrize(("bad", "word"), [(NUL, "NUL"), (SURROGATE, "surrogate")])
def test_cancel_refuses_them_in_the_reason(api_client, token, bad, word) -> None:
    response = post_raw(api_client, url_of(token, "/cancel"), body_of({"reason": bad}))
    assert word in assert_error(response, 400)["error"]
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING


# -- the callback URL (no credentials needed) ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"a":NaN}',
        b'{"a":1e400}',
        body_of({"a": NUL}),
        body_of(SURROGATE),
    ],
)
def test_the_callback_refuses_unstorable_json_with_400(token, body) -> None:
    response = post_raw(Client(), callback_url(token, base=""), body)
    assert_error(response, 400)
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING


# -- list filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("filter[tags]", NUL, "Null characters"),
        ("filter[status]", NUL, "Null characters"),
        ("filter[idempotencyKey]", NUL, "Null characters"),
        ("filter[createdAt][from]", "1e30", "Invalid date"),
        ("filter[createdAt][from]", "9" * 30, "Invalid date"),
        ("filter[createdAt][to]", "-" + "9" * 30, "Invalid date"),
        ("filter[createdAt][to]", NUL, "Invalid date"),
        ("filter[createdAt][period]", "99999999999999999999d", "Invalid period"),
        ("filter[createdAt][period]", "9" * 30, "Invalid period"),
        ("filter[createdAt][period]", "1e30y", "Invalid period"),
        ("page[size]", "1e30", "Expected an integer"),
        ("page[size]", "9" * 5000, "Expected an integer"),
        ("page[after]", NUL, "Invalid cursor"),
    ],
)
def test_list_refuses_hostile_filters(api_client, token, param, value, message) -> None:
    body = assert_error(api_client.get(TOKENS, {param: value}), 400, "Query Error")
    assert body["details"][0]["path"] == [param]
    assert message in body["details"][0]["message"]


def test_a_long_period_still_lists_everything(api_client, token) -> None:
    rows = api_client.get(TOKENS, {"filter[createdAt][period]": "9000y"}).json()["data"]
    assert [row["id"] for row in rows] == [token.friendly_id]
