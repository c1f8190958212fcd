"""The confirmation page's proposal form: generated inputs and raw JSON, through decide."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from tokens.domain.links import personal_url
from tokens.models import Recipient, Token

PROPOSAL = {"to": "c@example.com", "amount": 120, "express": False, "lines": [1, 2]}
SCHEMA = {
    "type": "object",
    "properties": {
        "to": {"type": "string"},
        "amount": {"type": "integer", "maximum": 500, "title": "Amount (EUR)"},
        "express": {"type": "boolean"},
        "lines": {"type": "array"},
    },
}


@pytest.fixture
def token(make_token) -> Token:
    return make_token(
        timeout="1h",
        approvers=["ann@example.com"],
        proposal=PROPOSAL,
        proposal_schema=SCHEMA,
        proposal_editable=["amount", "express"],
    )


def page(token: Token) -> tuple[Client, str, str]:
    browser = Client(enforce_csrf_checks=True)
    recipient = Recipient.objects.get(token=token)
    path = personal_url(token, recipient, base="")
    html = browser.get(path).content.decode()
    return browser, path, html


def post(browser: Client, path: str, html: str, **data: str):
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {"csrfmiddlewaretoken": csrf, "decision": "approved", "proposal_version": "1"}
    for name in ("to", "amount"):
        form[f"proposal.{name}"] = str(PROPOSAL[name])
    return browser.post(path, {**form, **data})


def output_of(token: Token) -> dict:
    token.refresh_from_db()
    return json.loads(token.output)["json"]


def test_the_page_shows_a_form_generated_from_the_schema(token):
    _browser, _path, html = page(token)
    assert 'name="proposal.amount"' in html and 'type="number"' in html
    assert "Amount (EUR)" in html
    assert re.search(r'name="proposal.to" value="c@example.com" readonly', html)
    assert 'name="proposal.express"' in html
    assert 'name="proposal_json"' in html and "Edit as JSON (lines)" in html
    assert 'name="proposal_version" value="1"' in html


def test_approving_with_an_edited_field(token):
    browser, path, html = page(token)
    response = post(browser, path, html, **{"proposal.amount": "80", "proposal.express": "on"})
    assert response.status_code == 302
    output = output_of(token)
    assert output["proposal"] == {**PROPOSAL, "amount": 80, "express": True}
    assert output["edited"] is True and output["by"] == "ann@example.com"


def test_approving_unchanged(token):
    browser, path, html = page(token)
    assert post(browser, path, html).status_code == 302
    assert output_of(token)["edited"] is False


def test_a_schema_invalid_edit_is_shown_at_its_field(token):
    browser, path, html = page(token)
    response = post(browser, path, html, **{"proposal.amount": "900"})
    body = response.content.decode()
    assert "900 is greater than the maximum of 500" in body
    assert 'value="900"' in body  # what was typed, shown again
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_a_forbidden_field_edit_is_refused(token):
    browser, path, html = page(token)
    raw = json.dumps({**PROPOSAL, "lines": [9]})
    response = post(browser, path, html, proposal_json=raw)
    assert "Only amount, express may be edited, not lines" in response.content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal == PROPOSAL


def test_raw_json_that_is_not_json(token):
    browser, path, html = page(token)
    response = post(browser, path, html, proposal_json="{nope")
    assert "Not valid JSON" in response.content.decode()


def test_the_json_shown_unchanged_leaves_the_fields_in_charge(token):
    """Browsers send a textarea back with CRLF line breaks: the same JSON, not an edit."""
    browser, path, html = page(token)
    shown = json.dumps(PROPOSAL, indent=2).replace("\n", "\r\n")
    post(browser, path, html, proposal_json=shown, **{"proposal.amount": "80"})
    assert output_of(token)["proposal"]["amount"] == 80


# ------------------------------------------------------------------------------------------------
# Over the API: a JSON decision on the approver's personal link
# ------------------------------------------------------------------------------------------------


def api_decide(token: Token, body: dict):
    recipient = Recipient.objects.get(token=token)
    path = personal_url(token, recipient, base="")
    return Client().post(path, json.dumps(body), content_type="application/json")


def test_an_approver_edits_over_the_api(token):
    response = api_decide(
        token,
        {"decision": "approved", "proposal": {**PROPOSAL, "amount": 99}, "proposalVersion": 1},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["applied"], body["resolved"], body["edited"]) == (True, True, True)
    output = output_of(token)
    assert output["proposal"]["amount"] == 99 and output["by"] == "ann@example.com"


def test_api_edits_are_refused_with_clear_errors(token):
    invalid = api_decide(token, {"decision": "approved", "proposal": {**PROPOSAL, "amount": 900}})
    assert invalid.status_code == 400
    assert invalid.json()["details"] == [
        {"path": ["proposal.amount"], "message": "900 is greater than the maximum of 500"}
    ]
    forbidden = api_decide(token, {"decision": "approved", "proposal": {**PROPOSAL, "to": "x"}})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"].startswith("Only amount, express may be edited, not to")
    stale = api_decide(token, {"decision": "approved", "proposalVersion": 3})
    assert stale.status_code == 400 and "changed" in stale.json()["error"]
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal == PROPOSAL


def test_other_json_on_a_personal_link_is_still_the_output(token):
    response = api_decide(token, {"status": "approved", "note": "as upstream"})
    assert response.json()["applied"] is True
    assert output_of(token) == {"status": "approved", "note": "as upstream"}
