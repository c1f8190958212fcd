"""The staff page of sent mail on the embedded default (``tokens.delivery.mailbox`` writes it):
superusers only, since a password-reset link for another account is that account."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any

from django.contrib.auth.decorators import user_passes_test
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from tokens.delivery import mailbox


def _read(path: Path) -> ParsedMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def _text_of(message: ParsedMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""


def _summary(path: Path) -> dict[str, Any]:
    message = _read(path)
    return {
        "name": path.name,
        "subject": message.get("Subject", ""),
        "to": message.get("To", ""),
        "date": message.get("Date", ""),
    }


@user_passes_test(lambda user: user.is_active and user.is_superuser, login_url="admin:login")
def sent_mail(request: HttpRequest) -> HttpResponse:
    """Staff page: the newest messages, and one message's text when ``?m=<file>`` is given."""
    directory = mailbox.mail_dir()
    files = sorted(directory.glob("*.eml"), reverse=True)[:200] if directory.is_dir() else []
    selected = None
    name = request.GET.get("m", "")
    if name:
        if not set(name) <= mailbox.NAME_CHARS or not (directory / name).is_file():
            raise Http404("No such message")
        message = _read(directory / name)
        selected = {**_summary(directory / name), "body": _text_of(message)}
    context = {
        "title": "Sent mail",
        "messages_sent": [_summary(path) for path in files],
        "selected": selected,
        "mail_dir": str(directory),
    }
    response = render(request, "admin/sent_mail.html", context)
    response["Cache-Control"] = "no-store"
    return response
