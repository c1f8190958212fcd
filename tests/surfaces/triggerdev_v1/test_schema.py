"""The published OpenAPI contract: valid, complete, served with its docs by the service itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import EndpointEnumerator

SCHEMA = "/api/schema/?format=json"
OWN_ROUTES = {"/api/schema/", "/api/docs/"}
# The Agent Approval Protocol's routes are described by the protocol's own openapi.yaml
# (docs/aap-conformance.md), not by this schema of our API.
OTHER_PROTOCOLS = ("/api/aap/",)


@pytest.fixture
def schema(anonymous_client) -> dict:
    response = anonymous_client.get(SCHEMA)
    assert response.status_code == 200, response.content
    return response.json()


def api_routes() -> set[str]:
    """Every URL under /api/ in the URLconf, as an OpenAPI path with anonymous parameters."""
    enumerator = EndpointEnumerator()
    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            regex = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, regex)
            elif isinstance(pattern, URLPattern):
                path = enumerator.get_path_from_regex(regex)
                if (
                    path.startswith("/api/")
                    and path not in OWN_ROUTES
                    and not path.startswith(OTHER_PROTOCOLS)
                ):
                    found.add(path)

    walk(get_resolver().url_patterns, "")
    return {anonymous(path) for path in found}


def anonymous(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_it_validates_without_a_single_warning(tmp_path: Path) -> None:
    # What `manage.py spectacular --validate --fail-on-warn` does; raises on any warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    assert (tmp_path / "s.yaml").read_text().startswith("openapi: 3.0.3")


def test_it_is_public(anonymous_client) -> None:
    response = anonymous_client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")


def test_it_describes_every_api_route(schema) -> None:
    documented = {anonymous(path) for path in schema["paths"]}
    assert api_routes() - documented == set()
    assert documented - api_routes() == set()


def test_it_describes_bodies_parameters_and_errors(schema) -> None:
    tokens = schema["paths"]["/api/v1/waitpoints/tokens"]
    create, listing = tokens["post"], tokens["get"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateTokenRequest"
    }
    assert set(create["responses"]) == {"200", "400", "401", "411", "413", "422", "429", "503"}
    headers = create["responses"]["200"]["headers"]
    assert headers["x-trigger-jwt"]["required"] and headers["x-trigger-jwt-claims"]["required"]
    names = {p["name"] for p in listing["parameters"]}
    assert {
        "filter[status]",
        "filter[tags]",
        "filter[idempotencyKey]",
        "filter[createdAt][period]",
        "filter[createdAt][from]",
        "filter[createdAt][to]",
        "page[size]",
        "page[after]",
        "page[before]",
    } <= names
    request = schema["components"]["schemas"]["CreateTokenRequest"]["properties"]
    upstream = {"timeout", "idempotencyKey", "idempotencyKeyTTL", "tags"}
    ours = {"approvers", "title", "description", "context", "decision", "requiredApprovals"}
    ours |= {"requestedBy", "remindAfter", "escalateAfter", "escalateTo", "slackChannel"}
    ours |= {"decisionValidFor", "onTimeout"}
    ours |= {"proposal", "proposalSchema", "proposalEditable"}
    assert set(request) == upstream | ours
    assert all(request[name].get("x-waitpoints-extension") for name in ours)
    assert [alt.get("type") for alt in request["tags"]["oneOf"]] == ["string", "array"]
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and "details" in error["properties"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code >= "400" and "application/json" in response.get("content", {}):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Error"), (method, path, code)


def test_it_says_who_may_call_what(schema) -> None:
    paths = schema["paths"]
    complete = paths["/api/v1/waitpoints/tokens/{token_id}/complete"]["post"]
    assert complete["security"] == [{"secretKey": []}, {"publicAccessToken": []}]
    consume = paths["/api/v1/waitpoints/tokens/{token_id}/consume"]["post"]
    assert consume["security"] == [{"secretKey": []}, {"publicAccessToken": []}]
    assert paths["/api/v1/waitpoints/tokens"]["post"]["security"] == [{"secretKey": []}]
    callback = paths["/api/v1/waitpoints/tokens/{token_id}/callback/{digest}"]
    assert "security" not in callback["post"] and "security" not in callback["get"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["secretKey"]["scheme"] == "bearer"
    assert schemes["publicAccessToken"]["bearerFormat"] == "JWT"


def test_it_marks_our_extensions(schema) -> None:
    paths, components = schema["paths"], schema["components"]["schemas"]
    assert paths["/api/v1/waitpoints/tokens/{id}/cancel"]["post"]["x-waitpoints-extension"]
    assert "x-waitpoints-extension" not in paths["/api/v1/waitpoints/tokens"]["post"]
    token = components["WaitpointToken"]["properties"]
    assert token["statusDetail"]["x-waitpoints-extension"]
    assert token["cancelledAt"]["x-waitpoints-extension"]
    assert "x-waitpoints-extension" not in token["status"]
    assert components["CreateTokenRequest"]["properties"]["approvers"]["x-waitpoints-extension"]
    assert components["TransitionResponse"]["properties"]["applied"]["x-waitpoints-extension"]
    consume = paths["/api/v1/waitpoints/tokens/{token_id}/consume"]["post"]
    assert consume["x-waitpoints-extension"] and "409" in consume["responses"]
    assert [alt.get("type") for alt in request_props(schema)["onTimeout"]["oneOf"]] == [
        "string",
        "object",
        "object",
    ]
    for name in ("decisionExpiresAt", "consumedAt", "consumedBy", "onTimeout", "escalatesAt"):
        assert token[name]["x-waitpoints-extension"], name
    webhooks = [op for path, item in paths.items() if "/webhooks" in path for op in item.values()]
    assert len(webhooks) == 6 and all(op["x-waitpoints-extension"] for op in webhooks)


def request_props(schema) -> dict:
    return schema["components"]["schemas"]["CreateTokenRequest"]["properties"]


def test_the_docs_page_is_served_with_its_own_assets(anonymous_client) -> None:
    response = anonymous_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 5, html
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the service itself"
        fetched = anonymous_client.get(asset)
        assert fetched.status_code == 200, asset
        if asset.startswith("/api/docs/"):  # the start-up script, pointing at our schema
            assert b"/api/schema/" in fetched.content
    # Nothing inline, so a Content-Security-Policy without 'unsafe-inline' applies here too.
    assert "<script>" not in html and "<style" not in html and "style=" not in html
