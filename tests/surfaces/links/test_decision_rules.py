"""The decision rules on the confirmation page (tokens.domain.decide decides; the page words
its refusals): an out-of-authority decision, an unknown decision value and a missing required
field are refused and nothing about the token changes. The dashboard's twin of this file is
tests/surfaces/dashboard/test_decision_rules.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tokens.domain.links import callback_url, personal_url
from tokens.models import Recipient, Token, TokenEvent

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
# The confirmation page (callback URL, personal link)
# ------------------------------------------------------------------------------------------------


def test_the_page_refuses_an_unknown_decision(make_token):
    token = make_token(timeout="1h")
    html = page_post(callback_url(token, base=""), {"decision": "maybe"})
    assert "Choose Approve or Reject." in html
    assert unchanged(token)


def test_the_page_refuses_a_missing_required_field(make_token):
    token = make_token(timeout="1h", decision=NEEDS_AMOUNT)
    html = page_post(callback_url(token, base=""), {"decision": "approved"})
    assert "Check the highlighted fields." in html and "Amount is required." in html
    assert unchanged(token)


def test_the_page_refuses_who_may_not_decide(make_token):
    """The callback URL's holder is anonymous: a request that needs to know who decides
    refuses it, audited, as the dashboard refuses a viewer."""
    token = make_token(timeout="1h", required_approvals=2, approvers=["a@example.com"])
    html = page_post(callback_url(token, base=""), {"decision": "approved"})
    assert "This request needs to know who decides" in html
    assert unchanged(token)
    assert token.events.filter(kind=TokenEvent.Kind.DENIED).count() == 1


def test_a_personal_link_decides_as_its_recipient(make_token):
    token = make_token(timeout="1h", approvers=["a@example.com"])
    recipient = Recipient.objects.get(token=token)
    html = page_post(personal_url(token, recipient, base=""), {"decision": "maybe"})
    assert "Choose Approve or Reject." in html
    assert unchanged(token)
