"""Requests approvers can decide (2): custom labels and input fields, validated on the server and
stored in the output beside the decision, on the confirmation page and the dashboard."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, url_of
from tokens.domain.links import callback_url
from tokens.models import Membership, Token

DECISION = {
    "approve": "Refund",
    "reject": "Decline",
    "fields": {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "title": "Amount (EUR)"},
            "reason": {"type": "string", "enum": ["damaged", "late", "other"]},
            "note": {"type": "string", "maxLength": 20},
            "notify": {"type": "boolean", "title": "Tell the customer"},
            "items": {"type": "integer"},
        },
        "required": ["amount", "reason"],
    },
}


def output_of(token: Token) -> dict:
    token.refresh_from_db()
    assert token.output_type == "application/super+json", token.output
    return json.loads(token.output)["json"]


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_the_api_stores_and_returns_the_normalised_decision(api_client):
    response = api_client.post(TOKENS, {"decision": DECISION}, format="json")
    assert response.status_code == 200, response.content
    body = api_client.get(url_of(response.json()["id"])).json()
    assert body["decision"]["approve"] == "Refund"
    assert body["decision"]["fields"]["required"] == ["amount", "reason"]
    assert body["decision"]["fields"]["properties"]["reason"]["type"] == "string"


def test_labels_default_to_approve_and_reject(make_token):
    token = make_token(decision={"reject": "Decline"})
    assert token.decision_spec == {"approve": "Approve", "reject": "Decline"}


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ([], "Invalid decision: expected an object with approve, reject, fields."),
        ({"approve": ""}, "Invalid decision.approve: expected a non-empty string of at most 40"),
        ({"approve": "x" * 41}, "Invalid decision.approve: expected a non-empty string"),
        ({"colour": "red"}, "Invalid decision.colour: not supported"),
        ({"fields": {"x": 1}}, "Invalid decision.fields: expected a JSON Schema object"),
        (
            {"fields": {"properties": {"a": {"type": "array"}}}},
            "Invalid decision.fields.properties.a.type: expected one of string, number",
        ),
        (
            {"fields": {"properties": {"a": {"type": "number", "maxLength": 3}}}},
            "Invalid decision.fields.properties.a.maxLength: expected an integer",
        ),
        (
            {"fields": {"properties": {"a": {"type": "string", "enum": [1]}}}},
            "Invalid decision.fields.properties.a.enum: every option must be a string",
        ),
        (
            {"fields": {"properties": {"a": {"type": "string", "pattern": "x"}}}},
            "Invalid decision.fields.properties.a.pattern: not supported",
        ),
        (
            {"fields": {"properties": {"a": {}}, "required": ["b"]}},
            "Invalid decision.fields.properties.a.type",
        ),
        (
            {"fields": {"properties": {"a": {"type": "string"}}, "required": ["b"]}},
            "Invalid decision.fields.required: 'b' is not one of the properties.",
        ),
        (
            {"fields": {"properties": {"1a": {"type": "string"}}}},
            "Invalid decision.fields.properties.1a: field names are letters",
        ),
    ],
)
def test_it_refuses_a_bad_decision_with_a_specific_message(api_client, decision, message):
    error = assert_error(api_client.post(TOKENS, {"decision": decision}, format="json"), 400)
    assert error["error"].startswith(message), error["error"]
    assert not Token.objects.exists()


# ------------------------------------------------------------------------------------------------
# The confirmation page
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def test_the_confirmation_page_shows_labels_and_the_form(browser, make_token):
    token = make_token(decision=DECISION)
    html = browser.get(callback_url(token, base="")).content.decode()
    assert "&#10003; Refund</button>" in html.replace("✓", "&#10003;")
    assert "Decline</button>" in html
    assert '<select id="field_reason" name="field_reason"' in html
    assert 'type="number" id="field_amount"' in html
    assert 'maxlength="20"' in html
    assert 'type="checkbox" id="field_notify"' in html


def test_approving_without_required_input_is_refused_and_nothing_changes(browser, make_token):
    token = make_token(decision=DECISION)
    path = callback_url(token, base="")
    csrf = csrf_from(browser.get(path).content.decode())
    data = {"csrfmiddlewaretoken": csrf, "decision": "approved", "field_amount": "abc"}
    html = browser.post(path, data).content.decode()
    assert "Amount (EUR): enter a number." in html
    assert "Reason is required." in html
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_approving_stores_typed_values_beside_the_decision(browser, make_token):
    token = make_token(decision=DECISION)
    path = callback_url(token, base="")
    csrf = csrf_from(browser.get(path).content.decode())
    data = {
        "csrfmiddlewaretoken": csrf,
        "decision": "approved",
        "comment": "ok",
        "field_amount": "3400.50",
        "field_reason": "damaged",
        "field_notify": "on",
        "field_items": "2",
    }
    assert browser.post(path, data).status_code == 302
    assert output_of(token) == {
        "status": "approved",
        "comment": "ok",
        "fields": {"amount": 3400.5, "reason": "damaged", "notify": True, "items": 2},
    }
    html = browser.get(path).content.decode()
    assert "Approved (Refund)" in html


def test_rejecting_needs_no_required_input_but_checks_what_is_given(browser, make_token):
    token = make_token(decision=DECISION)
    path = callback_url(token, base="")
    csrf = csrf_from(browser.get(path).content.decode())
    too_long = {"csrfmiddlewaretoken": csrf, "decision": "rejected", "field_note": "x" * 21}
    assert "Note: at most 20 characters." in browser.post(path, too_long).content.decode()
    fine = {"csrfmiddlewaretoken": csrf, "decision": "rejected", "field_note": "fraud"}
    assert browser.post(path, fine).status_code == 302
    assert output_of(token) == {"status": "rejected", "fields": {"note": "fraud", "notify": False}}


def test_an_enum_value_outside_the_options_is_refused(browser, make_token):
    token = make_token(decision=DECISION)
    path = callback_url(token, base="")
    csrf = csrf_from(browser.get(path).content.decode())
    data = {
        "csrfmiddlewaretoken": csrf,
        "decision": "approved",
        "field_amount": "1",
        "field_reason": "because",
    }
    assert "Reason: choose one of the options." in browser.post(path, data).content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


# ------------------------------------------------------------------------------------------------
# The dashboard
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def approver(environment):
    return member(environment, "april", Membership.Role.APPROVER)


def test_the_dashboard_detail_shows_labels_and_validates_fields(approver, make_token):
    token = make_token(decision=DECISION, title="Refund order 4812")
    client = client_for(approver)
    page = client.get(f"/tokens/{token.friendly_id}").content.decode()
    assert "Refund order 4812</h1>" in page and "Decline</button>" in page
    assert 'id="decide-field_amount"' in page
    response = csrf_post(client, f"/tokens/{token.friendly_id}/approve", {})
    assert response.status_code == 400
    assert "Amount (EUR) is required." in response.content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    data = {"field_amount": "12", "field_reason": "late", "comment": "fine"}
    response = csrf_post(client, f"/tokens/{token.friendly_id}/approve", data)
    assert response.status_code == 302
    assert output_of(token) == {
        "status": "approved",
        "comment": "fine",
        "by": "april",
        "fields": {"amount": 12, "reason": "late", "notify": False},
    }


def test_quick_approve_of_a_request_that_needs_input_opens_its_page(approver, make_token):
    token = make_token(decision=DECISION)
    client = client_for(approver)
    home = client.get("/").content.decode()
    assert f'href="/tokens/{token.friendly_id}" aria-label="Refund' in home
    data = {"next": "/"}
    response = csrf_post(client, f"/tokens/{token.friendly_id}/approve", data)
    assert response.status_code == 302
    assert response["Location"] == f"/tokens/{token.friendly_id}"
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_bulk_approve_skips_requests_that_need_input(approver, make_token):
    needs = make_token(decision=DECISION)
    plain = make_token(decision={"approve": "Ship it"})
    client = client_for(approver)
    data = {"ids": [needs.friendly_id, plain.friendly_id], "decision": "approved"}
    review = csrf_post(client, "/tokens/bulk", data).content.decode()
    assert "Approving it asks for input: open it to decide." in review
    response = csrf_post(client, "/tokens/bulk", {**data, "confirm": "yes"}, follow=True)
    text = response.content.decode()
    assert f"Approved 1 token: {plain.friendly_id}." in text
    assert f"Not approved, approving asks for input (open each one): {needs.friendly_id}." in text
    needs.refresh_from_db()
    plain.refresh_from_db()
    assert (needs.status, plain.status) == (Token.Status.WAITING, Token.Status.COMPLETED)
