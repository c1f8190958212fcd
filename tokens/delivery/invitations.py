"""The e-mail a project admin's invitation sends (``tokens.domain.tenancy.member_invite``).

Sent at once, through Django's e-mail framework like the password-reset e-mail (so on the
embedded default it lands in ``var/mail/`` and on ``/admin/sent-mail/``, with the rest). A new
account gets a one-time link to choose its password: Django's password-reset token, which stops
working once the password is set (it is keyed by the password hash and the last login) and after
``PASSWORD_RESET_TIMEOUT``. Someone who already has a password is told where to log in.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tokens.domain.links import public_base_url
from tokens.models import Membership

ROLE_CAN = {
    Membership.Role.VIEWER: "see the project's requests and their outcome",
    Membership.Role.APPROVER: "approve and reject the project's requests",
    Membership.Role.ADMIN: (
        "approve and reject requests, complete, cancel and extend them, and manage the "
        "project's members and webhooks"
    ),
}


def set_password_url(user: object, *, base: str) -> str:
    """The one-time link to choose a password (Django's password-reset confirmation)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))  # type: ignore[attr-defined]
    token = default_token_generator.make_token(user)  # type: ignore[arg-type]
    return base + reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def send_invitation(*, membership: Membership, invited_by: str, needs_password: bool) -> None:
    """E-mail ``membership``'s user that they are in its project; raises what the backend
    raises (the caller reports it)."""
    user, base = membership.user, public_base_url()
    context = {
        "user": user,
        "project": membership.project,
        "role": membership.get_role_display().lower(),
        "role_can": ROLE_CAN[Membership.Role(membership.role)],
        "invited_by": invited_by,
        "needs_password": needs_password,
        "set_password_url": set_password_url(user, base=base) if needs_password else "",
        "login_url": base + reverse("login"),
        "dashboard_url": base + "/",
        "timeout_days": max(1, round(settings.PASSWORD_RESET_TIMEOUT / 86400)),
    }
    subject = " ".join(render_to_string("emails/invitation-subject.txt", context).split())
    email = EmailMessage(
        subject=subject,
        body=render_to_string("emails/invitation-body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    email.send()
