"""The dashboard's proposal form: an approver edits before approving, through decide."""

from __future__ import annotations

import json

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of, output_of
from tokens.models import Token, TokenEvent

PROPOSAL = {"amount": 120, "currency": "EUR", "meta": {"k": 1}}
SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
    },
}


def make(make_token, **kwargs) -> Token:
    return make_token(timeout="1h", proposal=PROPOSAL, proposal_schema=SCHEMA, **kwargs)


def form(**changes: str) -> dict[str, str]:
    return {
        "proposal.amount": "120",
        "proposal.currency": "EUR",
        "proposal_version": "1",
        **changes,
    }


def test_the_page_shows_the_form(approver, make_token):
    token = make(make_token)
    html = client_for(approver).get(f"/tokens/{token.friendly_id}").content.decode()
    assert 'name="proposal.amount"' in html and '<option value="USD">' in html
    assert "Edit as JSON (meta)" in html


def test_an_approver_edits_then_approves(approver, make_token):
    token = make(make_token)
    client = client_for(approver)
    response = csrf_post(
        client, f"/tokens/{token.friendly_id}/approve", form(**{"proposal.currency": "USD"})
    )
    assert response.status_code == 302
    output = output_of(token)
    assert output["proposal"] == {**PROPOSAL, "currency": "USD"} and output["edited"] is True
    completed = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert completed.detail["proposal"]["patch"] == [
        {"op": "replace", "path": "/currency", "value": "USD"}
    ]


def test_raw_json_edits_nested_fields(approver, make_token):
    token = make(make_token)
    raw = json.dumps({**PROPOSAL, "meta": {"k": 2}})
    response = csrf_post(
        client_for(approver), f"/tokens/{token.friendly_id}/approve", form(proposal_json=raw)
    )
    assert response.status_code == 302
    assert output_of(token)["proposal"]["meta"] == {"k": 2}


def test_an_invalid_edit_shows_the_page_again_with_its_error(approver, make_token):
    token = make(make_token)
    response = csrf_post(
        client_for(approver),
        f"/tokens/{token.friendly_id}/approve",
        form(**{"proposal.amount": "0"}),
    )
    assert response.status_code == 400
    assert "0 is less than the minimum of 1" in response.content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_a_stale_page_is_refused(approver, admin_member, make_token):
    token = make(
        make_token, required_approvals=2, approvers=["april@example.com", "adam@example.com"]
    )
    client = client_for(admin_member)
    csrf_post(client, f"/tokens/{token.friendly_id}/approve", form(**{"proposal.amount": "99"}))
    stale = csrf_post(client_for(approver), f"/tokens/{token.friendly_id}/approve", form())
    assert any("changed while you were deciding" in m for m in messages_of(stale))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal["amount"] == 99


def test_a_forbidden_edit_is_refused(approver, make_token):
    token = make(make_token, proposal_editable=False)
    response = csrf_post(
        client_for(approver),
        f"/tokens/{token.friendly_id}/approve",
        form(**{"proposal.amount": "5"}),
    )
    assert any("cannot be edited" in m for m in messages_of(response))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal == PROPOSAL
