"""Keep callback hashes out of logs: the hash in the URL is a credential."""

from __future__ import annotations

import logging
import re

_CALLBACK_HASH = re.compile(r"(/callback/)[0-9A-Za-z]+")


def redact(text: str) -> str:
    return _CALLBACK_HASH.sub(r"\1<redacted>", text)


class RedactCallbackHashFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
