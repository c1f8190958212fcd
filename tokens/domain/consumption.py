"""Decisions a waiting service can act on safely: valid for a while, used once.

An approval may carry a validity window (``Token.decision_valid_for``, asked for on create);
when the approval is recorded, ``decision_expires_at`` is fixed at that moment plus the window
(``tokens.domain.resolution``). Just before it acts, the waiting service **consumes** the
approval: the first consumption succeeds and is recorded with who consumed it; a later one is
refused (409 ``already_consumed``) naming the first; one after the window is refused
(``approval_expired``); a token not approved is refused (``not_approved``). A consumption
carrying an idempotency key may be replayed with the same key (a retry after a lost answer
gets the same success). Afterwards the consumer may report how acting went (``succeeded`` or
``failed``), once; the same report again is a replay, a different one a conflict.

Every surface that offers this (the v1 API's ``consume``, the Agent Approval Protocol's
``consume`` and ``outcome``) calls these two functions. The checks are one conditional UPDATE
on the database's clock, so of many concurrent consumers exactly one wins, and a consumption
racing the end of the window is either before it or refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tokens.domain import audit, deadline, resolution
from tokens.domain.actors import Actor
from tokens.domain.exceptions import InvalidInput, TokenError
from tokens.models import Token, TokenEvent, iso

MAX_CONSUMER_LENGTH = 300
MAX_OUTCOME_NOTE_LENGTH = 2000
OUTCOMES = ("succeeded", "failed")


class ConsumptionRefused(TokenError):
    """The approval cannot be consumed (or its outcome recorded): ``code`` says why, one of
    ``already_consumed``, ``not_approved``, ``approval_expired``, ``not_consumed``,
    ``outcome_conflict``. A 409: retrying cannot help (the Python client does not retry it)."""

    http_status = 409

    def __init__(self, message: str, *, code: str, token: Token) -> None:
        super().__init__(message)
        self.code = code
        self.token = token


@dataclass(frozen=True)
class ConsumeResult:
    token: Token
    replayed: bool  # the same key consumed it before: nothing changed


def _consumer(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_CONSUMER_LENGTH or "\x00" in value:
        raise InvalidInput(
            f"Invalid consumer: expected a string of at most {MAX_CONSUMER_LENGTH} characters."
        )
    return value.strip()


def _key(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_CONSUMER_LENGTH or "\x00" in value:
        raise InvalidInput(
            "Invalid idempotencyKey: expected a non-empty string of at most "
            f"{MAX_CONSUMER_LENGTH} characters."
        )
    return value


def describe(token: Token) -> str:
    """ "consumed at 2026-…Z by billing-worker", for refusals and pages."""
    if token.consumed_at is None:
        return "not consumed"
    by = f" by {token.consumed_by}" if token.consumed_by else ""
    return f"consumed at {iso(token.consumed_at)}{by}"


def token_consume(
    *,
    token: Token,
    actor: Actor,
    consumer: Any = None,
    key: Any = "",
    now: datetime | None = None,
) -> ConsumeResult:
    """Approved, within its window, not yet consumed → consumed now, by ``consumer``.

    ``consumer`` names who acts (recorded and shown; the actor's credential is recorded too);
    ``key``: an idempotency key, so that a retry with the same key succeeds again."""
    label = _consumer(consumer) or actor_label(actor)
    key = _key(key)
    if token.status == Token.Status.WAITING and token.timeout_outcome:
        # Its deadline may have brought an approval (onTimeout) that no sweep has stored yet.
        with transaction.atomic():
            resolution.expire_due(now=now, limit=1, token_ids=[token.pk])
    clock = deadline.clock(now)
    consumable = Token.objects.filter(
        pk=token.pk,
        status=Token.Status.COMPLETED,
        decision="approved",
        consumed_at__isnull=True,
    ).filter(Q(decision_expires_at__isnull=True) | Q(decision_expires_at__gt=clock))
    moment = now or timezone.now()
    with transaction.atomic():
        updated = consumable.update(consumed_at=clock, consumed_by=label, consume_key=key)
        token.refresh_from_db()
        if updated:
            audit.record(token, TokenEvent.Kind.CONSUMED, actor, moment, by=label)
            return ConsumeResult(token=token, replayed=False)
    if key and token.consume_key == key and token.consumed_at is not None:
        return ConsumeResult(token=token, replayed=True)
    refusal = _why_not(token, now)
    audit.record(token, TokenEvent.Kind.CONSUME_REFUSED, actor, moment, code=refusal.code)
    raise refusal


def _why_not(token: Token, now: datetime | None) -> ConsumptionRefused:
    if token.consumed_at is not None:
        return ConsumptionRefused(
            f"Already {describe(token)}: an approval is used once.",
            code="already_consumed",
            token=token,
        )
    state = deadline.effective(token, now or timezone.now())
    if state.status != Token.Status.COMPLETED or token.decision != "approved":
        status = Token.Status(state.status).label.lower()
        what = f"{status} ({token.decision})" if token.decision else status
        return ConsumptionRefused(
            f"Not approved: the token is {what}; only an approval can be consumed.",
            code="not_approved",
            token=token,
        )
    expired = iso(token.decision_expires_at) if token.decision_expires_at else "?"
    return ConsumptionRefused(
        f"The approval expired at {expired}: ask again rather than act on it.",
        code="approval_expired",
        token=token,
    )


def token_report_outcome(
    *,
    token: Token,
    actor: Actor,
    status: Any,
    note: Any = None,
    now: datetime | None = None,
) -> ConsumeResult:
    """Consumed, no outcome yet → the consumer's outcome (``succeeded`` or ``failed``, an
    optional note). The same outcome again is a replay; a different one a conflict."""
    if status not in OUTCOMES:
        raise InvalidInput('Invalid status: expected "succeeded" or "failed".')
    if note is not None and (
        not isinstance(note, str)
        or not note.strip()
        or len(note) > MAX_OUTCOME_NOTE_LENGTH
        or "\x00" in note
    ):
        raise InvalidInput(
            f"Invalid note: expected a non-empty string of at most {MAX_OUTCOME_NOTE_LENGTH} "
            "characters."
        )
    text = note.strip() if isinstance(note, str) else ""
    clock = deadline.clock(now)
    moment = now or timezone.now()
    with transaction.atomic():
        updated = Token.objects.filter(
            pk=token.pk, consumed_at__isnull=False, outcome_status=""
        ).update(outcome_status=status, outcome_note=text, outcome_reported_at=clock)
        token.refresh_from_db()
        if updated:
            audit.record(token, TokenEvent.Kind.OUTCOME_REPORTED, actor, moment, outcome=status)
            return ConsumeResult(token=token, replayed=False)
    if token.consumed_at is None:
        raise ConsumptionRefused(
            "Not consumed: report an outcome after consuming the approval.",
            code="not_consumed",
            token=token,
        )
    if (token.outcome_status, token.outcome_note) == (status, text):
        return ConsumeResult(token=token, replayed=True)
    raise ConsumptionRefused(
        f"An outcome was already reported ({token.outcome_status}); it does not change.",
        code="outcome_conflict",
        token=token,
    )


def actor_label(actor: Actor) -> str:
    """Who consumed, when the caller names no consumer: the user, the address or the key."""
    if actor.user is not None and actor.user.is_authenticated:
        return actor.user.get_username()
    if actor.email:
        return actor.email
    key = f"API key {actor.api_key.prefix}…" if actor.api_key is not None else ""
    if actor.credential == TokenEvent.Credential.PUBLIC_ACCESS_TOKEN:
        # Signed by a secret key (the SDK's auth.createPublicToken) or issued on create.
        return f"public access token ({key or 'issued on create'})"
    return key or actor.credential or actor.channel
