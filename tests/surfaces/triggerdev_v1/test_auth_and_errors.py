"""Authentication, JSON errors for unknown paths and wrong methods, and the health endpoint."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, url_of
from tokens.domain import tenancy
from tokens.models import ApiKey, Token

ROUTES = [
    ("get", TOKENS),
    ("post", TOKENS),
    ("get", f"{TOKENS}/{{id}}"),
    ("post", f"{TOKENS}/{{id}}/complete"),
    ("post", f"{TOKENS}/{{id}}/cancel"),
    ("post", "/api/v1/auth/jwt/claims"),
]


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def call(client, method, path, token):
    path = path.replace("{id}", token.friendly_id)
    if method == "get":
        return client.get(path)
    return client.post(path, {"data": 1}, format="json")


@pytest.fixture
def revoked_key(environment):
    api_key, secret = tenancy.api_key_create(environment=environment)
    tenancy.api_key_revoke(api_key=api_key)
    return secret


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token tr_dev_whatever",
        "Bearer tr_dev_" + "x" * 43,
        "Bearer not-a-key",
        "Bearer a.b.c",
    ],
)
def test_it_answers_401_without_a_valid_key(make_token, method, path, header):
    token = make_token()
    response = call(client_with(header), method, path, token)
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Token.objects.count() == 1
    assert Token.objects.get().status == Token.Status.WAITING


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_it_refuses_a_revoked_key(make_token, revoked_key, method, path):
    token = make_token()
    response = call(client_with(f"Bearer {revoked_key}"), method, path, token)
    assert_error(response, 401, "Invalid API key")
    assert response.has_header("WWW-Authenticate")
    assert Token.objects.get().status == Token.Status.WAITING


def test_it_does_not_accept_a_key_in_the_query_string(secret_key):
    response = APIClient().get(TOKENS, {"apiKey": secret_key, "access_token": secret_key})
    assert_error(response, 401)


def test_it_records_when_a_key_was_last_used(api_client, environment):
    api_key = ApiKey.objects.get(environment=environment)
    assert api_key.last_used_at is None
    assert api_client.get(TOKENS).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_it_accepts_a_key_of_another_kind_of_environment(environment):
    staging = tenancy.environment_get_or_create(project_slug="alice", slug="staging")
    _key, secret = tenancy.api_key_create(environment=staging)
    assert secret.startswith("tr_stg_")
    response = client_with(f"Bearer {secret}").post(TOKENS, {}, format="json")
    assert response.status_code == 200
    assert Token.objects.get().environment == staging


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", TOKENS),
        ("delete", TOKENS),
        ("patch", TOKENS),
        ("delete", f"{TOKENS}/{{id}}"),
        ("put", f"{TOKENS}/{{id}}"),
        ("post", f"{TOKENS}/{{id}}"),
        ("get", f"{TOKENS}/{{id}}/complete"),
        ("put", f"{TOKENS}/{{id}}/complete"),
        ("get", f"{TOKENS}/{{id}}/cancel"),
        ("get", "/api/v1/auth/jwt/claims"),
    ],
)
def test_it_answers_wrong_methods_with_json_405(api_client, make_token, method, path):
    token = make_token()
    response = getattr(api_client, method)(path.replace("{id}", token.friendly_id))
    assert_error(response, 405, "Method not allowed")
    assert Token.objects.get().status == Token.Status.WAITING


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v2/waitpoints/tokens",
        "/api/",
        f"{TOKENS}/waitpoint_cabc/unknown",
    ],
)
def test_it_answers_unknown_api_paths_with_json_404(api_client, path):
    response = api_client.get(path)
    assert_error(response, 404)


def test_it_answers_unknown_api_paths_with_json_404_without_a_key(anonymous_client):
    assert_error(anonymous_client.post("/api/v1/nothing-here", {}, format="json"), 404)


def test_it_reports_health(db, anonymous_client):
    response = anonymous_client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"


def test_it_never_accepts_another_environments_key_for_a_token(other_api_client, make_token):
    token = make_token()
    assert_error(other_api_client.get(url_of(token)), 404, "Waitpoint not found")
    assert_error(
        other_api_client.post(url_of(token, "/complete"), {"data": 1}, format="json"),
        404,
        "Waitpoint not found",
    )
    assert_error(
        other_api_client.post(url_of(token, "/cancel"), {}, format="json"),
        404,
        "Waitpoint not found",
    )
    assert other_api_client.get(TOKENS).json()["data"] == []
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.WAITING
    assert list(stored.events.values_list("kind", flat=True)) == ["created"]


@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("{key}", 200),  # upstream strips an optional "Bearer " (bearerCredentials.ts)
        ("Bearer {key}", 200),
        ("bearer {key}", 200),  # the scheme is case-insensitive (RFC 9110)
        ("Bearer   {key}  ", 200),  # upstream trims
        ("Token {key}", 401),  # any other scheme is part of the credential, as upstream
        ("Basic {key}", 401),
    ],
)
def test_it_reads_the_authorization_header_as_upstream(secret_key, template, status):
    response = client_with(template.format(key=secret_key)).get(TOKENS)
    assert response.status_code == status, response.content
    if status == 401:
        assert response.json() == {"error": "Invalid API key"}
