"""An environment's Slack connection and its routing rules: the services the dashboard, the
admin and ``manage.py connect_slack`` call (none of them writes these models itself).

The bot token and the signing secret are stored encrypted with a key derived from SECRET_KEY
(``tokens.domain.keys``, as API keys and webhook secrets), with a hint (their shape and last
four characters) that is all any page ever shows again. No Slack call is made here: the first
message shows whether the token works (the connection records each call's outcome).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens.domain import inputs, keys
from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_TAG_LENGTH
from tokens.models import Environment, SlackConnection, SlackRoute

_BOT_TOKEN = re.compile(r"^xoxb-[A-Za-z0-9\-]{10,250}$")
_SIGNING_SECRET = re.compile(r"^[A-Za-z0-9]{16,128}$")
MAX_ROUTES = 50


def clean_bot_token(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not _BOT_TOKEN.match(text):
        raise InvalidInput(
            "Invalid bot token: expected the app's Bot User OAuth Token, which starts with "
            '"xoxb-" (OAuth & Permissions in the app\'s settings).'
        )
    return text


def clean_signing_secret(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not _SIGNING_SECRET.match(text):
        raise InvalidInput(
            "Invalid signing secret: expected the app's Signing Secret (Basic Information → "
            "App Credentials), letters and digits only."
        )
    return text


def hint(secret: str) -> str:
    """What is shown of a secret from now on: its kind and its last four characters."""
    shape = "xoxb-" if secret.startswith("xoxb-") else ""
    return f"{shape}…{secret[-4:]}"


def bot_token(connection: SlackConnection) -> str | None:
    return keys.decrypt(connection.encrypted_bot_token)


def signing_secret(connection: SlackConnection) -> str | None:
    return keys.decrypt(connection.encrypted_signing_secret)


@transaction.atomic
def slack_connect(
    *,
    environment: Environment,
    bot_token: Any,
    signing_secret: Any,
    default_channel: Any = "",
    direct_messages: bool = True,
    now: datetime | None = None,
) -> SlackConnection:
    """Connect (or reconnect, replacing both secrets) the environment's Slack app."""
    token = clean_bot_token(bot_token)
    secret = clean_signing_secret(signing_secret)
    channel = inputs.clean_slack_channel(default_channel, field="channel")
    now = now or timezone.now()
    values = {
        "encrypted_bot_token": keys.encrypt(token),
        "bot_token_hint": hint(token),
        "encrypted_signing_secret": keys.encrypt(secret),
        "signing_secret_hint": hint(secret),
        "default_channel": channel,
        "direct_messages": direct_messages,
        "enabled": True,
        "last_error": "",
        "last_error_at": None,
        "updated_at": now,
    }
    connection, _created = SlackConnection.objects.update_or_create(
        environment=environment, defaults=values, create_defaults={**values, "created_at": now}
    )
    return connection


def slack_update(
    *,
    connection: SlackConnection,
    default_channel: Any = None,
    direct_messages: bool | None = None,
    enabled: bool | None = None,
    now: datetime | None = None,
) -> SlackConnection:
    """Change where requests go, or pause the connection (secrets stay as they are)."""
    changes: dict[str, Any] = {"updated_at": now or timezone.now()}
    if default_channel is not None:
        changes["default_channel"] = inputs.clean_slack_channel(default_channel, field="channel")
    if direct_messages is not None:
        changes["direct_messages"] = direct_messages
    if enabled is not None:
        changes["enabled"] = enabled
    SlackConnection.objects.filter(pk=connection.pk).update(**changes)
    connection.refresh_from_db()
    return connection


def slack_disconnect(*, connection: SlackConnection) -> None:
    """Forget the connection: its secrets, routes, user cache and the record of its messages
    (messages already in Slack stay there; they are no longer updated)."""
    connection.delete()


def slack_route_add(
    *, connection: SlackConnection, tag: Any, channel: Any, now: datetime | None = None
) -> SlackRoute:
    """Requests tagged ``tag`` go to ``channel`` (unless the request names its own)."""
    text = tag.strip() if isinstance(tag, str) else ""
    if not text or len(text) > MAX_TAG_LENGTH or "," in text or "\x00" in text:
        raise InvalidInput(
            f"Invalid tag: expected one of the requests' tags (1 to {MAX_TAG_LENGTH} "
            "characters, no comma)."
        )
    clean = inputs.clean_slack_channel(channel, field="channel")
    if not clean:
        raise InvalidInput("Invalid channel: a rule needs a channel.")
    if SlackRoute.objects.filter(connection=connection).count() >= MAX_ROUTES:
        raise InvalidInput(f"At most {MAX_ROUTES} rules per environment.")
    try:
        with transaction.atomic():
            return SlackRoute.objects.create(
                connection=connection, tag=text, channel=clean, created_at=now or timezone.now()
            )
    except IntegrityError:
        raise InvalidInput(f"Requests tagged {text!r} already go to {clean}.") from None


def slack_route_delete(*, route: SlackRoute) -> None:
    route.delete()
