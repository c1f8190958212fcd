"""The one place a token leaves WAITING.

Complete (API, public access token, callback URL, dashboard, e-mailed link), cancel, force
timeout, the timeout sweep and the expiry of an overdue token met on access all end here:

* the transition is one set-based conditional UPDATE guarded by ``deadline.waiting_q`` (one
  statement per sweep batch, ``deadline.due_q``), so concurrent writers cannot both win, and
  deadlines are decided on the database's clock (``tokens.domain.deadline``);
* the audit event is written with the transition (on PostgreSQL in the same statement, with the
  NOTIFY: ``tokens.persistence.fast_paths``); ``on_resolved`` enqueues every consequence into
  the outbox in the same transaction; it is the one place to add a consequence of resolution;
* the resolution is announced to listeners: ``NOTIFY waitpoint_resolved`` (PostgreSQL, delivered
  on commit, to other processes) and the ``token_resolved`` signal after commit (in-process).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import (
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    QuerySet,
    Value,
)
from django.utils import timezone

from tokens.delivery import aap as aap_delivery
from tokens.delivery import chat
from tokens.delivery.webhooks import events as webhook_events
from tokens.domain import audit, deadline, outcomes, signals
from tokens.domain.actors import Actor
from tokens.models import Token, TokenEvent
from tokens.persistence import fast_paths


@dataclass(frozen=True)
class Outcome:
    """What a resolution writes: the terminal state and the audit event that records it."""

    status: str
    event_kind: str
    output: str | None = None
    output_type: str = "application/json"
    output_is_error: bool = False
    cancel_reason: str = ""
    # A person's decision that resolves the token ("approved" or "rejected"), if it is one.
    decision: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    # More columns written with the transition (the final version of an edited proposal).
    fields: dict[str, Any] = field(default_factory=dict)


def resolve_one(
    *, token: Token, outcome: Outcome, actor: Actor, now: datetime | None = None
) -> TokenEvent | None:
    """WAITING (and before its deadline) → ``outcome``; the event, or None if nothing applied.

    Runs in the caller's transaction; ``now`` (tests) replaces the database's clock."""
    clock = deadline.clock(now)
    fields: dict[str, Any] = {
        "status": outcome.status,
        "completed_at": clock,
        "output": outcome.output,
        "output_type": outcome.output_type,
        "output_is_error": outcome.output_is_error,
    }
    if outcome.status == Token.Status.CANCELLED:
        fields.update(cancelled_at=clock, cancel_reason=outcome.cancel_reason)
    fields.update(outcome.fields)
    if outcome.decision:
        fields["decision"] = outcome.decision
        if outcome.decision == "approved" and token.decision_valid_for is not None:
            # The approval may be acted on for this long (domain.consumption), from the moment
            # it is recorded, on the same clock.
            window = token.decision_valid_for
            fields["decision_expires_at"] = (
                now + window
                if now is not None
                else ExpressionWrapper(
                    clock + Value(window, output_field=DurationField()),
                    output_field=DateTimeField(),
                )
            )
    event = audit.build(
        token.pk, outcome.event_kind, actor, now or timezone.now(), **outcome.detail
    )
    resolved = fast_paths.resolve(token, deadline.waiting_q, now, fields, event)
    if resolved is None:
        return None
    on_resolved(
        token_ids=[token.pk],
        status=outcome.status,
        notified=resolved.notified,
        listened=resolved.listened,
        messaged=resolved.messaged,
        notifies_receiver=resolved.notifies_receiver,
    )
    return event


def expire_due(
    *, now: datetime | None = None, limit: int, token_ids: Iterable[str] | None = None
) -> list[str]:
    """Up to ``limit`` WAITING tokens past their deadline → TIMED_OUT, in one statement (or,
    for the few whose ``onTimeout`` brings a decision, COMPLETED by the deadline rule).

    Each token's resolution time is its ``timeout_at`` (so reads before and after the sweep
    agree); its output is derived from it on read (``deadline.effective``). The sweep skips
    rows another transaction holds (it meets them again next second); expiring named tokens
    waits instead: skipping there could leave one WAITING, e.g. when the only lock on it is
    the KEY SHARE of a concurrent audit insert's foreign key. Runs in the caller's transaction.
    """
    due = Token.objects.filter(deadline.due_q(now))
    if token_ids is not None:
        ids = list(token_ids)
        if not ids:
            return []
        due = due.filter(pk__in=ids)
    decided = _decide_due(due, now=now, limit=limit, skip_locked=token_ids is None)
    if len(decided) >= limit:
        return decided
    return decided + _time_out_due(
        due.filter(timeout_outcome=""),
        now=now,
        limit=limit - len(decided),
        skip_locked=token_ids is None,
    )


def _time_out_due(
    due: QuerySet[Token], *, now: datetime | None, limit: int, skip_locked: bool
) -> list[str]:
    due = due.order_by("timeout_at")[:limit]
    moment = now or timezone.now()
    event = audit.build("", TokenEvent.Kind.TIMED_OUT, Actor.system(), moment)
    fields = {
        "status": Token.Status.TIMED_OUT,
        "completed_at": F("timeout_at"),
        "output": None,
        "output_type": "application/json",
        "output_is_error": True,
    }
    expired, events_written = fast_paths.expire(
        due, skip_locked=skip_locked, fields=fields, event=event
    )
    if expired and not events_written:
        for pk in expired:  # each one the next link of its token's chain
            fast_paths.append_event(
                audit.build(pk, TokenEvent.Kind.TIMED_OUT, Actor.system(), moment)
            )
    if expired:
        on_resolved(token_ids=expired, status=Token.Status.TIMED_OUT)
    return expired


def _decide_due(
    due: QuerySet[Token], *, now: datetime | None, limit: int, skip_locked: bool
) -> list[str]:
    """Overdue tokens whose deadline brings a decision (``onTimeout``: reject or approve, or
    an escalation's ``then``) → COMPLETED with the deadline rule's decision, one at a time
    (they are the few; the many time out in one statement). Each is resolved at its
    ``timeout_at``, as readers saw it (``deadline.effective``), by the rule, never a person."""
    rows = due.exclude(timeout_outcome="").order_by("timeout_at")
    rows = rows.select_for_update(skip_locked=skip_locked)  # no effect on SQLite
    decided = []
    for token in rows[:limit]:
        if _decide_at_deadline(token, now=now) is not None:
            decided.append(token.pk)
    return decided


def _decide_at_deadline(token: Token, *, now: datetime | None) -> TokenEvent | None:
    decision = token.timeout_outcome
    fields: dict[str, Any] = {
        "status": Token.Status.COMPLETED,
        "completed_at": F("timeout_at"),
        "output": outcomes.rule_output(decision),
        "output_type": "application/super+json",
        "output_is_error": False,
        "decision": decision,
        "decided_by_deadline": True,
    }
    if decision == "approved" and token.decision_valid_for is not None:
        # The approval's window starts when it was recorded: at the deadline.
        fields["decision_expires_at"] = ExpressionWrapper(
            F("timeout_at") + Value(token.decision_valid_for, output_field=DurationField()),
            output_field=DateTimeField(),
        )
    detail = {"decision": decision, "rule": "onTimeout"}
    spec = token.on_timeout or {}
    if spec.get("rule"):
        detail["environmentRule"] = spec["rule"]
    event = audit.build(
        token.pk, TokenEvent.Kind.COMPLETED, outcomes.rule_actor(), now or timezone.now(), **detail
    )
    resolved = fast_paths.resolve(token, deadline.due_q, now, fields, event)
    if resolved is None:
        return None
    on_resolved(
        token_ids=[token.pk],
        status=Token.Status.COMPLETED,
        notified=resolved.notified,
        listened=resolved.listened,
        messaged=resolved.messaged,
    )
    return event


# ------------------------------------------------------------------------------------------------
# Consequences and announcements: the one place to hang a new consequence of resolution
# ------------------------------------------------------------------------------------------------


def on_resolved(
    *,
    token_ids: list[str],
    status: str,
    notified: bool = False,
    listened: bool = True,
    messaged: bool = True,
    notifies_receiver: bool = True,
) -> None:
    """Everything that follows a resolution, in the resolving transaction.

    Work that must not be lost goes into the outbox here (webhooks, the final update of the
    tokens' chat messages, …); listeners that only need to know are told through NOTIFY (on
    commit) and the ``token_resolved`` signal. ``notified``: the resolving statement sent the
    NOTIFY itself; ``listened`` False: it found no enabled webhook endpoint in the tokens'
    environments; ``messaged`` False: no chat message shows the token; ``notifies_receiver``
    False: no AAP request with a receiver among them; so nothing to enqueue.
    """
    if listened:
        webhook_events.enqueue_for_resolution(token_ids=token_ids, status=status)
    if messaged:
        chat.resolved(token_ids, now=timezone.now())
    # Agent Approval Protocol requests whose instance has a receiver: the request.resolved
    # event, recorded with the decision (tokens.delivery.aap).
    if notifies_receiver:
        aap_delivery.enqueue_events(token_ids, now=timezone.now())
    if not notified:
        fast_paths.notify(token_ids)
    statuses = dict.fromkeys(token_ids, status)
    transaction.on_commit(
        lambda: signals.token_resolved.send(sender=Token, token_ids=token_ids, statuses=statuses)
    )
