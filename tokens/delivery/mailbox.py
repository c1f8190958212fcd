"""Sent mail on the embedded default: one file per message, never a log line.

Approval e-mails carry callback URLs and password-reset e-mails carry reset links, both
credentials. Django's console backend printed them into the worker's and the web's logs; this
backend writes each message as ``<WAITPOINTS_MAIL_DIR>/<time>-<random>.eml`` (directory 700,
files 600: only the service's own user reads them), and ``/admin/sent-mail/`` shows them to
superusers. Superusers only, not all staff: a reset link for another account is that account,
and only a superuser may already change any password.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

KEEP_MESSAGES = 1000  # older files are removed as new ones arrive
_NAME_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzTZ-.")


def mail_dir() -> Path:
    return Path(settings.WAITPOINTS_MAIL_DIR)


class EmailBackend(BaseEmailBackend):
    """Writes each message to its own file, readable by the owner only."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = mail_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = directory / f"{stamp}-{secrets.token_hex(4)}.eml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.message().as_bytes())
            sent += 1
        _prune(directory)
        return sent


def _prune(directory: Path) -> None:
    files = sorted(directory.glob("*.eml"))
    for old in files[: max(0, len(files) - KEEP_MESSAGES)]:
        old.unlink(missing_ok=True)


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
    directory = mail_dir()
    files = sorted(directory.glob("*.eml"), reverse=True)[:200] if directory.is_dir() else []
    selected = None
    name = request.GET.get("m", "")
    if name:
        if not set(name) <= _NAME_CHARS or not (directory / name).is_file():
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
