"""The one place a token leaves WAITING.

Complete (API, public access token, callback URL, dashboard, e-mailed link), cancel, force
timeout, the timeout sweep and the expiry of an overdue token met on access all end here:

* the transition is one set-based ``UPDATE … WHERE status = 'WAITING' … RETURNING`` (one
  statement per sweep batch), so concurrent writers cannot both win;
* deadlines are decided on the **database's** clock: the guard compares ``timeout_at`` with the
  database's ``now`` (unless a caller injects ``now``, as tests do), and on PostgreSQL a deferred
  constraint trigger (migration 0002) refuses a completion or cancellation whose transaction
  commits at or after the deadline, because readers may already have reported TIMED_OUT;
* the audit event is written with the transition (on PostgreSQL in the same statement, with the
  NOTIFY); ``on_resolved`` enqueues every consequence into the outbox in the same transaction;
  it is the one place to add a consequence of resolution;
* the resolution is announced to listeners: ``NOTIFY waitpoint_resolved`` (PostgreSQL, delivered
  on commit, to other processes) and the ``token_resolved`` signal after commit (in-process).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from tokens.delivery import webhooks
from tokens.domain import audit, signals
from tokens.domain.audit import Actor
from tokens.models import Token, TokenEvent, WebhookEndpoint
from tokens.persistence import sql

NOTIFY_CHANNEL = "waitpoint_resolved"
NOTIFY_PAYLOAD_LIMIT = 7900  # PostgreSQL's NOTIFY payload must stay under 8000 bytes
DEADLINE_CONSTRAINT = "token_resolved_before_deadline"


@dataclass(frozen=True)
class Outcome:
    """What a resolution writes: the terminal state and the audit event that records it."""

    status: str
    event_kind: str
    output: str | None = None
    output_type: str = "application/json"
    output_is_error: bool = False
    cancel_reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def resolve_one(
    *, token: Token, outcome: Outcome, actor: Actor, now: datetime | None = None
) -> TokenEvent | None:
    """WAITING (and before its deadline) → ``outcome``; the event, or None if nothing applied.

    Runs in the caller's transaction; ``now`` (tests) replaces the database's clock."""
    clock: Any = now or Now()
    fields: dict[str, Any] = {
        "status": outcome.status,
        "completed_at": clock,
        "output": outcome.output,
        "output_type": outcome.output_type,
        "output_is_error": outcome.output_is_error,
    }
    if outcome.status == Token.Status.CANCELLED:
        fields.update(cancelled_at=clock, cancel_reason=outcome.cancel_reason)
    still_waiting = Token.objects.filter(pk=token.pk, status=Token.Status.WAITING).filter(
        Q(timeout_at__isnull=True) | Q(timeout_at__gt=clock)
    )
    moment = now or timezone.now()
    event = audit.build(token.pk, outcome.event_kind, actor, moment, **outcome.detail)
    if connection.vendor == "postgresql":
        listened = _resolve_in_one_statement(token, still_waiting, fields, event)
        if listened is None:
            return None
        on_resolved(token_ids=[token.pk], status=outcome.status, notified=True, listened=listened)
        return event
    if not still_waiting.update(**fields):
        return None
    token.refresh_from_db()
    event.save()
    on_resolved(token_ids=[token.pk], status=outcome.status)
    return event


def _resolve_in_one_statement(
    token: Token, queryset: QuerySet[Token], fields: dict[str, Any], event: TokenEvent
) -> bool | None:
    """The conditional UPDATE, its audit event, the NOTIFY and a look for webhook endpoints in
    one statement (PostgreSQL); None if no row matched (then nothing was written), otherwise
    whether an enabled webhook endpoint may want the event.

    A completion otherwise took five round trips (UPDATE, SELECT the clock's values, INSERT the
    event, SELECT endpoints, NOTIFY); the values the database's clock wrote come back with it.
    """
    query = cast(UpdateQuery, queryset.query.chain(UpdateQuery))
    query.add_update_values(fields)
    update_sql, update_params = query.get_compiler(queryset.db).as_sql()
    event_columns, event_values, event_params = sql.insert_parts(event)
    events = TokenEvent._meta.db_table
    endpoints = WebhookEndpoint._meta.db_table
    statement = (
        f"WITH resolved AS ({update_sql} RETURNING id, environment_id, completed_at, "  # noqa: S608 - names are ours
        f"cancelled_at), "
        f"event AS (INSERT INTO {events} ({event_columns}) "
        f"SELECT {event_values} FROM resolved RETURNING id) "
        f"SELECT r.completed_at, r.cancelled_at, (SELECT id FROM event), pg_notify(%s, r.id), "
        f"EXISTS (SELECT 1 FROM {endpoints} w WHERE w.enabled AND "
        f"w.environment_id = r.environment_id) FROM resolved r"
    )
    params = [*update_params, *event_params, NOTIFY_CHANNEL]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(token, name, value)
    token.completed_at, token.cancelled_at, event_id, _notified, listened = row
    sql.saved(event, event_id)
    return bool(listened)


def expire_due(
    *, now: datetime | None = None, limit: int, token_ids: Iterable[str] | None = None
) -> list[str]:
    """Up to ``limit`` WAITING tokens past their deadline → TIMED_OUT, in one statement.

    Each token's resolution time is its ``timeout_at`` (so reads before and after the sweep
    agree); its output is derived from it on read (``Token.effective``). ``SKIP LOCKED`` lets
    several sweepers split the work; the outer ``status = 'WAITING'`` keeps a completion that
    won a row from being overwritten. Runs in the caller's transaction.
    """
    table = Token._meta.db_table
    clock_sql, params = _clock_sql(now)
    only = ""
    if token_ids is not None:
        ids = list(token_ids)
        if not ids:
            return []
        only = f" AND id IN ({', '.join(['%s'] * len(ids))})"
        params += ids
    # The sweep skips rows another transaction holds (it will meet them again next second);
    # expiring one named token waits instead: skipping it there could leave it WAITING, e.g.
    # when the only lock on it is the KEY SHARE of a concurrent audit insert's foreign key.
    lock = ""
    if connection.features.has_select_for_update:
        skip = token_ids is None and connection.features.has_select_for_update_skip_locked
        lock = " FOR UPDATE SKIP LOCKED" if skip else " FOR UPDATE"
    # MATERIALIZED: as a plain IN (subquery), PostgreSQL may run the LIMIT more than once and
    # update more rows than the batch (seen in tests); a materialized CTE runs it once.
    due = (
        f"WITH due AS MATERIALIZED (SELECT id FROM {table} "  # noqa: S608 - names are ours
        f"WHERE status = %s AND timeout_at <= {clock_sql}{only} "
        f"ORDER BY timeout_at LIMIT %s{lock}) "
    )
    update = (
        f"UPDATE {table} SET status = %s, completed_at = timeout_at, output = NULL, "  # noqa: S608
        f"output_type = %s, output_is_error = %s "
        f"WHERE status = %s AND id IN (SELECT id FROM due) RETURNING id"
    )
    waiting = Token.Status.WAITING.value
    all_params: list[Any] = [waiting, *params, limit]
    all_params += [Token.Status.TIMED_OUT.value, "application/json", True, waiting]
    moment = now or timezone.now()
    if connection.vendor == "postgresql":
        # The audit rows in the same statement: one round trip per batch, no Python objects.
        sql = due + f", expired AS ({update}) " + _insert_events_sql()
        all_params += _event_params(moment)
    else:
        sql = due + update
    with connection.cursor() as cursor:
        cursor.execute(sql, all_params)
        expired = [row[0] for row in cursor.fetchall()]
    if expired and connection.vendor != "postgresql":
        TokenEvent.objects.bulk_create(
            [audit.build(pk, TokenEvent.Kind.TIMED_OUT, Actor.system(), moment) for pk in expired]
        )
    if expired:
        on_resolved(token_ids=expired, status=Token.Status.TIMED_OUT)
    return expired


def _insert_events_sql() -> str:
    """One TIMED_OUT audit event by the system per expired row (as ``audit.build`` writes)."""
    return (
        f"INSERT INTO {TokenEvent._meta.db_table} "  # noqa: S608 - names are ours
        "(token_id, kind, channel, credential, ip, user_agent, detail, created_at) "
        "SELECT id, %s, %s, %s, NULL, '', '{}', %s FROM expired RETURNING token_id"
    )


def _event_params(moment: datetime) -> list[Any]:
    system = Actor.system()
    return [
        TokenEvent.Kind.TIMED_OUT.value,
        system.channel,
        system.credential,
        connection.ops.adapt_datetimefield_value(moment),
    ]


def relax_durability() -> None:
    """For the sweep's transactions only: commit without waiting for the WAL flush.

    Safe because a sweep is re-derivable: if PostgreSQL crashed and lost its last commits, those
    tokens would be WAITING past their deadline again, which every reader already reports as
    TIMED_OUT (``Token.effective``), and the next sweep persists them, with their audit events
    and announcements, which were part of the same lost transactions. It saves a disk flush
    per batch when a burst of tokens falls due.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _clock_sql(now: datetime | None) -> tuple[str, list[Any]]:
    """SQL for "now": the injected moment, or the database's own clock."""
    if now is not None:
        return "%s", [connection.ops.adapt_datetimefield_value(now)]
    if connection.vendor == "postgresql":
        # Not clock_timestamp(): it is volatile, so PostgreSQL cannot use it as an index bound
        # and scans every WAITING row; statement_timestamp() is fixed for the statement.
        return "statement_timestamp()", []
    # As Django's Now() on SQLite: the format Django stores datetimes in, so strings compare.
    return "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')", []


def is_deadline_refusal(error: IntegrityError) -> bool:
    """Whether a commit failed because the deadline passed before it (the deferred trigger)."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == DEADLINE_CONSTRAINT


# ------------------------------------------------------------------------------------------------
# Consequences and announcements: the one place to hang a new consequence of resolution
# ------------------------------------------------------------------------------------------------


def on_resolved(
    *, token_ids: list[str], status: str, notified: bool = False, listened: bool = True
) -> None:
    """Everything that follows a resolution, in the resolving transaction.

    Work that must not be lost goes into the outbox here (webhooks, …); listeners that only
    need to know are told through NOTIFY (on commit) and the ``token_resolved`` signal.
    ``notified``: the resolving statement sent the NOTIFY itself; ``listened`` False: it found
    no enabled webhook endpoint in the tokens' environments, so there is nothing to enqueue.
    """
    if listened:
        webhooks.enqueue_for_resolution(token_ids=token_ids, status=status)
    if not notified:
        _notify(token_ids)
    statuses = dict.fromkeys(token_ids, status)
    transaction.on_commit(
        lambda: signals.token_resolved.send(sender=Token, token_ids=token_ids, statuses=statuses)
    )


def _notify(token_ids: list[str]) -> None:
    """``NOTIFY waitpoint_resolved, 'id,id,…'``, chunked; PostgreSQL delivers it on commit."""
    if connection.vendor != "postgresql" or not token_ids:
        return
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for token_id in token_ids:
        if current and size + len(token_id) + 1 > NOTIFY_PAYLOAD_LIMIT:
            chunks.append(",".join(current))
            current, size = [], 0
        current.append(token_id)
        size += len(token_id) + 1
    chunks.append(",".join(current))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, chunk) FROM unnest(%s::text[]) AS chunk",
            [NOTIFY_CHANNEL, chunks],
        )
