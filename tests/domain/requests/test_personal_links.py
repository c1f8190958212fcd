"""Requests approvers can decide (3): each e-mailed approver gets a link of their own, signed for
their address; the page, the audit trail and the output say who decided; one link can be revoked
without touching the others; the plain callback URL keeps working anonymously."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from tests.surfaces.triggerdev_v1.helpers import TOKENS
from tokens.delivery import outbox
from tokens.domain import actors, approvals, keys
from tokens.domain.links import callback_url, personal_url
from tokens.models import OutboxMessage, Recipient, Token, TokenEvent

APPROVERS = ["alice@example.com", "bob@example.com"]


@pytest.fixture(autouse=True)
def _inline_sender(settings) -> None:
    # Senders in other threads would not see this test's uncommitted rows.
    settings.WAITPOINTS_OUTBOX_SENDERS = 1


@pytest.fixture
def token(api_client) -> Token:
    body = {"timeout": "1h", "approvers": APPROVERS, "title": "Deploy 4.2 to production"}
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200, response.content
    return Token.objects.get(pk=response.json()["id"].removeprefix("waitpoint_"))


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def link_in(email) -> str:
    match = re.search(r"http://testserver(/\S+/decide/\S+?)\?decision=approved", email.body)
    assert match, email.body
    return match.group(1)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match.group(1)


def emails_by_address() -> dict[str, object]:
    outbox.deliver_due()
    return {email.to[0]: email for email in mail.outbox}


def test_each_recipient_gets_a_link_of_their_own(token):
    emails = emails_by_address()
    alice, bob = link_in(emails["alice@example.com"]), link_in(emails["bob@example.com"])
    assert alice != bob
    plain = callback_url(token, base="")
    assert plain not in emails["alice@example.com"].body
    recipients = {r.email: r for r in Recipient.objects.filter(token=token)}
    assert alice == personal_url(token, recipients["alice@example.com"], base="")
    assert "recorded as alice@example.com" in emails["alice@example.com"].body


def test_the_page_says_who_decides_and_the_decision_records_it(token, browser):
    path = link_in(emails_by_address()["alice@example.com"])
    html = browser.get(path).content.decode()
    assert "You are deciding as <strong>alice@example.com</strong>" in html
    data = {"csrfmiddlewaretoken": csrf_from(html), "decision": "approved", "comment": "go"}
    browser.post(path, data, HTTP_USER_AGENT="phone/1.0")
    token.refresh_from_db()
    assert token.status == Token.Status.COMPLETED
    assert json.loads(token.output)["json"] == {
        "status": "approved",
        "comment": "go",
        "by": "alice@example.com",
    }
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.credential, event.email) == (
        "callback",
        "personal_link",
        "alice@example.com",
    )
    assert event.actor_label == "alice@example.com"
    assert "By alice@example.com" in browser.get(path).content.decode()


def test_a_link_signed_for_another_address_is_refused(token, browser):
    emails_by_address()
    alice = Recipient.objects.get(token=token, email="alice@example.com")
    bob = Recipient.objects.get(token=token, email="bob@example.com")
    # Bob's signature on Alice's recipient id: not valid for her, so it is not a link at all.
    bob_digest = keys.personal_hash(
        callback_secret=token.environment.callback_secret, internal_id=token.id, address=bob.email
    )
    path = f"/api/v1/waitpoints/tokens/{token.friendly_id}/decide/{alice.pk}/{bob_digest}"
    assert browser.get(path).status_code == 404
    response = browser.post(path, {"status": "approved"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid URL, hash doesn't match"}
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_revoking_one_link_leaves_the_others_and_the_plain_url(token, browser):
    emails = emails_by_address()
    alice_path = link_in(emails["alice@example.com"])
    bob_path = link_in(emails["bob@example.com"])
    alice = Recipient.objects.get(token=token, email="alice@example.com")
    assert approvals.recipient_revoke(recipient=alice, actor=actors.Actor.system())
    assert not approvals.recipient_revoke(recipient=alice, actor=actors.Actor.system())
    event = token.events.get(kind=TokenEvent.Kind.LINK_REVOKED)
    assert event.detail == {"to": "alice@example.com"}

    page = browser.get(alice_path)
    assert page.status_code == 403 and "This link was revoked" in page.content.decode()
    response = browser.post(alice_path, {}, content_type="application/json")
    assert (response.status_code, response.json()) == (403, {"error": "This link was revoked."})
    assert "You are deciding as" in browser.get(bob_path).content.decode()
    plain = browser.get(callback_url(token, base="")).content.decode()
    assert "You are deciding as" not in plain and 'name="decision"' in plain
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_a_revoked_recipient_gets_no_resent_email(token):
    emails_by_address()
    mail.outbox.clear()
    alice = Recipient.objects.get(token=token, email="alice@example.com")
    approvals.recipient_revoke(recipient=alice, actor=actors.Actor.system())
    assert approvals.token_resend_approval_emails(token=token) == 1
    outbox.deliver_due()
    assert [email.to for email in mail.outbox] == [["bob@example.com"]]
    assert Recipient.objects.filter(token=token).count() == 2  # resend reuses the rows


def test_a_queued_email_to_a_revoked_recipient_is_not_sent(token):
    alice = Recipient.objects.get(token=token, email="alice@example.com")
    approvals.recipient_revoke(recipient=alice, actor=actors.Actor.system())
    outbox.deliver_due()
    assert [email.to for email in mail.outbox] == [["bob@example.com"]]
    row = OutboxMessage.objects.get(token=token, payload__to="alice@example.com")
    assert row.failed_at and "revoked" in row.last_error


def test_the_plain_callback_url_stays_anonymous(token, browser):
    path = callback_url(token, base="")
    html = browser.get(path).content.decode()
    data = {"csrfmiddlewaretoken": csrf_from(html), "decision": "approved"}
    browser.post(path, data)
    token.refresh_from_db()
    assert json.loads(token.output)["json"] == {"status": "approved"}
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.credential, event.email) == ("callback_url", "")


def test_support_staff_revoke_one_link_in_the_admin(token, browser):
    emails_by_address()
    staff = User.objects.create_superuser("sam", "sam@example.com", "pw-for-tests-123")
    admin = Client()
    admin.force_login(staff)
    alice = Recipient.objects.get(token=token, email="alice@example.com")
    response = admin.post(
        "/admin/tokens/recipient/",
        {"action": "revoke_links", "_selected_action": [alice.pk]},
        follow=True,
    )
    assert "Revoked 1 personal link." in response.content.decode()
    alice.refresh_from_db()
    assert alice.revoked_at is not None
    assert Recipient.objects.get(token=token, email="bob@example.com").revoked_at is None
    event = token.events.get(kind=TokenEvent.Kind.LINK_REVOKED)
    assert (event.channel, event.user) == ("admin", staff)
