"""Keep credentials out of logs, and keep an outage from flooding them.

``RedactSecretsFilter`` masks, in every log line and traceback: callback hashes (``/callback/…``,
also when any part of the path is percent-encoded, which Django decodes before routing),
password-reset links (``/reset/<uid>/<token>/``), secret API keys (``tr_dev_…``), webhook
signing secrets (``whsec_…``), Slack tokens (``xoxb-…``, ``xapp-…``), JWTs, bearer
credentials and session / CSRF cookies.
``CollapseRepeatsFilter`` lets the same warning or error through once per
``WAITPOINTS_LOG_REPEAT_SECONDS`` and counts the ones it held back.

Django's ``LOGGING`` puts both on its console handler; Celery replaces the root handlers in the
worker and beat, so ``install_on_celery_handlers`` (connected in waitpoints_site/celery.py) puts
them on Celery's own.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from urllib.parse import unquote

_WORD = re.compile(r"[^\s\"'<>()\[\]{},]+")
_PATH_SECRETS = (
    (re.compile(r"(/callback/)[^/?#\s\"'<>]+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(/reset/)[^/?#\s\"'<>]+/[^/?#\s\"'<>]+", re.IGNORECASE), r"\1<redacted>"),
)
# Each with a marker that every match contains (lower-cased), looked for before the pattern runs.
_SECRETS = (
    ("tr_", re.compile(r"\b(tr_(?:dev|stg|prod)_)[A-Za-z0-9_\-]{8,}"), r"\1<redacted>"),
    # webhook signing secrets
    ("whsec_", re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{8,}"), r"\1<redacted>"),
    # Slack tokens: bot (xoxb-), user (xoxp-), app-level (xapp-), legacy and refresh ones.
    ("x", re.compile(r"\b(xox[abeoprs]-|xapp-)[A-Za-z0-9\-]{8,}"), r"\1<redacted>"),
    (
        "eyj",
        re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
        "<redacted-jwt>",
    ),
    ("bearer", re.compile(r"(\bBearer\s+)[^\s\"',]+", re.IGNORECASE), r"\1<redacted>"),
    ("=", re.compile(r"\b(sessionid|csrftoken)=[^;\s\"',]+", re.IGNORECASE), r"\1=<redacted>"),
)


def _decoded(word: str) -> str:
    # Django percent-decodes PATH_INFO once; decode until stable (bounded) to be sure.
    for _ in range(3):
        decoded = unquote(word)
        if decoded == word:
            break
        word = decoded
    return word


def _redact_word(match: re.Match[str]) -> str:
    word = match.group(0)
    candidate = _decoded(word) if "%" in word else word
    redacted = candidate
    for pattern, replacement in _PATH_SECRETS:
        redacted = pattern.sub(replacement, redacted)
    return redacted if redacted != candidate else word


def redact(text: str) -> str:
    """``text`` with every credential we know the shape of replaced by ``<redacted>``."""
    # Word by word only where a path secret can be: the two markers as such, or anything
    # percent-encoded (which may spell them). Every access-log line passes here, and the
    # word-by-word pass cost more than the rest of the logging (docs/benchmarks/profile.md).
    lowered = text.lower()
    if "%" in text or "/callback/" in lowered or "/reset/" in lowered:
        text = _WORD.sub(_redact_word, text)
    for marker, pattern, replacement in _SECRETS:
        if marker in lowered:  # most lines hold none of the markers
            text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the formatter's problem, not ours
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# The filter that used to mask callback hashes only; kept for settings that name it.
RedactCallbackHashFilter = RedactSecretsFilter

_DIGITS = re.compile(r"\d+")


class CollapseRepeatsFilter(logging.Filter):
    """The same warning (digits aside) at most once per interval; INFO and below pass."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__()
        self._interval = interval
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        from django.conf import settings

        try:
            return float(getattr(settings, "WAITPOINTS_LOG_REPEAT_SECONDS", 60))
        except Exception:  # noqa: BLE001 - settings not configured: a sane default
            return 60.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        key = (record.name, record.levelno, _DIGITS.sub("#", message)[:300])
        now = time.monotonic()
        with self._lock:
            last, held_back = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.interval():
                self._seen[key] = (last, held_back + 1)
                return False
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held_back and last is not None:
            record.msg = f"{message} (and {held_back} more like it in the last {now - last:.0f} s)"
            record.args = None
        return True


def install_on_celery_handlers(logger: logging.Logger | None = None, **_kwargs: object) -> None:
    """Celery's after_setup_logger / after_setup_task_logger: filter its handlers as ours."""
    if logger is None:
        return
    redact_filter, repeats_filter = RedactSecretsFilter(), CollapseRepeatsFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactSecretsFilter) for f in handler.filters):
            handler.addFilter(redact_filter)
            handler.addFilter(repeats_filter)
