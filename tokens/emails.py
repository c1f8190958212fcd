"""Approval e-mails: plain text and HTML, with Approve / Reject links to the confirmation page."""

from __future__ import annotations

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from tokens.api.serializers import base_url, callback_url
from tokens.models import OutboxMessage


def approval_context(message: OutboxMessage) -> dict[str, object]:
    token = message.token
    base = base_url(None)
    url = callback_url(token, base=base)
    return {
        "token": token,
        "project": token.environment.project,
        "environment": token.environment,
        "approve_url": f"{url}?decision=approved",
        "reject_url": f"{url}?decision=rejected",
        "dashboard_url": f"{base}/tokens/{token.environment.pk}/{token.friendly_id}",
    }


def send_approval_email(message: OutboxMessage) -> None:
    context = approval_context(message)
    subject = render_to_string("emails/approval-subject.txt", context).strip()
    text = render_to_string("emails/approval-body.txt", context)
    html = render_to_string("emails/approval-body.html", context)
    email = EmailMultiAlternatives(subject=subject, body=text, to=[message.payload["to"]])
    email.attach_alternative(html, "text/html")
    email.send()
