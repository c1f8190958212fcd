"""GET …/tokens/{id}/audit: the token's audit trail as JSON Lines, each event with its digest."""

from __future__ import annotations

import json

from waitpoints_client import verify_audit

from tests.surfaces.triggerdev_v1.helpers import assert_error, url_of
from tokens.domain import actors, chain, lifecycle

SYSTEM = actors.Actor.system()


def lines_of(response) -> list[dict]:
    return [json.loads(line) for line in response.content.decode().splitlines()]


def test_it_exports_the_trail_in_chain_order(api_client, make_token):
    token = make_token(timeout="1h")
    api_client.post(f"{url_of(token)}/complete", {"data": {"ok": 1}}, format="json")
    lifecycle.token_cancel(token=token, actor=SYSTEM)
    response = api_client.get(f"{url_of(token)}/audit", HTTP_ACCEPT="application/jsonl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    lines = lines_of(response)
    assert [(line["seq"], line["kind"]) for line in lines] == [
        (1, "created"),
        (2, "completed"),
        (3, "cancel_ignored"),
    ]
    assert lines[0]["previous"] == "" and lines[1]["previous"] == lines[0]["digest"]
    assert lines[1]["channel"] == "api" and lines[1]["actor"].startswith("key:")
    assert lines[1]["actorLabel"].startswith("API key tr_dev_")
    assert all(line["token"] == token.friendly_id for line in lines)
    assert verify_audit(lines) == []  # checkable without the server
    token.refresh_from_db()
    assert lines[-1]["digest"] == token.audit_head


def test_an_edited_export_does_not_check(api_client, make_token):
    token = make_token(timeout="1h")
    lifecycle.token_cancel(token=token, actor=SYSTEM, reason="no")
    lines = lines_of(api_client.get(f"{url_of(token)}/audit"))
    lines[1]["detail"]["reason"] = "yes"
    assert verify_audit(lines) == [f"{token.friendly_id} event #2: digest does not match"]
    assert list(chain.verify_lines(lines)) == verify_audit(lines)


def test_it_is_scoped_and_needs_a_secret_key(
    api_client, other_api_client, anonymous_client, make_token
):
    token = make_token()
    assert_error(other_api_client.get(f"{url_of(token)}/audit"), 404, "Waitpoint not found")
    assert anonymous_client.get(f"{url_of(token)}/audit").status_code == 401
    created = api_client.post("/api/v1/waitpoints/tokens", {}, format="json")
    jwt = created["x-trigger-jwt"]
    with_jwt = anonymous_client.get(
        f"/api/v1/waitpoints/tokens/{created.json()['id']}/audit",
        HTTP_AUTHORIZATION=f"Bearer {jwt}",
    )
    assert with_jwt.status_code == 401
    assert with_jwt["Content-Type"] == "application/json"


def test_an_unknown_token_is_a_json_404_whatever_is_accepted(api_client):
    response = api_client.get(
        "/api/v1/waitpoints/tokens/waitpoint_nosuch/audit", HTTP_ACCEPT="application/jsonl"
    )
    assert_error(response, 404, "Waitpoint not found")


def test_the_schema_documents_it(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/waitpoints/tokens/{id}/audit"]["get"]
    assert operation["operationId"] == "exportWaitpointTokenAudit"
    assert "application/jsonl" in operation["responses"]["200"]["content"]
    assert "digest" in schema["components"]["schemas"]["AuditEvent"]["properties"]
