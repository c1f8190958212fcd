"""Calls to Slack's Web API through the official ``slack_sdk`` WebClient, and what each answer
means: a 429 carries how long to wait (``RateLimited``), an ``{"ok": false, "error": …}`` is a
``SlackCallFailed`` with a hint for the admins, a timeout or a refused connection is
``SlackUnavailable``. The outbox retries all of them; nothing here retries or sleeps (the
SDK's own retry handlers are off), so one slow call costs one attempt of one message.

Each call's outcome is noted on the connection for the dashboard (``last_ok_at``, at most once a
minute; ``last_error`` and its time, kept until the next error); the bot token is never part
of any message or error text.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.error import URLError

from django.conf import settings
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from tokens.domain import keys
from tokens.models import SlackConnection

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 30  # seconds, when a 429 names no Retry-After
MAX_RETRY_AFTER = 3600
OK_NOTE_INTERVAL = timedelta(minutes=1)  # last_ok_at is written at most this often

# What an admin can do about Slack's error codes (https://api.slack.com/methods/*#errors).
HINTS = {
    "channel_not_found": "the channel does not exist or the app cannot see it: use the "
    "channel's id, and invite the app to private channels",
    "not_in_channel": "invite the app to the channel (/invite @app), or add the "
    "chat:write.public scope for public channels",
    "is_archived": "the channel is archived",
    "invalid_auth": "the bot token is not valid: connect Slack again with a new token",
    "not_authed": "no bot token was sent: connect Slack again",
    "token_revoked": "the bot token was revoked: connect Slack again with a new token",
    "token_expired": "the bot token expired: connect Slack again with a new token",
    "account_inactive": "the app was uninstalled or its bot deactivated",
    "missing_scope": "the app lacks a scope this needs (docs/slack.md lists them)",
    "ratelimited": "Slack's rate limit: retried after the time Slack asked for",
    "users_not_found": "no Slack user has this e-mail address",
    "user_not_found": "no such Slack user",
    "message_not_found": "the message was deleted in Slack",
    "cant_update_message": "the message can no longer be edited",
    "msg_too_long": "the message is too long",
    "invalid_blocks": "Slack refused the message's blocks",
    "expired_trigger_id": "the click is more than 3 seconds old: Slack no longer opens a form",
}


class SlackError(Exception):
    """A Web API call did not succeed; the outbox retries the message later."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class RateLimited(SlackError):
    """429: Slack asks to wait ``seconds`` before calling again."""

    def __init__(self, method: str, seconds: int) -> None:
        super().__init__(method, f"rate limited (429): Slack asked to wait {seconds} s")
        self.seconds = seconds


class SlackCallFailed(SlackError):
    """Slack answered ``{"ok": false, "error": code}`` (or an HTTP error)."""

    def __init__(self, method: str, code: str, status: int | None) -> None:
        hint = HINTS.get(code, "")
        shown = f"Slack answered {code}" if code else f"Slack answered HTTP {status}"
        super().__init__(method, f"{shown} ({hint})" if hint else shown)
        self.code = code
        self.status = status


class SlackUnavailable(SlackError):
    """Slack could not be reached, or did not answer in time."""


def client(connection: SlackConnection, *, timeout: float | None = None) -> WebClient:
    """A WebClient for this connection's bot, on ``SLACK_API_URL``, without retries of its own."""
    token = keys.decrypt(connection.encrypted_bot_token)
    if token is None:
        raise SlackError("client", "the bot token cannot be decrypted (was SECRET_KEY changed?)")
    return WebClient(
        token=token,
        base_url=settings.SLACK_API_URL,
        timeout=int(timeout if timeout is not None else settings.SLACK_TIMEOUT) or 1,
        retry_handlers=[],
    )


def call(
    connection: SlackConnection,
    method: str,
    send: Callable[[WebClient], SlackResponse],
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """``send(client)`` once; its data, or one of the errors above (noted on the connection)."""
    try:
        response = send(client(connection, timeout=timeout))
    except SlackApiError as error:
        failure = _failure(method, error.response)
        _note(connection, failure)
        raise failure from None
    except (URLError, TimeoutError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        failure = SlackUnavailable(method, f"Slack did not answer: {type(reason).__name__}")
        _note(connection, failure)
        raise failure from None
    except SlackClientError as error:
        failure = SlackUnavailable(method, f"Slack client error: {type(error).__name__}")
        _note(connection, failure)
        raise failure from None
    _note(connection, None)
    data = response.data
    return data if isinstance(data, dict) else {}


def _failure(method: str, response: SlackResponse) -> SlackError:
    if response.status_code == 429:
        return RateLimited(method, retry_after(response.headers))
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or "")
    if code.startswith("Received an unexpected response"):  # the SDK's words for a non-JSON body
        code = ""
    return SlackCallFailed(method, code, response.status_code)


def retry_after(headers: dict[str, Any]) -> int:
    """Seconds from a Retry-After header (any case), bounded; the default when absent or odd."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return min(max(int(str(raw).strip()), 1), MAX_RETRY_AFTER)
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER


def _note(connection: SlackConnection, failure: SlackError | None) -> None:
    now = timezone.now()
    if failure is not None:
        SlackConnection.objects.filter(pk=connection.pk).update(
            last_error=str(failure)[:1000], last_error_at=now
        )
        connection.last_error, connection.last_error_at = str(failure)[:1000], now
        logger.warning("Slack call failed for %s: %s", connection.environment_id, failure)
        return
    if connection.last_ok_at and now - connection.last_ok_at < OK_NOTE_INTERVAL:
        return
    SlackConnection.objects.filter(pk=connection.pk).update(last_ok_at=now)
    connection.last_ok_at = now
