"""The decision rules on the dashboard and in bulk review (tokens.domain.decide decides; the
pages word its refusals): an out-of-role decision, an unknown decision value and a missing
required field are refused and nothing about the token changes. The confirmation page's twin
of this file is tests/surfaces/links/test_decision_rules.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of
from tokens.models import Token, TokenEvent

pytestmark = pytest.mark.django_db
NEEDS_AMOUNT = {
    "fields": {
        "type": "object",
        "properties": {"amount": {"type": "integer", "title": "Amount"}},
        "required": ["amount"],
    }
}


def unchanged(token: Token) -> bool:
    token.refresh_from_db()
    return token.status == Token.Status.WAITING and not token.votes.exists()


def page_post(url: str, data: dict) -> str:
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf
    response = browser.post(url, {"csrfmiddlewaretoken": csrf.group(1), **data})
    assert response.status_code == 200, response.status_code  # re-rendered with the error
    return response.content.decode()


# ------------------------------------------------------------------------------------------------
# The dashboard: one token, and bulk review
# ------------------------------------------------------------------------------------------------


def test_the_dashboard_refuses_a_viewer(viewer, make_token):
    token = make_token(timeout="1h")
    response = csrf_post(client_for(viewer), f"/tokens/{token.friendly_id}/approve", {})
    assert messages_of(response) == [
        "Not allowed: as viewer in alice you cannot approve tokens. Nothing was changed."
    ]
    assert unchanged(token)
    assert token.events.get(kind=TokenEvent.Kind.DENIED).detail == {"action": "approve"}


def test_the_dashboard_refuses_a_missing_required_field(approver, make_token):
    token = make_token(timeout="1h", decision=NEEDS_AMOUNT)
    response = csrf_post(client_for(approver), f"/tokens/{token.friendly_id}/approve", {})
    assert response.status_code == 400
    assert "Amount is required." in response.content.decode()
    assert unchanged(token)


def test_bulk_review_refuses_an_unknown_decision(approver, make_token):
    token = make_token(timeout="1h")
    response = csrf_post(
        client_for(approver),
        "/tokens/bulk",
        {"ids": [token.friendly_id], "decision": "maybe", "confirm": "yes"},
    )
    assert response.status_code == 302
    [message] = messages_of(response)
    assert "maybe" in message  # the form names the value it does not know
    assert unchanged(token)


def test_bulk_review_refuses_a_viewer_and_a_missing_field(viewer, approver, make_token):
    plain = make_token(timeout="1h")
    needs = make_token(timeout="1h", decision=NEEDS_AMOUNT)
    ids = [plain.friendly_id, needs.friendly_id]
    data = {"ids": ids, "decision": "approved", "confirm": "yes"}
    as_viewer = messages_of(csrf_post(client_for(viewer), "/tokens/bulk", data))
    assert any(m.startswith("Not allowed for 2 tokens") for m in as_viewer)
    assert unchanged(plain) and unchanged(needs)
    as_approver = messages_of(csrf_post(client_for(approver), "/tokens/bulk", data))
    assert any(m.startswith("Not approved, approving asks for input") for m in as_approver)
    assert unchanged(needs)
    # The review page predicts the same refusals (decide.check), without deciding.
    review = csrf_post(client_for(viewer), "/tokens/bulk", {"ids": ids, "decision": "approved"})
    assert review.content.decode().count("cannot decide.") == 2
    plain.refresh_from_db()
    assert plain.status == Token.Status.COMPLETED  # the approver's bulk run decided it alone
