"""Approval e-mails: written to the outbox on create, sent by the worker, retried, given up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from tokens import tasks
from tokens.delivery import outbox
from tokens.domain import actors, approvals, lifecycle
from tokens.domain.links import callback_url, personal_url
from tokens.models import OutboxMessage, Recipient, Token, TokenEvent

APPROVERS = ["ann@example.com", "ben@example.com"]


class ExplodingBackend(BaseEmailBackend):
    """An SMTP server that is down."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server at mail.example.com:587 refused the connection")


@pytest.fixture
def token(api_client) -> Token:
    response = api_client.post(
        "/api/v1/waitpoints/tokens",
        # Long enough that the retry tests, which step the clock by days, stay before it.
        {"timeout": "365d", "tags": ["deploy", "prod-eu"], "approvers": APPROVERS},
        format="json",
    )
    assert response.status_code == 200, response.content
    return Token.objects.get(pk=response.json()["id"].removeprefix("waitpoint_"))


def test_it_writes_one_outbox_row_per_approver(token: Token):
    rows = OutboxMessage.objects.filter(token=token).order_by("payload__to")

    assert [row.payload["to"] for row in rows] == APPROVERS
    assert all(row.kind == OutboxMessage.Kind.APPROVAL_EMAIL for row in rows)
    assert all(row.attempts == 0 and row.delivered_at is None for row in rows)
    assert token.approvers == APPROVERS


def test_it_rejects_invalid_approvers_and_creates_nothing(api_client):
    response = api_client.post(
        "/api/v1/waitpoints/tokens", {"approvers": ["not-an-address"]}, format="json"
    )

    assert response.status_code == 400
    assert not Token.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_it_sends_text_and_html_with_approve_reject_and_dashboard_links(token: Token):
    delivered = tasks.deliver_outbox()  # the Celery task, called as a plain function

    assert delivered == 2
    assert sorted(message.to[0] for message in mail.outbox) == APPROVERS
    dashboard = f"http://testserver/tokens/{token.friendly_id}"
    for message in mail.outbox:
        assert len(message.to) == 1
        # Each recipient's own link (README: "Requests approvers can decide"), not the plain URL.
        recipient = Recipient.objects.get(token=token, email=message.to[0])
        url = personal_url(token, recipient, base="http://testserver")
        assert callback_url(token, base="http://testserver") not in message.body
        assert "alice" in message.subject and "\n" not in message.subject
        assert message.extra_headers["Auto-Submitted"] == "auto-generated"
        html, mimetype = message.alternatives[0]
        assert mimetype == "text/html"
        for body in (message.body, html):
            assert f"{url}?decision=approved" in body
            assert f"{url}?decision=rejected" in body
            assert dashboard in body
            assert "deploy" in body
        assert "<a href=" not in message.body  # the text part is plain text
    rows = OutboxMessage.objects.filter(token=token)
    assert all(row.delivered_at and row.attempts == 1 and not row.last_error for row in rows)
    assert token.events.filter(kind=TokenEvent.Kind.EMAIL_SENT).count() == 2


def test_it_never_sends_twice(token: Token):
    outbox.deliver_due()
    outbox.deliver_due()
    later = timezone.now() + timedelta(days=1)
    outbox.deliver_due(now=later)

    assert len(mail.outbox) == 2
    assert token.events.filter(kind=TokenEvent.Kind.EMAIL_SENT).count() == 2


def test_it_links_to_a_page_that_does_not_decide(token: Token, client):
    outbox.deliver_due()
    link = next(
        line.split(" ", 1)[1].strip()
        for line in mail.outbox[0].body.splitlines()
        if line.startswith("Approve:")
    )

    response = client.get(link.removeprefix("http://testserver"))

    assert response.status_code == 200
    assert b"Approve" in response.content
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_it_retries_with_backoff_then_gives_up(token: Token, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_emails.ExplodingBackend"
    now = timezone.now()

    assert outbox.deliver_due(now=now) == 0

    rows = list(OutboxMessage.objects.filter(token=token))
    for row in rows:
        assert row.attempts == 1
        assert row.delivered_at is None and row.failed_at is None
        assert "ConnectionRefusedError" in row.last_error
        assert "refused the connection" in row.last_error
        assert row.next_attempt_at > now + timedelta(seconds=30)
    # Not due yet: a second run right away does not touch them.
    outbox.deliver_due(now=now + timedelta(seconds=1))
    assert {row.attempts for row in OutboxMessage.objects.filter(token=token)} == {1}

    for _ in range(outbox.HANDLERS[OutboxMessage.Kind.APPROVAL_EMAIL].max_attempts + 2):
        now += timedelta(days=1)
        outbox.deliver_due(now=now)

    rows = list(OutboxMessage.objects.filter(token=token))
    for row in rows:
        assert row.attempts == outbox.HANDLERS[OutboxMessage.Kind.APPROVAL_EMAIL].max_attempts
        assert row.failed_at is not None
        assert row.delivered_at is None
    failures = token.events.filter(kind=TokenEvent.Kind.EMAIL_FAILED)
    assert sorted(event.detail["to"] for event in failures) == APPROVERS
    assert all("ConnectionRefusedError" in event.detail["error"] for event in failures)
    assert len(mail.outbox) == 0


def test_it_sends_after_a_retry_once_the_server_is_back(token: Token, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_emails.ExplodingBackend"
    now = timezone.now()
    for _ in range(outbox.HANDLERS[OutboxMessage.Kind.APPROVAL_EMAIL].max_attempts):
        outbox.deliver_due(now=now)
        now += timedelta(days=1)
    failed = OutboxMessage.objects.filter(token=token, failed_at__isnull=False)
    assert failed.count() == 2

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    for message in failed:
        assert outbox.retry(message=message, now=now) is True
    outbox.deliver_due(now=now)

    assert len(mail.outbox) == 2
    assert OutboxMessage.objects.filter(token=token, delivered_at__isnull=False).count() == 2
    message = OutboxMessage.objects.filter(token=token).first()
    assert outbox.retry(message=message) is False  # delivered: never again


def test_it_queues_the_emails_again_on_resend(token: Token):
    outbox.deliver_due()

    queued = approvals.token_resend_approval_emails(token=token)
    outbox.deliver_due()

    assert queued == 2
    assert len(mail.outbox) == 4


def test_it_does_not_resend_for_a_resolved_token(token: Token):
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"ok": True})

    assert approvals.token_resend_approval_emails(token=token) == 0


def test_it_does_not_send_for_a_token_resolved_before_delivery(token: Token):
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"ok": True})

    assert outbox.deliver_due() == 0

    assert len(mail.outbox) == 0
    rows = list(OutboxMessage.objects.filter(token=token))
    assert rows and all(row.failed_at is not None for row in rows)
    assert all("already resolved" in row.last_error for row in rows)
    assert all(row.attempts == 0 for row in rows)
