"""Approval e-mails: plain text and HTML, with Approve / Reject links to the confirmation page.

Sent by the worker from the outbox (``services.outbox_deliver_due``), through Django's e-mail
framework: the console backend by default, SMTP when ``EMAIL_HOST`` is set. The links open the
confirmation page (GET never decides anything), so a mail scanner that follows them is harmless.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from tokens.api.serializers import base_url, callback_url
from tokens.models import OutboxMessage, Token


def dashboard_url(token: Token, *, base: str) -> str:
    """The token's page on the dashboard (it asks approvers to log in first)."""
    return base + reverse("dashboard:token_detail", args=[token.friendly_id])


def approval_context(message: OutboxMessage) -> dict[str, object]:
    token = message.token
    base = base_url(None)
    url = callback_url(token, base=base)
    return {
        "token": token,
        "project": token.environment.project,
        "environment": token.environment,
        "now": timezone.now(),
        "approve_url": f"{url}?decision=approved",
        "reject_url": f"{url}?decision=rejected",
        "dashboard_url": dashboard_url(token, base=base),
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


def send_approval_email(message: OutboxMessage) -> None:
    """Send one approval e-mail; any exception is recorded by the outbox and retried."""
    approval_message(message).send(fail_silently=False)
