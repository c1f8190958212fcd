"""Cleaning what a caller asks for on create: tags, approvers, the request, follow-ups.

Each function takes what a surface parsed (JSON values, any type) and returns it validated and
normalised, or raises ``InvalidInput`` saying what is accepted; the limits are in
``tokens.domain.limits``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from tokens.domain.durations import DURATION_HELP, TTL_HELP, parse_duration
from tokens.domain.exceptions import InvalidInput, TooManyTags
from tokens.domain.limits import (
    MAX_APPROVERS,
    MAX_DURATION,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REQUESTED_BY_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)


@dataclass(frozen=True)
class RequestInfo:
    """What the approvers are asked (validated): title, Markdown description, context, the
    decision's labels and input fields."""

    title: str = ""
    description: str = ""
    context: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    required_approvals: int = 1
    requested_by: str = ""
    # How long an approval may be acted on (tokens.domain.consumption); None: no limit.
    decision_valid_for: timedelta | None = None


@dataclass(frozen=True)
class FollowUps:
    """When to remind the undecided approvers, and when to ask more people (and whom)."""

    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    escalate_to: tuple[str, ...] = ()


def clean_tags(tags: Any) -> list[str]:
    """A string or a list of strings, stored exactly as sent (as upstream: no trimming, commas
    allowed); each 1–128 characters and not blank (DESIGN.md), then at most 10 as submitted
    (upstream counts the list it was sent, 422), then duplicates dropped, order kept.

    A tag holding a comma is stored, but the API's ``filter[tags]`` splits on commas (as
    upstream's), so only the dashboard's tag filter (one parameter per tag) can match it.
    """
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInput("Invalid tags: expected a string or an array of strings.")
    for index, tag in enumerate(tags):
        if not tag.strip():
            raise InvalidInput(f"Invalid tag at tags[{index}]: tags cannot be empty or blank.")
        if "\x00" in tag:
            raise InvalidInput(f"Invalid tag at tags[{index}]: tags cannot contain NUL (\\u0000).")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"Invalid tag at tags[{index}]: tags must be at most {MAX_TAG_LENGTH} characters."
            )
    if len(tags) > MAX_TAGS:
        raise TooManyTags(
            f"Waitpoints can only have {MAX_TAGS} tags, you're trying to set {len(tags)}."
        )
    return list(dict.fromkeys(tags))


def clean_approvers(approvers: Any) -> list[str]:
    if approvers is None:
        return []
    if isinstance(approvers, str):
        approvers = [approvers]
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        raise InvalidInput("Invalid approvers: expected an array of e-mail addresses.")
    unique = list(dict.fromkeys(a.strip() for a in approvers))
    if len(unique) > MAX_APPROVERS:
        raise InvalidInput(f"Invalid approvers: at most {MAX_APPROVERS} addresses.")
    for address in unique:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidInput(
                f"Invalid approvers: {address!r} is not an e-mail address."
            ) from None
    return unique


def clean_required_approvals(value: Any) -> int:
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_APPROVERS:
        raise InvalidInput(
            f"Invalid requiredApprovals: expected an integer from 1 to {MAX_APPROVERS}."
        )
    return value


def clean_requested_by(value: Any) -> str:
    if value is None:
        return ""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value.strip()) > MAX_REQUESTED_BY_LENGTH
    ):
        raise InvalidInput(
            "Invalid requestedBy: expected an e-mail address or a username "
            f"(at most {MAX_REQUESTED_BY_LENGTH} characters)."
        )
    return value.strip()


def _after(value: Any, field: str, now: datetime) -> datetime | None:
    if value is None:
        return None
    duration = parse_duration(value) if isinstance(value, str) else None
    if duration is None or duration > MAX_DURATION:
        raise InvalidInput(f"Invalid {field}: expected a duration from creation, {DURATION_HELP}.")
    return now + duration


def clean_follow_ups(
    *,
    remind_after: Any,
    escalate_after: Any,
    escalate_to: Any,
    now: datetime,
    timeout_at: datetime | None,
) -> FollowUps:
    remind_at = _after(remind_after, "remindAfter", now)
    escalate_at = _after(escalate_after, "escalateAfter", now)
    if (escalate_at is None) != (escalate_to is None):
        raise InvalidInput("Invalid escalation: escalateAfter and escalateTo go together.")
    addresses = clean_approvers(escalate_to) if escalate_to is not None else []
    if escalate_at is not None and not addresses:
        raise InvalidInput("Invalid escalateTo: expected at least one e-mail address.")
    for moment, name in ((remind_at, "remindAfter"), (escalate_at, "escalateAfter")):
        if moment is not None and timeout_at is not None and moment >= timeout_at:
            raise InvalidInput(f"Invalid {name}: it must come before the timeout.")
    return FollowUps(remind_at=remind_at, escalate_at=escalate_at, escalate_to=tuple(addresses))


def clean_decision_valid_for(value: Any) -> timedelta | None:
    """How long an approval may be acted on once it is recorded (``decisionValidFor``):
    a duration of the create grammar, more than zero and at most 365 days."""
    if value is None:
        return None
    duration = parse_duration(value) if isinstance(value, str) else None
    if duration is None or not timedelta(0) < duration <= MAX_DURATION:
        raise InvalidInput(
            f"Invalid decisionValidFor: expected a duration from the approval, {TTL_HELP}."
        )
    return duration


def clean_idempotency_key(value: Any) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not value or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH
    ):
        raise InvalidInput(
            "Invalid idempotencyKey: expected a non-empty string of at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters."
        )
    return value


def clean_reason(value: Any) -> str:
    """A cancellation's reason (optional)."""
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"Invalid reason: expected a string of at most {MAX_REASON_LENGTH} characters."
        )
    return value.strip()


# A Slack channel: its id (C…, G… for old private channels) or a public channel's name, with
# or without "#" (Slack's own rules: lower case, digits, "-", "_", ".", at most 80).
_SLACK_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{8,20}$")
_SLACK_CHANNEL_NAME = re.compile(r"^#?[a-z0-9][a-z0-9._\-]{0,79}$")


def clean_slack_channel(value: Any, *, field: str = "slackChannel") -> str:
    """A Slack channel's id or name ("" for none); "#" is dropped from names."""
    if value is None or value == "":
        return ""
    text = value.strip() if isinstance(value, str) else None
    if not text or not (_SLACK_CHANNEL_ID.match(text) or _SLACK_CHANNEL_NAME.match(text)):
        raise InvalidInput(
            f"Invalid {field}: expected a Slack channel id (C0123ABCD) or a public channel's "
            'name ("approvals" or "#approvals": lower-case letters, digits, "-", "_", ".").'
        )
    return text if _SLACK_CHANNEL_ID.match(text) else text.lstrip("#")
