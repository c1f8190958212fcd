"""Approval e-mails: plain text and HTML, with Approve / Reject links to the confirmation page.

Sent by the worker from the outbox (``tokens.delivery.outbox``), through Django's e-mail
framework: one file each under ``var/mail/`` by default (``tokens.delivery.mailbox``, read at
``/admin/sent-mail/``), SMTP when ``EMAIL_HOST`` is set. The links open the
confirmation page (GET never decides anything), so a mail scanner that follows them is harmless.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import approvals, audit, deadline, decisions
from tokens.domain.actors import Actor
from tokens.domain.links import callback_url, dashboard_url, personal_url, public_base_url
from tokens.models import OutboxMessage, Recipient, Token, TokenEvent


def approval_context(message: OutboxMessage) -> dict[str, object]:
    token = message.token
    base = public_base_url()
    # Each recipient gets a link of their own, built from the message alone; messages queued
    # before personal links existed carry no recipient and keep the plain callback URL.
    recipient_id, to = message.payload.get("recipient"), message.payload["to"]
    if recipient_id:
        url = personal_url(token, (recipient_id, to), base=base)
    else:
        url = callback_url(token, base=base)
    return {
        "token": token,
        "project": token.environment.project,
        "environment": token.environment,
        "now": timezone.now(),
        "approve_url": f"{url}?decision=approved",
        "reject_url": f"{url}?decision=rejected",
        "dashboard_url": dashboard_url(token, base=base),
        "labels": decisions.labels(token.decision_spec),
        "recipient": to if recipient_id else "",
        "purpose": message.payload.get("purpose", ""),
    }


def approval_message(message: OutboxMessage) -> EmailMultiAlternatives:
    context = approval_context(message)
    # A subject must be one line, whatever the template or the tags contain.
    subject = " ".join(render_to_string("emails/approval-subject.txt", context).split())
    text = render_to_string("emails/approval-body.txt", context)
    html = render_to_string("emails/approval-body.html", context)
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.payload["to"]],
        # RFC 3834: machine-generated; well-behaved auto-responders do not answer it.
        headers={"Auto-Submitted": "auto-generated", "X-Waitpoint-Id": message.token.friendly_id},
    )
    email.attach_alternative(html, "text/html")
    return email


def _sent(message: OutboxMessage, now: datetime) -> None:
    to = message.payload.get("to")
    audit.record(message.token, TokenEvent.Kind.EMAIL_SENT, Actor.system(), now, to=to)


def _gave_up(message: OutboxMessage, now: datetime) -> None:
    to, error = message.payload.get("to"), message.last_error
    audit.record(
        message.token, TokenEvent.Kind.EMAIL_FAILED, Actor.system(), now, to=to, error=error
    )


# The service's own work: not counted against a tenant and allowed the reserved slots, so mail
# and reminders never wait behind tenants' webhooks (delivery.outbox).
@outbox.handler(
    OutboxMessage.Kind.APPROVAL_EMAIL,
    max_attempts=8,
    backoff=outbox.exponential(60),
    on_delivered=_sent,
    on_gave_up=_gave_up,
    concurrency=8,
    per_tenant=False,
)
def send_approval_email(message: OutboxMessage) -> None:
    """Send one approval e-mail; any exception is recorded by the outbox and retried.

    Runs with no transaction open. EMAIL_TIMEOUT (settings) bounds the SMTP connect and every
    socket operation, so a server that accepts and never answers costs one attempt, not a stuck
    worker."""
    if deadline.effective(message.token, timezone.now()).status != Token.Status.WAITING:
        # Decided (or timed out) before we got to it: asking now would only confuse.
        raise outbox.Skip("the token was already resolved.")
    recipient_id = message.payload.get("recipient")
    if (
        recipient_id
        and Recipient.objects.filter(pk=recipient_id, revoked_at__isnull=False).exists()
    ):
        raise outbox.Skip("this recipient's link was revoked.")
    approval_message(message).send(fail_silently=False)


def _follow_up_due(message: OutboxMessage) -> None:
    if deadline.effective(message.token, timezone.now()).status != Token.Status.WAITING:
        raise outbox.Skip("the token was already resolved.")


@outbox.handler(
    OutboxMessage.Kind.REMINDER,
    max_attempts=8,
    backoff=outbox.exponential(60),
    concurrency=8,
    per_tenant=False,
)
def send_reminders(message: OutboxMessage) -> None:
    """At ``remindAfter``: queue one reminder e-mail per approver who has not decided (or, when
    a request comes back from "not now", to that approver alone)."""
    _follow_up_due(message)
    to = message.payload.get("to")
    approvals.token_remind(
        token=message.token,
        only=list(to) if isinstance(to, list) else None,
        aside_until=message.payload.get("aside_until"),
    )


@outbox.handler(
    OutboxMessage.Kind.ESCALATION,
    max_attempts=8,
    backoff=outbox.exponential(60),
    concurrency=8,
    per_tenant=False,
)
def escalate(message: OutboxMessage) -> None:
    """At ``escalateAfter`` (or the first deadline of ``onTimeout`` escalate): ask the
    ``escalateTo`` people too."""
    _follow_up_due(message)
    approvals.token_escalate(
        token=message.token,
        addresses=list(message.payload.get("to", [])),
        by_rule=message.payload.get("rule") == "onTimeout",
    )
