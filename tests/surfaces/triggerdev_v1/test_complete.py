"""POST …/{id}/complete (secret key or public access token, CORS) and POST …/{id}/cancel."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from rest_framework.test import APIClient

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, post_raw, url_of
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import ApiKey, Token, TokenEvent

SYSTEM = actors.Actor.system()


def complete_url(token):
    return url_of(token, "/complete")


def stored(token):
    return Token.objects.get(pk=token.pk)


def bearer(credential):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


@pytest.mark.parametrize(
    ("body", "output", "output_type"),
    [
        (
            {"data": {"status": "approved", "comment": "LGTM"}},
            '{"json":{"status":"approved","comment":"LGTM"}}',
            "application/super+json",
        ),
        ({"data": "plain text"}, "plain text", "text/plain"),
        ({"data": [1, 2]}, '{"json":[1,2]}', "application/super+json"),
        ({"data": 7}, '{"json":7}', "application/super+json"),
        ({"data": None}, '{"json":null}', "application/super+json"),
        ({"data": ""}, None, "application/json"),
        ({}, None, "application/json"),
        (
            {"output": {"status": "approved"}},
            '{"json":{"status":"approved"}}',
            "application/super+json",
        ),
        ({"data": "d", "output": "o"}, "d", "text/plain"),
    ],
)
def test_it_completes_with_the_data(api_client, make_token, body, output, output_type):
    token = make_token()
    response = api_client.post(complete_url(token), body, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "applied": True,
        "status": "COMPLETED",
        "statusDetail": "COMPLETED",
    }
    token = stored(token)
    assert token.status == Token.Status.COMPLETED
    assert token.output == output
    assert token.output_type == output_type
    retrieved = api_client.get(url_of(token)).json()
    if output is None:
        assert "output" not in retrieved
    else:
        assert retrieved["output"] == output


def test_it_refuses_an_empty_body_as_upstream(api_client, make_token):
    # Upstream answers 400; completing on an empty body hid clients that forgot to send one.
    token = make_token()
    assert_error(post_raw(api_client, complete_url(token), b""), 400, "Request body is empty")
    assert stored(token).status == Token.Status.WAITING
    assert_error(post_raw(api_client, complete_url(token), b"null"), 400, "Invalid JSON")
    assert stored(token).status == Token.Status.WAITING


def test_it_records_the_api_key_ip_and_user_agent(api_client, make_token, environment):
    token = make_token()
    api_client.post(
        complete_url(token),
        {"data": 1},
        format="json",
        REMOTE_ADDR="203.0.113.4",
        HTTP_USER_AGENT="node",
    )
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert event.channel == "api"
    assert event.credential == TokenEvent.Credential.SECRET_KEY
    assert event.api_key.environment == environment
    assert event.actor_label == f"API key {event.api_key.prefix}…"
    assert (event.ip, event.user_agent) == ("203.0.113.4", "node")


def test_it_answers_an_already_resolved_token_with_success(api_client, make_token):
    token = make_token()
    api_client.post(complete_url(token), {"data": "first"}, format="json")
    response = api_client.post(complete_url(token), {"data": "second"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "applied": False,
        "status": "COMPLETED",
        "statusDetail": "COMPLETED",
    }
    assert stored(token).output == "first"
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 1


def test_it_answers_a_cancelled_token_as_timed_out(api_client, make_token):
    token = make_token()
    lifecycle.token_cancel(token=token, actor=SYSTEM)
    response = api_client.post(complete_url(token), {"data": 1}, format="json")
    # The v1 API speaks the SDK's three statuses; statusDetail says what really happened.
    assert response.json() == {
        "success": True,
        "applied": False,
        "status": "TIMED_OUT",
        "statusDetail": "CANCELLED",
    }
    assert stored(token).status == Token.Status.CANCELLED


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{bad json", 400),
        (b"[1, 2]", 400),
        (b"null", 400),
        (b'"data"', 400),
    ],
)
def test_it_rejects_a_bad_body_and_changes_nothing(api_client, make_token, body, status):
    token = make_token()
    assert_error(post_raw(api_client, complete_url(token), body), status)
    assert stored(token).status == Token.Status.WAITING
    assert list(token.events.values_list("kind", flat=True)) == ["created"]


def test_it_refuses_a_body_over_three_mib(api_client, make_token):
    token = make_token()
    body = b'{"data":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert_error(post_raw(api_client, complete_url(token), body), 413, "Request body too large")
    assert stored(token).status == Token.Status.WAITING


def test_it_accepts_a_body_just_under_three_mib(api_client, make_token):
    token = make_token()
    body = b'{"data":"' + b"x" * (3 * 1024 * 1024 - 20) + b'"}'
    assert len(body) <= 3 * 1024 * 1024
    response = post_raw(api_client, complete_url(token), body)
    assert response.status_code == 200
    assert len(stored(token).output) == 3 * 1024 * 1024 - 20


def test_it_requires_a_content_length(api_client, make_token):
    token = make_token()
    response = post_raw(
        api_client,
        complete_url(token),
        b'{"data":1}',
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert_error(response, 411, "Content-Length header is required")
    assert stored(token).status == Token.Status.WAITING


def test_it_hides_another_environments_token(other_api_client, make_token):
    token = make_token()
    response = other_api_client.post(complete_url(token), {"data": 1}, format="json")
    assert_error(response, 404, "Waitpoint not found")
    assert stored(token).status == Token.Status.WAITING
    assert not token.events.exclude(kind="created").exists()


def test_it_answers_404_for_an_unknown_id(api_client):
    response = api_client.post(complete_url("waitpoint_cnope"), {"data": 1}, format="json")
    assert_error(response, 404, "Waitpoint not found")


# ------------------------------------------------------------------------------------------------
# Public access tokens
# ------------------------------------------------------------------------------------------------


def test_it_completes_with_the_issued_public_access_token(api_client):
    created = api_client.post(TOKENS, {}, format="json")
    token_id = created.json()["id"]
    client = bearer(created["x-trigger-jwt"])
    response = client.post(f"{TOKENS}/{token_id}/complete", {"data": "ok"}, format="json")
    assert response.status_code == 200
    assert response.json()["applied"] is True
    token = Token.objects.get()
    assert token.output == "ok"
    event = token.events.get(kind="completed")
    assert event.api_key is None and event.channel == "api"
    # Not "system": the audit trail names the credential that acted.
    assert event.credential == TokenEvent.Credential.PUBLIC_ACCESS_TOKEN
    assert event.actor_label == "public access token (issued on create)"


def test_it_refuses_a_public_access_token_of_another_token(api_client, make_token):
    created = api_client.post(TOKENS, {}, format="json")
    other = make_token()
    client = bearer(created["x-trigger-jwt"])
    response = client.post(complete_url(other), {"data": "ok"}, format="json")
    assert_error(response, 403)
    assert stored(other).status == Token.Status.WAITING


UNAUTHORIZED = {
    "error": "Unauthorized",
    "code": "unauthorized",
    "param": "access_token",
    "type": "authorization",
}


def signed_jwt(environment, *scopes):
    payload = {
        "sub": environment.public_id,
        "pub": True,
        "scopes": list(scopes),
        "iss": "https://id.trigger.dev",
        "aud": "https://api.trigger.dev",
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(payload, environment.signing_secret, "HS256")


def test_a_refused_scope_answers_upstreams_403_body(api_client, make_token):
    # The SDK copies code, param and type onto its PermissionDeniedError (err.code).
    created = api_client.post(TOKENS, {}, format="json")
    other = make_token()
    response = bearer(created["x-trigger-jwt"]).post(complete_url(other), {}, format="json")
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_the_scope_is_checked_before_the_token_is_looked_up(environment):
    # Upstream authorises before it finds the resource: no scope, no word on whether it exists.
    credential = signed_jwt(environment, "write:waitpoints:waitpoint_other")
    response = bearer(credential).post(
        f"{TOKENS}/waitpoint_doesnotexist/complete", {}, format="json"
    )
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    ("scope", "friendly_path", "bare_path"),
    [
        # Upstream's buildJwtAbility compares the scope's id with the URL's, as written.
        ("write:waitpoints:{friendly}", 200, 403),
        ("write:waitpoints:{bare}", 403, 200),
        ("*:waitpoints:{friendly}", 200, 403),
        ("write:waitpoints", 200, 200),
        ("write:waitpoints:", 200, 200),
        ("write:all", 200, 200),
        ("*:waitpoints", 200, 200),
        ("*:all", 200, 200),
        ("admin", 200, 200),
        ("admin:waitpoints", 403, 403),
        ("read:waitpoints:{friendly}", 403, 403),
        ("write:runs:{friendly}", 403, 403),
    ],
)
def test_scopes_match_the_id_as_the_url_gives_it(
    make_token, environment, scope, friendly_path, bare_path
):
    for path, status in (("friendly", friendly_path), ("bare", bare_path)):
        token = make_token()
        ids = {"friendly": token.friendly_id, "bare": token.id}
        credential = signed_jwt(environment, scope.format(**ids))
        url = f"{TOKENS}/{ids[path]}/complete"
        response = bearer(credential).post(url, {"data": 1}, format="json")
        assert response.status_code == status, (path, response.content)
        expected = Token.Status.COMPLETED if status == 200 else Token.Status.WAITING
        assert stored(token).status == expected


def test_scopes_that_are_not_a_list_grant_nothing(make_token, environment):
    token = make_token()
    payload = jwt.decode(signed_jwt(environment), options={"verify_signature": False})
    payload["scopes"] = f"write:waitpoints:{token.friendly_id}"
    credential = jwt.encode(payload, environment.signing_secret, "HS256")
    response = bearer(credential).post(complete_url(token), {"data": 1}, format="json")
    assert response.status_code == 403
    assert response.json() == UNAUTHORIZED


def test_it_accepts_the_public_access_token_only_on_complete(api_client):
    created = api_client.post(TOKENS, {}, format="json")
    client = bearer(created["x-trigger-jwt"])
    token_id = created.json()["id"]
    assert_error(client.get(f"{TOKENS}/{token_id}"), 401)
    assert_error(client.get(TOKENS), 401)
    assert_error(client.post(TOKENS, {}, format="json"), 401)
    assert_error(client.post(f"{TOKENS}/{token_id}/cancel", {}, format="json"), 401)
    assert Token.objects.count() == 1
    assert Token.objects.get().status == Token.Status.WAITING


def sdk_signed(secret_key, claims, token_id, *, exp_in=15 * 60):
    """What auth.createPublicToken does: claims from the server, signed with the secret key."""
    now = int(time.time())
    payload = {
        **claims,
        "scopes": [f"write:waitpoints:{token_id}"],
        "iss": "https://id.trigger.dev",
        "aud": "https://api.trigger.dev",
        "iat": now,
        "exp": now + exp_in,
    }
    return jwt.encode(payload, secret_key, algorithm="HS256")


def test_it_accepts_a_jwt_self_signed_with_the_secret_key(
    api_client, secret_key, make_token, environment
):
    token = make_token()
    claims = api_client.post("/api/v1/auth/jwt/claims", {}, format="json")
    assert claims.status_code == 200
    assert claims.json() == {"sub": environment.public_id, "pub": True}
    credential = sdk_signed(secret_key, claims.json(), token.friendly_id)
    response = bearer(credential).post(complete_url(token), {"data": 1}, format="json")
    assert response.status_code == 200
    assert stored(token).status == Token.Status.COMPLETED
    event = token.events.get(kind="completed")
    signer = ApiKey.objects.get(environment=environment)
    assert event.credential == TokenEvent.Credential.PUBLIC_ACCESS_TOKEN
    assert event.api_key == signer  # the key that signed the token
    assert event.actor_label == f"public access token (API key {signer.prefix}…)"


def test_it_refuses_a_jwt_signed_with_a_revoked_key(
    api_client, secret_key, make_token, environment
):
    token = make_token()
    claims = api_client.post("/api/v1/auth/jwt/claims", {}, format="json").json()
    credential = sdk_signed(secret_key, claims, token.friendly_id)
    tenancy.api_key_revoke(api_key=environment.api_keys.get())
    assert_error(bearer(credential).post(complete_url(token), {"data": 1}, format="json"), 401)
    assert stored(token).status == Token.Status.WAITING


def test_it_refuses_an_expired_jwt(secret_key, make_token, environment):
    token = make_token()
    credential = sdk_signed(
        secret_key, {"sub": environment.public_id, "pub": True}, token.friendly_id, exp_in=-60
    )
    response = bearer(credential).post(complete_url(token), {"data": 1}, format="json")
    assert_error(response, 401)
    assert response.has_header("WWW-Authenticate")
    assert stored(token).status == Token.Status.WAITING


@pytest.mark.parametrize(
    ("problem", "status"),
    [
        ("wrong-secret", 401),
        ("other-env", 404),  # a valid credential of another environment: the token is unknown
        ("no-pub", 401),
        ("bad-iss", 401),
        ("no-exp", 401),
        ("garbage", 401),
    ],
)
def test_it_refuses_bad_jwts(make_token, environment, other_environment, problem, status):
    token = make_token()
    payload = {
        "sub": environment.public_id,
        "pub": True,
        "scopes": [f"write:waitpoints:{token.friendly_id}"],
        "iss": "https://id.trigger.dev",
        "aud": "https://api.trigger.dev",
        "exp": int(time.time()) + 600,
    }
    secret = environment.signing_secret
    if problem == "wrong-secret":
        secret = "not-the-signing-secret-of-this-environment"
    elif problem == "other-env":
        payload["sub"] = other_environment.public_id
        secret = other_environment.signing_secret
    elif problem == "no-pub":
        del payload["pub"]
    elif problem == "bad-iss":
        payload["iss"] = "https://evil.example"
    elif problem == "no-exp":
        del payload["exp"]
    credential = "abc.def.ghi" if problem == "garbage" else jwt.encode(payload, secret, "HS256")
    response = bearer(credential).post(complete_url(token), {"data": 1}, format="json")
    assert_error(response, status)
    assert stored(token).status == Token.Status.WAITING


# ------------------------------------------------------------------------------------------------
# CORS
# ------------------------------------------------------------------------------------------------


def test_it_answers_a_preflight_without_credentials(anonymous_client, make_token):
    token = make_token()
    response = anonymous_client.options(
        complete_url(token),
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,trigger-version",
    )
    assert response.status_code == 200
    assert response.json() == {}
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in response["Access-Control-Allow-Methods"].split(",")
    assert response["Access-Control-Allow-Headers"] == "authorization,content-type,trigger-version"
    assert response["Access-Control-Max-Age"] == "300"
    assert "Origin" in response["Vary"]
    assert stored(token).status == Token.Status.WAITING


def test_it_reflects_the_origin_and_exposes_the_jwt_headers(api_client, make_token):
    token = make_token()
    response = api_client.post(
        complete_url(token), {"data": 1}, format="json", HTTP_ORIGIN="https://app.example"
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert response["Access-Control-Expose-Headers"] == "x-trigger-jwt,x-trigger-jwt-claims"


@pytest.mark.parametrize("credential", [None, "tr_dev_wrong"])
def test_it_sends_cors_headers_on_errors_too(make_token, credential):
    token = make_token()
    client = bearer(credential) if credential else APIClient()
    response = client.post(
        complete_url(token), {"data": 1}, format="json", HTTP_ORIGIN="https://app.example"
    )
    assert_error(response, 401)
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert response["Access-Control-Expose-Headers"] == "x-trigger-jwt,x-trigger-jwt-claims"


def test_it_sends_no_allow_origin_without_an_origin(api_client, make_token):
    response = api_client.post(complete_url(make_token()), {"data": 1}, format="json")
    assert not response.has_header("Access-Control-Allow-Origin")


# ------------------------------------------------------------------------------------------------
# Cancel (our extension)
# ------------------------------------------------------------------------------------------------


def test_it_cancels_with_a_reason(api_client, make_token):
    token = make_token()
    response = api_client.post(url_of(token, "/cancel"), {"reason": "duplicate"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "applied": True,
        "status": "TIMED_OUT",
        "statusDetail": "CANCELLED",
    }
    body = api_client.get(url_of(token)).json()
    assert body["status"] == "TIMED_OUT"
    assert body["statusDetail"] == "CANCELLED"
    assert "cancelledAt" in body
    assert json.loads(body["output"]) == {
        "code": "WAITPOINT_CANCELLED",
        "message": "Cancelled: duplicate",
    }
    event = token.events.get(kind="cancelled")
    assert event.channel == "api" and event.api_key is not None


def test_it_answers_a_second_cancel_as_not_applied(api_client, make_token):
    token = make_token()
    api_client.post(url_of(token, "/cancel"), {}, format="json")
    again = api_client.post(url_of(token, "/cancel"), {}, format="json")
    assert again.status_code == 200
    assert again.json()["applied"] is False
    assert token.events.filter(kind="cancel_ignored").count() == 1


def test_it_rejects_a_bad_reason(api_client, make_token):
    token = make_token()
    response = api_client.post(url_of(token, "/cancel"), {"reason": ["x"]}, format="json")
    assert_error(response, 400)
    assert stored(token).status == Token.Status.WAITING


def test_it_hides_another_environments_token_from_cancel(other_api_client, make_token):
    token = make_token()
    assert_error(
        other_api_client.post(url_of(token, "/cancel"), {}, format="json"),
        404,
        "Waitpoint not found",
    )
    assert stored(token).status == Token.Status.WAITING
