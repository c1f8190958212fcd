"""POST …/{id}/callback/{hash}: the URL is the credential, the whole body is the output."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.surfaces.triggerdev_v1.helpers import assert_error, post_raw, url_of
from tokens.domain import keys, tenancy
from tokens.domain.links import callback_url
from tokens.models import Token, TokenEvent


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def token(make_token):
    return make_token()


def cb(token):
    return callback_url(token, base="")


def stored(token):
    return Token.objects.get(pk=token.pk)


def test_it_stores_the_whole_body_as_output(client, token):
    response = post_raw(
        client, cb(token), b'{"status":"approved","n":1}', REMOTE_ADDR="198.51.100.2"
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "applied": True,
        "status": "COMPLETED",
        "statusDetail": "COMPLETED",
    }
    token = stored(token)
    assert token.status == Token.Status.COMPLETED
    assert token.output == '{"json":{"status":"approved","n":1}}'
    assert token.output_type == "application/super+json"
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.ip, event.api_key) == ("callback", "198.51.100.2", None)
    assert (event.credential, event.actor_label) == ("callback_url", "callback URL")


def test_it_uses_the_url_of_the_create_response(api_client, client):
    url = api_client.post("/api/v1/waitpoints/tokens", {}, format="json").json()["url"]
    response = post_raw(client, url.removeprefix("http://testserver"), b'{"ok":true}')
    assert response.status_code == 200
    assert Token.objects.get().output == '{"json":{"ok":true}}'


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"", "application/json"), (b"{not json", "application/json"), (b"\xff", "text/plain")],
)
def test_it_stores_an_empty_object_for_an_empty_or_invalid_body(client, token, body, content_type):
    response = client.generic("POST", cb(token), body, content_type=content_type)
    assert response.status_code == 200
    assert stored(token).output == '{"json":{}}'
    assert stored(token).output_type == "application/super+json"


def test_it_stores_a_json_string_as_text(client, token):
    post_raw(client, cb(token), b'"hello"')
    assert (stored(token).output, stored(token).output_type) == ("hello", "text/plain")


def test_it_answers_an_already_resolved_token_with_success(client, token):
    post_raw(client, cb(token), b'{"n":1}')
    again = post_raw(client, cb(token), b'{"n":2}')
    assert again.status_code == 200
    assert again.json()["success"] is True
    assert again.json()["applied"] is False
    assert stored(token).output == '{"json":{"n":1}}'
    assert token.events.filter(kind="complete_ignored", channel="callback").count() == 1


def _variants(digest):
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    return {
        "flipped": flipped,
        "truncated": digest[:-1],
        "uppercase": digest.upper(),
        "appended": digest + "0",
        "non-hex": "z" * 64,
        "non-ascii": "é" * 64,
        "empty-ish": "0",
    }


@pytest.mark.parametrize(
    "variant",
    ["flipped", "truncated", "uppercase", "appended", "non-hex", "non-ascii", "empty-ish"],
)
def test_it_refuses_a_wrong_hash(client, token, variant):
    digest = cb(token).rsplit("/", 1)[1]
    bad = _variants(digest)[variant]
    response = post_raw(client, url_of(token, f"/callback/{bad}"), b'{"n":1}')
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid URL, hash doesn't match"}
    assert stored(token).status == Token.Status.WAITING
    # The refused hash is audited (tokens.domain.services.token_credential_refused).
    assert list(token.events.values_list("kind", flat=True)) == ["created", "auth_failed"]


def test_it_refuses_another_tokens_hash(client, token, make_token):
    other = make_token()
    digest = cb(other).rsplit("/", 1)[1]
    response = post_raw(client, url_of(token, f"/callback/{digest}"), b"{}")
    assert_error(response, 401, "Invalid URL, hash doesn't match")
    assert stored(token).status == Token.Status.WAITING
    assert stored(other).status == Token.Status.WAITING


def test_it_answers_404_for_an_unknown_token(client, environment):
    digest = keys.callback_hash(callback_secret=environment.callback_secret, internal_id="cnope")
    response = post_raw(client, url_of("waitpoint_cnope", f"/callback/{digest}"), b"{}")
    assert_error(response, 404, "Waitpoint not found")


def test_it_keeps_working_after_an_api_key_rotation(client, token, environment):
    for api_key in environment.api_keys.all():
        tenancy.api_key_revoke(api_key=api_key)
    tenancy.api_key_create(environment=environment)
    assert post_raw(client, cb(token), b"{}").status_code == 200
    assert stored(token).status == Token.Status.COMPLETED


def test_it_refuses_a_body_over_three_mib(client, token):
    body = b'{"x":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert_error(post_raw(client, cb(token), body), 413, "Request body too large")
    assert stored(token).status == Token.Status.WAITING


def test_it_requires_a_content_length(client, token):
    response = post_raw(
        client, cb(token), b'{"n":1}', CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert_error(response, 411, "Content-Length header is required")
    assert stored(token).status == Token.Status.WAITING


def test_it_answers_json_get_with_405(client, token):
    response = client.get(cb(token), HTTP_ACCEPT="application/json")
    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
    assert response["Allow"] == "POST"
    assert stored(token).status == Token.Status.WAITING


@pytest.mark.parametrize(
    ("method", "accept", "status"),
    [
        ("GET", "text/html", 200),
        ("GET", "", 200),
        ("GET", "*/*", 200),
        ("GET", "application/json", 405),
        ("HEAD", "", 200),
        ("HEAD", "application/json", 405),
    ],
)
def test_it_never_changes_the_token_on_get_or_head(client, token, method, accept, status):
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    for query in ("", "?decision=approved", "?decision=rejected"):
        response = client.generic(method, cb(token) + query, **extra)
        assert response.status_code == status
    token = stored(token)
    assert token.status == Token.Status.WAITING
    assert token.output is None
    assert list(token.events.values_list("kind", flat=True)) == ["created"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_it_answers_other_methods_with_405(client, token, method):
    response = client.generic(method, cb(token), b"{}", content_type="application/json")
    assert_error(response, 405, "Method not allowed")
    assert response["Allow"] == "POST"
    assert stored(token).status == Token.Status.WAITING


def test_it_needs_no_api_key_and_ignores_one_of_another_environment(other_api_client, token):
    response = post_raw(other_api_client, cb(token), json.dumps({"n": 1}).encode())
    assert response.status_code == 200
    assert stored(token).status == Token.Status.COMPLETED
