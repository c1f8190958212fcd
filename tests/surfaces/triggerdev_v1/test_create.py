"""POST /api/v1/waitpoints/tokens: response shape, headers, and every bad input."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, nulls, post_raw
from tokens.models import Token, TokenEvent


def test_it_creates_a_token_with_upstreams_shape(api_client, environment):
    response = api_client.post(TOKENS, {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "url", "isCached"}
    assert nulls(body) == []
    assert body["isCached"] is False
    token = Token.objects.get()
    assert body["id"] == f"waitpoint_{token.pk}"
    assert len(token.pk) == 25 and token.pk.startswith("c")
    assert body["url"].startswith(f"http://testserver{TOKENS}/{body['id']}/callback/")
    assert len(body["url"].rsplit("/", 1)[1]) == 64
    assert token.environment == environment
    assert token.status == Token.Status.WAITING
    # The default 10m timeout.
    assert abs((token.timeout_at - token.created_at) - timedelta(minutes=10)) < timedelta(seconds=1)


def test_it_sends_a_public_access_token(api_client, environment):
    before = int(time.time())
    response = api_client.post(TOKENS, {}, format="json")
    token_id = response.json()["id"]
    raw = response["x-trigger-jwt"]
    assert jwt.get_unverified_header(raw)["alg"] == "HS256"
    claims = jwt.decode(
        raw,
        environment.signing_secret,
        algorithms=["HS256"],
        audience="https://api.trigger.dev",
        issuer="https://id.trigger.dev",
    )
    assert claims["sub"] == environment.public_id
    assert claims["pub"] is True
    assert claims["scopes"] == [f"write:waitpoints:{token_id}"]
    assert claims["exp"] == claims["iat"] + 24 * 3600
    assert before <= claims["iat"] <= int(time.time())
    assert json.loads(response["x-trigger-jwt-claims"]) == {
        "sub": environment.public_id,
        "pub": True,
    }


def test_it_accepts_the_sdks_full_body(api_client):
    body = {
        "timeout": "10m",
        "tags": ["run:capture", "user:1234"],
        "idempotencyKey": "capture-idem-1",
        "idempotencyKeyTTL": "1h",
    }
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200
    token = Token.objects.get()
    assert token.tags == ["run:capture", "user:1234"]
    assert token.idempotency_key == "capture-idem-1"
    assert abs(
        token.idempotency_key_expires_at - (token.created_at + timedelta(hours=1))
    ) < timedelta(seconds=1)


def test_it_accepts_an_iso_timeout_and_a_string_tag(api_client):
    moment = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    body = {"timeout": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "tags": "single-tag"}
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200
    token = Token.objects.get()
    assert token.timeout_at == moment
    assert token.tags == ["single-tag"]


def test_it_returns_the_cached_token_for_the_same_key(api_client):
    first = api_client.post(TOKENS, {"idempotencyKey": "k"}, format="json").json()
    second = api_client.post(
        TOKENS, {"idempotencyKey": "k", "timeout": "1h", "tags": ["x"]}, format="json"
    )
    assert second.status_code == 200
    assert second.json() == {**first, "isCached": True}
    assert Token.objects.count() == 1
    assert Token.objects.get().tags == []


def test_it_ignores_unknown_and_read_only_fields(api_client, environment, other_environment):
    body = {
        "status": "COMPLETED",
        "completedAt": "2020-01-01T00:00:00Z",
        "output": "x",
        "environment": other_environment.pk,
        "id": "waitpoint_cabc",
    }
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200
    token = Token.objects.get()
    assert response.json()["id"] != "waitpoint_cabc"
    assert token.status == Token.Status.WAITING
    assert token.completed_at is None
    assert token.output is None
    assert token.environment == environment


def test_it_refuses_an_empty_body_as_upstream(api_client):
    assert_error(post_raw(api_client, TOKENS, b""), 400, "Request body is empty")
    assert_error(post_raw(api_client, TOKENS, b"  \n"), 400, "Request body is empty")
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    "field", ["idempotencyKey", "idempotencyKeyTTL", "tags", "timeout", "title", "approvers"]
)
def test_it_refuses_null_for_a_field_instead_of_ignoring_it(api_client, field):
    # Upstream's zod schema refuses null for its fields (ours follow); we say how to leave one out.
    body = {field: None, **({"idempotencyKey": "k"} if field == "idempotencyKeyTTL" else {})}
    response = api_client.post(TOKENS, body, format="json")
    assert_error(response, 400, f"Invalid {field}: null is not accepted; omit the field instead.")
    assert not Token.objects.exists()


def test_it_accepts_a_timeout_in_epoch_milliseconds(api_client):
    # Upstream reads a JSON number as new Date(n); ours must also be in the future.
    moment = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    response = api_client.post(TOKENS, {"timeout": int(moment.timestamp() * 1000)}, format="json")
    assert response.status_code == 200, response.content
    assert Token.objects.get().timeout_at == moment
    retrieved = api_client.get(f"{TOKENS}/{response.json()['id']}").json()
    assert retrieved["timeoutAt"] == moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    ("timeout", "says"),
    [
        (1000, "the date is in the past"),
        (0, "the date is in the past"),
        (1893456000, "the date is in the past (a number is epoch milliseconds"),
        (-1, "the date is in the past"),
        (True, "expected a duration"),
        (1e16, "more than 365 days ahead"),
    ],
)
def test_it_refuses_a_numeric_timeout_that_is_not_ahead(api_client, timeout, says):
    error = assert_error(api_client.post(TOKENS, {"timeout": timeout}, format="json"), 400)
    assert says in error["error"]
    assert not Token.objects.exists()


def test_it_stores_tags_as_sent(api_client):
    # Upstream stores (and filters on) tags exactly as sent; we still drop duplicates and
    # refuse blank ones (DESIGN.md).
    body = {"tags": [" refund ", "refund", "eu,us", "refund", "\teu"]}
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200, response.content
    assert Token.objects.get().tags == [" refund ", "refund", "eu,us", "\teu"]


def test_it_counts_the_tags_as_sent(api_client):
    # Upstream counts the submitted list: eleven tags are too many even if they repeat.
    response = api_client.post(TOKENS, {"tags": ["a"] * 11}, format="json")
    assert_error(response, 422, "Waitpoints can only have 10 tags, you're trying to set 11.")
    assert api_client.post(TOKENS, {"tags": ["a"] * 10}, format="json").status_code == 200


def test_a_too_long_tag_is_a_400_even_among_too_many(api_client):
    # Upstream's schema checks each tag before the handler counts them.
    tags = [f"t{i}" for i in range(10)] + ["x" * 129]
    response = api_client.post(TOKENS, {"tags": tags}, format="json")
    assert_error(response, 400, "Invalid tag at tags[10]: tags must be at most 128 characters.")


def test_a_form_encoded_body_is_told_to_send_json(api_client):
    response = api_client.post(TOKENS, {"timeout": "1h"})  # the test client's multipart form
    error = assert_error(response, 400)["error"]
    assert "Content-Type" in error and "application/json" in error
    response = api_client.generic(
        "POST", TOKENS, "timeout=1h", content_type="application/x-www-form-urlencoded"
    )
    assert_error(
        response, 400, error.replace("multipart/form-data", "application/x-www-form-urlencoded")
    )
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "Invalid JSON"),
        (b"\xff\xfe", 400, "Invalid JSON"),
        (b"null", 400, "Invalid JSON"),  # upstream: a falsy JSON value is "Invalid JSON"
        (b"false", 400, "Invalid JSON"),
        (b"0", 400, "Invalid JSON"),
        (b'""', 400, "Invalid JSON"),
        (b"[]", 400, "Invalid body: expected a JSON object, received array"),
        (b'"text"', 400, "Invalid body: expected a JSON object, received string"),
        (b"42", 400, "Invalid body: expected a JSON object, received number"),
        (b"true", 400, "Invalid body: expected a JSON object, received boolean"),
        (json.dumps({"timeout": 30}).encode(), 400, None),
        (json.dumps({"timeout": "10 minutes"}).encode(), 400, None),
        (json.dumps({"timeout": "2001-01-01T00:00:00Z"}).encode(), 400, None),
        (json.dumps({"timeout": "366d"}).encode(), 400, None),
        (json.dumps({"timeout": "99999999999999999999w"}).encode(), 400, None),
        (json.dumps({"idempotencyKey": "k", "idempotencyKeyTTL": "1 hour"}).encode(), 400, None),
        (json.dumps({"idempotencyKey": "k", "idempotencyKeyTTL": "-5s"}).encode(), 400, None),
        (json.dumps({"idempotencyKey": "k", "idempotencyKeyTTL": "abc"}).encode(), 400, None),
        (json.dumps({"idempotencyKey": "k", "idempotencyKeyTTL": "99999999d"}).encode(), 400, None),
        (json.dumps({"idempotencyKey": 7}).encode(), 400, None),
        (json.dumps({"idempotencyKey": "k" * 2049}).encode(), 400, None),
        (json.dumps({"tags": [f"t{i}" for i in range(11)]}).encode(), 422, None),
        (json.dumps({"tags": ["t" * 129]}).encode(), 400, None),
        (json.dumps({"tags": [""]}).encode(), 400, None),
        (json.dumps({"tags": ["  "]}).encode(), 400, None),
        (json.dumps({"tags": [1]}).encode(), 400, None),
        (json.dumps({"tags": {"a": 1}}).encode(), 400, None),
    ],
)
def test_it_rejects_bad_input_and_creates_nothing(api_client, body, status, message):
    response = post_raw(api_client, TOKENS, body)
    assert_error(response, status, message)
    assert not Token.objects.exists()
    assert not TokenEvent.objects.exists()


def test_it_answers_eleven_tags_with_upstreams_message(api_client):
    response = api_client.post(TOKENS, {"tags": [f"t{i}" for i in range(11)]}, format="json")
    assert response.status_code == 422
    assert response.json() == {
        "error": "Waitpoints can only have 10 tags, you're trying to set 11."
    }


def test_it_says_what_a_timeout_may_be(api_client):
    response = api_client.post(TOKENS, {"timeout": "10 minutes"}, format="json")
    error = assert_error(response, 400)["error"]
    assert "30s" in error and "ISO-8601" in error


def test_it_accepts_a_128_character_tag(api_client):
    response = api_client.post(TOKENS, {"tags": ["t" * 128]}, format="json")
    assert response.status_code == 200
    assert Token.objects.get().tags == ["t" * 128]


def test_it_refuses_a_create_body_over_the_limit(api_client):
    body = json.dumps({"tags": ["a"], "pad": "x" * (190 * 1024)}).encode()
    response = post_raw(api_client, TOKENS, body)
    assert_error(response, 413, "Request body too large")
    assert not Token.objects.exists()


def test_it_accepts_a_body_of_upstreams_ten_kib(api_client):
    body = json.dumps({"pad": "x" * (10 * 1024 - 20)}).encode()
    assert len(body) <= 10 * 1024
    response = post_raw(api_client, TOKENS, body)
    assert response.status_code == 200


def test_it_requires_a_content_length(api_client):
    response = post_raw(
        api_client, TOKENS, b"{}", CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert_error(response, 411, "Content-Length header is required")
    assert not Token.objects.exists()
