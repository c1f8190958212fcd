"""The one spelling of "past its deadline".

A token is past its deadline once its ``timeout_at`` is at or before *now*, where now is the
**database's** clock: writers decide in SQL (``waiting_q`` guards every transition, vote and
extension; ``due_q`` picks what the sweep times out), readers compare with ``db_now``, the
database's clock at the moment of their read (``effective``). A caller may inject ``now``
(tests do) and then every check uses it instead. At COMMIT a deferred constraint trigger
(PostgreSQL, migration 0002) refuses a completion or cancellation that commits at or after the
deadline, because readers may already have reported TIMED_OUT; ``is_deadline_refusal`` tells
that failure apart.

A waiting token past its deadline reads as TIMED_OUT everywhere before the sweep persists it;
its output is derived from ``timeout_at`` (``timeout_output``), so reads before and after the
sweep agree. One whose deadline brings a decision (``onTimeout``: reject or approve,
``tokens.domain.outcomes``) reads as that completion the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError
from django.db.models import Q
from django.db.models.functions import Now

from tokens.domain.outcomes import rule_output
from tokens.models import Token, iso

TIMEOUT_CODE = "TRIGGER_WAITPOINT_TIMEOUT"
DEADLINE_CONSTRAINT = "token_resolved_before_deadline"  # the trigger of migration 0002


def clock(now: datetime | None = None) -> Any:
    """What "now" is in a query: the injected moment, or the database's own clock."""
    return now if now is not None else Now()


def waiting_q(now: datetime | None = None) -> Q:
    """Rows still WAITING and before their deadline: the guard of every change to a token."""
    return Q(status=Token.Status.WAITING) & (
        Q(timeout_at__isnull=True) | Q(timeout_at__gt=clock(now))
    )


def due_q(now: datetime | None = None) -> Q:
    """Rows stored WAITING whose deadline has passed: they read TIMED_OUT, the sweep stores it."""
    return Q(status=Token.Status.WAITING, timeout_at__lte=clock(now))


def reads_as_q(status: str, now: datetime | None = None) -> Q:
    """The rows a reader sees in ``status``: overdue WAITING rows already count as TIMED_OUT."""
    parts = reads_as_parts(status, now)
    return parts.stored if parts.overdue is None else parts.stored | parts.overdue


@dataclass(frozen=True)
class StatusParts:
    """``reads_as_q`` as its two disjoint parts (the parts of different statuses are disjoint
    too), so that a list can read each part on its own (``persistence.pagination``) instead of
    filtering one long scan with their OR."""

    stored: Q  # the rows stored in the status (WAITING: those still before their deadline)
    # The overdue WAITING rows that read as it: no more than the sweep has yet to store, so
    # read whole from the waiting-deadline index rather than in id order.
    overdue: Q | None


def reads_as_parts(status: str, now: datetime | None = None) -> StatusParts:
    if status == Token.Status.WAITING:
        return StatusParts(stored=waiting_q(now), overdue=None)
    # An overdue token whose deadline brings a decision (tokens.domain.outcomes) reads as that
    # completion; the others as timed out.
    if status == Token.Status.TIMED_OUT:
        return StatusParts(Q(status=status), due_q(now) & Q(timeout_outcome=""))
    if status == Token.Status.COMPLETED:
        return StatusParts(Q(status=status), due_q(now) & ~Q(timeout_outcome=""))
    return StatusParts(stored=Q(status=status), overdue=None)


def is_past(timeout_at: datetime | None, at: datetime) -> bool:
    """Whether a deadline has passed at ``at`` (no deadline never passes)."""
    return timeout_at is not None and timeout_at <= at


def timeout_output(timeout_at: datetime) -> str:
    """The output a timed-out token reads with (upstream's)."""
    message = f"Waitpoint timed out at {iso(timeout_at)}"
    return json.dumps({"code": TIMEOUT_CODE, "message": message}, separators=(",", ":"))


@dataclass(frozen=True)
class EffectiveState:
    """A token as a reader sees it at one moment."""

    status: str
    completed_at: datetime | None
    output: str | None
    output_type: str
    output_is_error: bool


def effective(token: Token, now: datetime) -> EffectiveState:
    """The state a reader sees: a waiting token past its timeout already reads TIMED_OUT.

    Tokens read through the selectors carry ``db_now``, the database's clock at the moment of
    the read; it wins over ``now`` so that readers and writers agree on when a token timed out.
    """
    at = getattr(token, "db_now", None) or now
    status, _ = reads_as(
        token.status, token.timeout_at, token.timeout_outcome, token.completed_at, at
    )
    if status != token.status:  # overdue
        assert token.timeout_at is not None
        if status == Token.Status.COMPLETED:  # the deadline rule decides (tokens.domain.outcomes)
            return EffectiveState(
                status=Token.Status.COMPLETED,
                completed_at=token.timeout_at,
                output=rule_output(token.timeout_outcome),
                output_type="application/super+json",
                output_is_error=False,
            )
        return EffectiveState(
            status=Token.Status.TIMED_OUT,
            completed_at=token.timeout_at,
            output=timeout_output(token.timeout_at),
            output_type="application/json",
            output_is_error=True,
        )
    output = token.output
    if token.status == Token.Status.TIMED_OUT and output is None and token.completed_at:
        # The sweep stores no output: it is derived from when the token timed out.
        output = timeout_output(token.completed_at)
    return EffectiveState(
        status=Token.Status(token.status),
        completed_at=token.completed_at,
        output=output,
        output_type=token.output_type,
        output_is_error=token.output_is_error,
    )


def reads_as(
    status: str,
    timeout_at: datetime | None,
    timeout_outcome: str,
    completed_at: datetime | None,
    at: datetime,
) -> tuple[str, datetime | None]:
    """A token's status and completion time as a reader sees them at ``at`` (the database's
    clock when read): ``effective`` without the output, for a list item, which shows none."""
    if status == Token.Status.WAITING and is_past(timeout_at, at):
        decided = Token.Status.COMPLETED if timeout_outcome else Token.Status.TIMED_OUT
        return decided, timeout_at
    return status, completed_at


def is_waiting(token: Token, now: datetime) -> bool:
    return effective(token, now).status == Token.Status.WAITING


def is_deadline_refusal(error: IntegrityError) -> bool:
    """Whether a commit failed because the deadline passed before it (the deferred trigger)."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == DEADLINE_CONSTRAINT
