"""The outbox: work that must follow a state change (approval e-mails, webhooks, reminders).

A row is written in the same transaction as the change that caused it, so nothing is lost when
the broker or the worker is down. The worker delivers it:

1. **claim** a few due rows in a short transaction (``SKIP LOCKED``), setting a lease
   (``claimed_until``) and counting the attempt; then commit, so no lock is held while sending;
2. **send** each through the handler registered for its kind, with no transaction open (a slow
   SMTP server or webhook endpoint delays nothing but its own message);
3. **settle** each in its own short transaction as soon as its own send ends (not when the
   whole batch has been sent): delivered, skipped, retried later with back-off, or given up
   after the handler's last attempt. A worker that dies between 1 and 3
   leaves a claim that lapses, and another worker takes the message again.

Requests never wait on the broker: ``kick()`` only sets an in-process flag that a daemon thread
turns into a Celery message; the beat schedule delivers what is due anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from tokens.models import OutboxMessage, Token

logger = logging.getLogger(__name__)

CLAIM_BATCH = 16
LEASE = timedelta(minutes=5)  # longer than any handler's timeouts; then the claim lapses
SENDER_THREAD = "outbox-sender"


class Skip(Exception):  # noqa: N818 - a decision, not an error
    """Raised by a handler: the message is moot (e.g. its token was decided); never retried."""


class RetryLater(Exception):  # noqa: N818 - a failed attempt with its receiver's wish
    """Raised by a handler: this attempt failed and the receiver asked for a pause
    (``Retry-After``): the next attempt comes no sooner than ``not_before``."""

    def __init__(self, message: str, *, not_before: datetime) -> None:
        super().__init__(message)
        self.not_before = not_before


def exponential(base_seconds: int) -> Callable[[int], timedelta]:
    """Back-off after the n-th failed attempt: base, 2 × base, 4 × base, …"""
    return lambda attempts: timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0))


@dataclass(frozen=True)
class Handler:
    send: Callable[[OutboxMessage], None]
    max_attempts: int = 8
    backoff: Callable[[int], timedelta] = exponential(60)
    # Called in the settling transaction (e.g. to write the audit event of a sent e-mail).
    on_delivered: Callable[[OutboxMessage, datetime], None] | None = None
    on_gave_up: Callable[[OutboxMessage, datetime], None] | None = None


HANDLERS: dict[str, Handler] = {}


def handler(
    kind: str, **options: Any
) -> Callable[[Callable[[OutboxMessage], None]], Callable[[OutboxMessage], None]]:
    """Register the sender of one message kind: ``@outbox.handler(OutboxMessage.Kind.X)``."""

    def register(send: Callable[[OutboxMessage], None]) -> Callable[[OutboxMessage], None]:
        HANDLERS[kind] = Handler(send=send, **options)
        return send

    return register


# ------------------------------------------------------------------------------------------------
# Writing (inside the caller's transaction)
# ------------------------------------------------------------------------------------------------


def enqueue_many(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """Insert unsaved rows in the caller's transaction; the worker is kicked after commit."""
    if not messages:
        return []
    created = OutboxMessage.objects.bulk_create(messages)
    transaction.on_commit(kick)
    return created


def message(
    *, kind: str, token: Token | str, payload: dict[str, Any], now: datetime
) -> OutboxMessage:
    """An unsaved row, due now."""
    token_id = token if isinstance(token, str) else token.pk
    return OutboxMessage(
        kind=kind, token_id=token_id, payload=payload, created_at=now, next_attempt_at=now
    )


def enqueue(
    *, kind: str, token: Token | str, payload: dict[str, Any], now: datetime
) -> OutboxMessage:
    return enqueue_many([message(kind=kind, token=token, payload=payload, now=now)])[0]


def retry(*, message: OutboxMessage, now: datetime | None = None) -> bool:
    """A failed or pending message → pending again, due now (support staff: "retry").

    Returns False for a message that was already delivered (it is never sent twice)."""
    now = now or timezone.now()
    updated = OutboxMessage.objects.filter(pk=message.pk, delivered_at__isnull=True).update(
        failed_at=None, next_attempt_at=now, attempts=0, claimed_until=None
    )
    if updated:
        transaction.on_commit(kick)
    return updated == 1


# ------------------------------------------------------------------------------------------------
# Delivering (the worker)
# ------------------------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return OutboxMessage.objects.filter(
        delivered_at__isnull=True, failed_at__isnull=True, next_attempt_at__lte=now
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def claim(*, now: datetime, limit: int = CLAIM_BATCH) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages for this worker: leased, attempt counted, committed."""
    with transaction.atomic():
        ids = list(
            _due(now)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        OutboxMessage.objects.filter(pk__in=ids).update(
            claimed_until=now + LEASE, attempts=F("attempts") + 1
        )
        return list(
            OutboxMessage.objects.filter(pk__in=ids)
            .select_related("token__environment__project")
            .order_by("next_attempt_at")
        )


def _settle(row: OutboxMessage, error: BaseException | None, now: datetime) -> bool:
    """Record one attempt's outcome; True when the message was delivered."""
    spec = HANDLERS.get(row.kind)
    fields: dict[str, Any] = {"claimed_until": None}
    delivered = False
    with transaction.atomic():
        if error is None:
            fields.update(delivered_at=now, last_error="")
            delivered = True
            if spec and spec.on_delivered:
                spec.on_delivered(row, now)
        elif isinstance(error, Skip):  # nothing was attempted: the claim does not count
            fields.update(failed_at=now, last_error=f"Not sent: {error}", attempts=row.attempts - 1)
        else:
            fields["last_error"] = f"{type(error).__name__}: {error}"[:2000]
            max_attempts = spec.max_attempts if spec else 1
            if row.attempts >= max_attempts:
                fields["failed_at"] = now
                row.last_error = fields["last_error"]
                if spec and spec.on_gave_up:
                    spec.on_gave_up(row, now)
            else:
                backoff = spec.backoff if spec else exponential(60)
                fields["next_attempt_at"] = now + backoff(row.attempts)
                if isinstance(error, RetryLater):
                    fields["next_attempt_at"] = max(fields["next_attempt_at"], error.not_before)
        OutboxMessage.objects.filter(pk=row.pk).update(**fields)
    return delivered


def _send(row: OutboxMessage) -> BaseException | None:
    spec = HANDLERS.get(row.kind)
    try:
        if spec is None:
            raise LookupError(f"no outbox handler for {row.kind!r}")
        spec.send(row)
    except Exception as error:  # noqa: BLE001 - every failure is recorded and retried
        return error
    finally:
        if threading.current_thread().name.startswith(SENDER_THREAD):
            connection.close()  # a handler's queries opened this sender thread's own connection
    return None


def deliver_due(*, now: datetime | None = None, rounds: int = 50) -> int:
    """Claim, send and settle due messages until none is left (or ``rounds`` claims)."""
    delivered = 0
    senders = settings.WAITPOINTS_OUTBOX_SENDERS
    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix=SENDER_THREAD) as pool:
        for _round in range(rounds):
            started = now or timezone.now()
            rows = claim(now=started)
            if not rows:
                break
            # Each is settled (on this thread) as soon as its own send ends: a hanging
            # endpoint delays the record of its batch-mates by nothing. One sender sends
            # inline (tests that keep everything in one transaction use it).
            for row, error in _sent(rows, pool if senders > 1 else None):
                delivered += _settle(row, error, now or timezone.now())
    return delivered


def _sent(
    rows: list[OutboxMessage], pool: ThreadPoolExecutor | None
) -> Iterator[tuple[OutboxMessage, BaseException | None]]:
    """Each row with its send's outcome, in the order the sends finish."""
    if pool is None:
        for row in rows:
            yield row, _send(row)
        return
    futures = {pool.submit(_send, row): row for row in rows}
    for future in as_completed(futures):
        yield futures[future], future.result()


# ------------------------------------------------------------------------------------------------
# Kicking the worker without waiting on the broker
# ------------------------------------------------------------------------------------------------

DELIVER_TASK = "tokens.tasks.deliver_outbox"
_wanted = threading.Event()
_kicker_lock = threading.Lock()
_kicker: threading.Thread | None = None


def kick() -> None:
    """Ask the worker to deliver soon. Returns at once: a daemon thread publishes the task, so
    a broker that is down or hung delays no request (the beat schedule delivers anyway)."""
    global _kicker
    _wanted.set()
    with _kicker_lock:
        if _kicker is None or not _kicker.is_alive():
            _kicker = threading.Thread(target=_kick_forever, name="outbox-kicker", daemon=True)
            _kicker.start()


def _kick_forever() -> None:
    while True:
        _wanted.wait()
        _wanted.clear()  # kicks that arrive while publishing coalesce into the next one
        publish_delivery()


def publish_delivery() -> bool:
    """One bounded attempt to queue ``deliver_outbox``; False (and a warning) if it failed."""
    # The site's app (waitpoints_site sets it as current), by name: the core imports no task
    # module and nothing of the site.
    from celery import current_app as app

    bounded = {"max_retries": 0, "socket_connect_timeout": 1, "socket_timeout": 2}
    try:
        with app.connection_for_write(transport_options=bounded) as conn:
            app.send_task(DELIVER_TASK, retry=False, connection=conn)
    except Exception:  # noqa: BLE001 - the outbox row is safe; the beat schedule delivers it
        logger.warning("broker unavailable; outbox delivery deferred")
        return False
    return True
