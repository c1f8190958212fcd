"""Who is who: an approver's e-mail address ↔ their Slack user, cached per connection.

Direct messages need the user of an address (``users.lookupByEmail``, from the worker); a
click needs the address of a user (``users.info``). Both answers are Slack's own: an address
counts only if Slack says the account's e-mail is confirmed, so a click decides as the
address the person proved to Slack, never as one they typed. Answers are trusted for
``SLACK_USER_CACHE_SECONDS`` (a "no such account" for a tenth of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tokens.delivery.slack import api
from tokens.models import SlackConnection, SlackUser


def _fresh_since(*, missing: bool) -> timedelta:
    seconds = settings.SLACK_USER_CACHE_SECONDS
    return timedelta(seconds=seconds // 10 if missing else seconds)


def _remember(connection: SlackConnection, email: str, user_id: str) -> None:
    SlackUser.objects.update_or_create(
        connection=connection,
        email=email.lower(),
        defaults={"user_id": user_id, "looked_up_at": timezone.now()},
    )


def user_id_for(connection: SlackConnection, email: str) -> str | None:
    """The Slack user with this e-mail address (None: Slack has no such account). Calls
    ``users.lookupByEmail`` unless cached; raises ``api.SlackError`` when Slack cannot say."""
    address = email.lower()
    cached = SlackUser.objects.filter(connection=connection, email=address).first()
    now = timezone.now()
    if cached is not None and now - cached.looked_up_at < _fresh_since(missing=not cached.user_id):
        return cached.user_id or None
    try:
        data = api.call(
            connection,
            "users.lookupByEmail",
            lambda web: web.users_lookupByEmail(email=address),
        )
    except api.SlackCallFailed as failure:
        if failure.code != "users_not_found":
            raise
        _remember(connection, address, "")
        return None
    user = data.get("user") or {}
    user_id = str(user.get("id") or "")
    if not user_id or user.get("deleted") or user.get("is_bot"):
        _remember(connection, address, "")
        return None
    _remember(connection, address, user_id)
    return user_id


@dataclass(frozen=True)
class Identified:
    """A clicker: their confirmed e-mail address, or why there is none (``problem``)."""

    email: str = ""
    problem: str = ""  # "unknown" (no usable address) or "unavailable" (Slack did not answer)


def email_of(connection: SlackConnection, user_id: str) -> Identified:
    """The confirmed e-mail address of a Slack user, for a click (cached, else ``users.info``
    within ``SLACK_CLICK_TIMEOUT``: Slack waits 3 s for our answer to the click)."""
    now = timezone.now()
    cached = (
        SlackUser.objects.filter(connection=connection, user_id=user_id)
        .order_by("-looked_up_at")
        .first()
    )
    if cached is not None and now - cached.looked_up_at < _fresh_since(missing=False):
        return Identified(email=cached.email)
    try:
        data = api.call(
            connection,
            "users.info",
            lambda web: web.users_info(user=user_id),
            timeout=settings.SLACK_CLICK_TIMEOUT,
        )
    except api.SlackCallFailed:
        return Identified(problem="unknown")
    except api.SlackError:
        return Identified(problem="unavailable")
    user = data.get("user") or {}
    email = str((user.get("profile") or {}).get("email") or "")
    usable = (
        email
        and user.get("id") == user_id
        and not user.get("deleted")
        and not user.get("is_bot")
        and user.get("is_email_confirmed", True) is not False
    )
    if not usable:
        return Identified(problem="unknown")
    _remember(connection, email, user_id)
    return Identified(email=email.lower())


def user_ids_known(connection: SlackConnection, emails: list[str]) -> dict[str, str]:
    """The cached Slack users of these addresses (for mentions; no Web API call)."""
    rows = SlackUser.objects.filter(
        connection=connection, email__in=[e.lower() for e in emails]
    ).exclude(user_id="")
    return {row.email: row.user_id for row in rows}
