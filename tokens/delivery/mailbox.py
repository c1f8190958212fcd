"""Sent mail on the embedded default: one file per message, never a log line.

Approval e-mails carry callback URLs and password-reset e-mails carry reset links, both
credentials. Django's console backend printed them into the worker's and the web's logs; this
backend writes each message as ``<WAITPOINTS_MAIL_DIR>/<time>-<random>.eml`` (directory 700,
files 600: only the service's own user reads them), and ``/admin/sent-mail/`` (``tokens.surfaces.
admin.mail``) shows them to superusers. Superusers only, not all staff: a reset link for another
account is that account,
and only a superuser may already change any password.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

KEEP_MESSAGES = 1000  # older files are removed as new ones arrive
NAME_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzTZ-.")  # of the files written here


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
