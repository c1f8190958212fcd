"""The outbox: work that must follow a state change (approval e-mails, webhooks, Slack calls,
reminders). docs/architecture.md ("Delivery") draws it.

A row is written in the same transaction as the change that caused it, so nothing is lost when
the broker or the worker is down. Its *lane* (one webhook endpoint, e-mail, Slack, …; from its
kind and payload) is what shares a concurrency cap and a circuit breaker. A delivery process
(``Engine``, run by ``manage.py deliver``, which the Celery worker starts beside itself) sends:

1. **claim** due rows in a short transaction, only from lanes and tenants below their caps and
   lanes whose breaker is closed, setting a short lease (``claimed_until``, ``claimed_by``) and
   counting the attempt; claims are serialised (an advisory lock), so caps hold across
   processes, and a process claims no more than it has free slots;
2. **send** each on a slot (a thread) of its own, with no transaction open: a slow receiver
   holds one slot of its own lane, never another lane's;
3. **settle** each as soon as its own send ends, in a transaction retried on a fresh
   connection when the database drops it (``durable``): delivered, skipped, retried later with
   back-off, given up after the handler's last attempt, or moved to the lane its receiver now
   belongs to (``Moved``, due again at once) or deferred without an attempt (``Deferred``).

While the process lives it renews the leases of what it holds every ``RENEW_EVERY``; when it
dies they lapse within ``LEASE`` and another process (or its restarted self) takes the messages
again. Only sends that were in flight at the death are repeated (same ``webhook-id``).

Requests never wait on the broker: the delivery process finds new rows by polling (a cheap
indexed query every ``WAITPOINTS_OUTBOX_POLL_SECONDS``), and needs no broker at all.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Count, F, Q
from django.utils import timezone

from tokens.models import OutboxMessage, Token
from tokens.persistence import fast_paths

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLAIM_BATCH = 16
# A claim's lease, renewed every RENEW_EVERY while its process lives: a dead process's claims
# lapse within seconds, a live one never loses a claim however slow the receiver.
LEASE = timedelta(seconds=10)
RENEW_EVERY = 2.5  # seconds
# How long a settle keeps trying to reach the database before it gives up (and the claim
# lapses, so the message is sent again).
SETTLE_PATIENCE = 60.0  # seconds
# Circuit breaker, per lane: this many failures in a row open it for BREAKER_BASE seconds,
# doubling each time a probe fails, up to BREAKER_MAX; one message probes, a success closes it.
BREAKER_THRESHOLD = 5
BREAKER_BASE = 5.0
BREAKER_MAX = 300.0
SENDER_THREAD = "outbox-sender"
DATABASE_ERRORS = (OperationalError, InterfaceError)


class Skip(Exception):  # noqa: N818 - a decision, not an error
    """Raised by a handler: the message is moot (e.g. its token was decided); never retried."""


class RetryLater(Exception):  # noqa: N818 - a failed attempt with its receiver's wish
    """Raised by a handler: this attempt failed and the receiver asked for a pause
    (``Retry-After``): the next attempt comes no sooner than ``not_before``."""

    def __init__(self, message: str, *, not_before: datetime) -> None:
        super().__init__(message)
        self.not_before = not_before


class Deferred(Exception):  # noqa: N818 - a decision, not an error
    """Raised by a handler before sending: not now. Nothing was sent, so the claim costs no
    attempt and tells the breaker nothing; the message is due again at ``not_before`` (at once
    when None), in ``lane`` when one is given (else its own). E.g. an AAP event over its
    destination's delivery rate waits for the rate's next window."""

    def __init__(self, reason: str, *, not_before: datetime | None = None, lane: str = "") -> None:
        super().__init__(reason)
        self.not_before = not_before
        self.lane = lane


class Moved(Deferred):
    """The message's receiver is now another lane's (an AAP instance's receiver moved to
    another host): due again at once, in ``lane``, under that lane's cap."""

    def __init__(self, lane: str) -> None:
        super().__init__(f"moved to {lane}", lane=lane)


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
    # The lane of a message from its payload: what shares a concurrency cap and a circuit
    # breaker. A handler that calls other people's servers names the receiver here (webhooks:
    # the endpoint), so one slow receiver holds only its own lane. Without one: the kind and
    # the token's environment when ``per_tenant``, else the kind.
    lane: Callable[[dict[str, Any]], str] | None = None
    # Messages of one lane in flight at once, across all delivery processes (default
    # WAITPOINTS_OUTBOX_LANE_CONCURRENCY).
    concurrency: int | None = None
    # Counted against its project's cap (WAITPOINTS_OUTBOX_TENANT_CONCURRENCY) and kept out of
    # the slots reserved for the service's own mail and reminders: True for anything sent to a
    # tenant's receivers (webhooks, Slack, AAP events).
    per_tenant: bool = True


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


def lane_of(kind: str, payload: dict[str, Any]) -> str:
    spec = HANDLERS.get(kind)
    lane = spec.lane(payload) if spec is not None and spec.lane is not None else kind
    return lane[: OutboxMessage._meta.get_field("lane").max_length]


def _cap(kind: str) -> int:
    spec = HANDLERS.get(kind)
    if spec is not None and spec.concurrency is not None:
        return max(1, spec.concurrency)
    return max(1, int(settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY))


def _per_tenant_kinds() -> list[str]:
    return sorted(kind for kind, spec in HANDLERS.items() if spec.per_tenant)


def _default_lanes(rows: list[OutboxMessage]) -> None:
    """A kind sent to tenants' receivers whose handler names no lane gets one per environment,
    so that one tenant's slow receiver never fills the lane every tenant's messages of that
    kind share (one query, only for such rows)."""
    unnamed = [
        row
        for row in rows
        if not row.lane
        and (spec := HANDLERS.get(row.kind)) is not None
        and spec.per_tenant
        and spec.lane is None
    ]
    if not unnamed:
        return
    environments = dict(
        Token.objects.filter(pk__in={row.token_id for row in unnamed}).values_list(
            "pk", "environment_id"
        )
    )
    for row in unnamed:
        row.lane = f"{row.kind}:environment:{environments.get(row.token_id, '')}"


def enqueue_many(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """Insert unsaved rows in the caller's transaction (the delivery process finds them)."""
    if not messages:
        return []
    _default_lanes(messages)
    for row in messages:
        row.lane = row.lane or lane_of(row.kind, row.payload)
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
        failed_at=None, next_attempt_at=now, attempts=0, claimed_until=None, claimed_by=""
    )
    if updated:
        transaction.on_commit(kick)
    return updated == 1


# ------------------------------------------------------------------------------------------------
# Delivering: claim, send, settle
# ------------------------------------------------------------------------------------------------


def durable(work: Callable[[], T], *, patience: float = SETTLE_PATIENCE) -> T:
    """Run ``work`` in a transaction; when the database drops the connection (a restart, a
    terminated backend, a locked SQLite file), reconnect and run it again, for ``patience``
    seconds. Inside a caller's transaction there is nothing to reconnect: the error is raised."""
    give_up = time.monotonic() + patience
    pause = 0.05
    while True:
        try:
            with transaction.atomic():
                return work()
        except DATABASE_ERRORS as error:
            if connection.in_atomic_block or time.monotonic() + pause > give_up:
                raise
            logger.warning("outbox: database unavailable (%s); retrying on a new connection", error)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _due(now: datetime) -> Any:
    return OutboxMessage.objects.filter(
        delivered_at__isnull=True, failed_at__isnull=True, next_attempt_at__lte=now
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def _in_flight(now: datetime) -> Any:
    return OutboxMessage.objects.filter(
        delivered_at__isnull=True, failed_at__isnull=True, claimed_until__gte=now
    )


def claim(
    *,
    now: datetime,
    limit: int = CLAIM_BATCH,
    owner: str = "",
    closed_lanes: Iterable[str] = (),
    probing_lanes: Iterable[str] = (),
    tenant_slots: int | None = None,
) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages: leased to ``owner``, attempt counted, committed.

    Only from lanes below their cap (``probing_lanes``: one at a time; ``closed_lanes``: none,
    their breaker is open) and, for messages to tenants' receivers, projects below
    ``WAITPOINTS_OUTBOX_TENANT_CONCURRENCY``, at most ``tenant_slots`` of those (the rest of
    ``limit`` is reserved for the service's own mail and reminders)."""
    if limit <= 0:
        return []
    closed = set(closed_lanes)
    # Idle, the common case: one indexed read, without the claim lock or (on SQLite) the
    # database's write lock that a transaction takes at BEGIN.
    if not _due(now).exclude(lane__in=closed).exists():
        return []
    tenant_cap = max(1, int(settings.WAITPOINTS_OUTBOX_TENANT_CONCURRENCY))
    per_tenant = _per_tenant_kinds()
    probing = set(probing_lanes)
    with transaction.atomic():
        fast_paths.lock_outbox_claims()
        lanes: Counter[str] = Counter()
        tenants: Counter[int] = Counter()
        lane_kind: dict[str, str] = {}
        for row in (
            _in_flight(now)
            .values("lane", "kind", "token__environment__project_id")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            lane = row["lane"] or row["kind"]
            lanes[lane] += row["n"]
            lane_kind[lane] = row["kind"]
            if row["kind"] in per_tenant:
                tenants[row["token__environment__project_id"]] += row["n"]

        def lane_full(lane: str, kind: str) -> bool:
            return lanes[lane] >= (1 if lane in probing else _cap(kind))

        full_lanes = {lane for lane, kind in lane_kind.items() if lane_full(lane, kind)}
        full_tenants = {tenant for tenant, n in tenants.items() if n >= tenant_cap}
        due = _due(now).exclude(lane__in=full_lanes | closed)
        if tenant_slots is not None and tenant_slots <= 0:
            due = due.exclude(kind__in=per_tenant)
        elif full_tenants:
            due = due.exclude(kind__in=per_tenant, token__environment__project_id__in=full_tenants)
        candidates = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at")
            .values_list("pk", "lane", "kind", "token__environment__project_id")[: limit * 4]
        )
        chosen: list[int] = []
        for_tenants = 0
        for pk, lane, kind, tenant in candidates:
            lane = lane or kind
            if lane_full(lane, kind):
                continue
            if kind in per_tenant:
                if tenants[tenant] >= tenant_cap:
                    continue
                if tenant_slots is not None and for_tenants >= tenant_slots:
                    continue
                tenants[tenant] += 1
                for_tenants += 1
            lanes[lane] += 1
            chosen.append(pk)
            if len(chosen) >= limit:
                break
        if not chosen:
            return []
        OutboxMessage.objects.filter(pk__in=chosen).update(
            claimed_until=now + LEASE, claimed_by=owner, attempts=F("attempts") + 1
        )
        return list(
            OutboxMessage.objects.filter(pk__in=chosen)
            .select_related("token__environment__project")
            .order_by("next_attempt_at")
        )


def _settle(row: OutboxMessage, error: BaseException | None, now: datetime) -> bool:
    """Record one attempt's outcome; True when the message was delivered. Retried on a fresh
    connection while the database is away (``durable``)."""
    return durable(lambda: _record(row, error, now))


def _settle_many(
    outcomes: list[tuple[OutboxMessage, BaseException | None]], now: datetime
) -> list[bool | None]:
    """Several outcomes in one transaction (one commit, where one each made the commits the
    bottleneck), durably; each in a savepoint of its own, so one whose hook fails (None, logged;
    its claim lapses) spoils none of the others."""

    def record_all() -> list[bool | None]:
        results: list[bool | None] = []
        for row, error in outcomes:
            try:
                with transaction.atomic():
                    results.append(_record(row, error, now))
            except DATABASE_ERRORS:
                raise  # the connection: durable starts the batch again on a new one
            except Exception:
                logger.exception("outbox: message %s not settled; its claim will lapse", row.pk)
                results.append(None)
        return results

    return durable(record_all)


def _record(row: OutboxMessage, error: BaseException | None, now: datetime) -> bool:
    """The UPDATE (and the handler's hooks) for one outcome, in the caller's transaction."""
    spec = HANDLERS.get(row.kind)
    fields: dict[str, Any] = {"claimed_until": None, "claimed_by": ""}
    delivered = False
    if error is None:
        fields.update(delivered_at=now, last_error="")
        delivered = True
        if spec and spec.on_delivered:
            spec.on_delivered(row, now)
    elif isinstance(error, Deferred):  # nothing was attempted: again then, perhaps elsewhere
        fields.update(
            attempts=row.attempts - 1,
            next_attempt_at=max(now, error.not_before) if error.not_before else now,
        )
        if error.lane:
            fields["lane"] = error.lane[: OutboxMessage._meta.get_field("lane").max_length]
    elif isinstance(error, Skip):  # nothing was attempted: the claim does not count
        fields.update(failed_at=now, last_error=f"Not sent: {error}", attempts=row.attempts - 1)
    elif isinstance(error, DATABASE_ERRORS):
        # The handler could not read what to send: nothing reached the receiver, so the
        # claim does not count; try again in a moment rather than after the back-off.
        fields.update(
            attempts=row.attempts - 1,
            next_attempt_at=now + timedelta(seconds=1),
            last_error=f"Not sent, database unavailable: {error}"[:2000],
        )
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
    return None


@dataclass
class Breaker:
    """One lane's circuit breaker (in the delivery process's memory)."""

    failures: int = 0
    trips: int = 0
    open_until: float = 0.0  # time.monotonic()

    def state(self, now: float) -> str:
        if self.open_until > now:
            return "open"
        return "probing" if self.trips else "closed"

    def record(self, error: BaseException | None, now: float) -> None:
        if error is None or isinstance(error, Skip):
            self.failures = self.trips = 0
            return
        if isinstance(error, (*DATABASE_ERRORS, Deferred)) or self.open_until > now:
            return  # not the receiver's fault / already open (sends that started before)
        self.failures += 1
        if self.trips or self.failures >= BREAKER_THRESHOLD:  # a failed probe reopens at once
            self.trips += 1
            self.failures = 0
            self.open_until = now + min(BREAKER_BASE * 2 ** (self.trips - 1), BREAKER_MAX)


class Engine:
    """One delivery process's loop: claims what its free slots can send, sends each on a slot
    (a thread) of its own, settles each as soon as its send ends, and renews its leases while
    it lives. Claims and settles run on the loop's thread, one short transaction each."""

    def __init__(self, *, slots: int | None = None, owner: str | None = None) -> None:
        self.slots = max(1, slots or int(settings.WAITPOINTS_OUTBOX_SENDERS))
        # Slots only the service's own e-mail and reminders may use: however many tenants'
        # receivers are slow, an approval e-mail never waits for a slot.
        self.reserved = min(int(settings.WAITPOINTS_OUTBOX_RESERVED_SLOTS), self.slots - 1)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.breakers: dict[str, Breaker] = {}
        self.held: dict[int, bool] = {}  # claimed ids in flight → counted against a tenant
        self.lock = threading.Lock()
        self.sent: queue.SimpleQueue[tuple[OutboxMessage, BaseException | None]] = (
            queue.SimpleQueue()
        )
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.delivered = 0

    def run(self, *, until_idle: bool = False, now: datetime | None = None) -> int:
        """Deliver until ``stop()`` (or, ``until_idle``, until nothing is due or in flight);
        returns how many were delivered. ``now`` (tests) fixes the clock and renews nothing."""
        poll = float(settings.WAITPOINTS_OUTBOX_POLL_SECONDS)
        renewer = None
        if now is None:
            renewer = threading.Thread(target=self._renew_forever, name="outbox-lease", daemon=True)
            renewer.start()
        with ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix=SENDER_THREAD) as pool:
            while True:
                self._settle_sent(now, wait=0)
                if self.stopping.is_set():
                    if not self.held:
                        break
                    self._settle_sent(now, wait=poll)
                    continue
                claimed = self._claim_for_free_slots(now)
                if claimed is None:  # the database is away: try again shortly
                    self._settle_sent(now, wait=min(poll, 1.0))
                    continue
                for row in claimed:
                    pool.submit(self._send, row)
                if until_idle and not claimed and not self.held:
                    break
                if claimed and len(self.held) < self.slots and len(claimed) == CLAIM_BATCH:
                    continue  # more may be due right now
                self._settle_sent(now, wait=poll)  # until a send ends, or the next poll
        self.stopping.set()
        self.finished.set()
        if renewer is not None:
            renewer.join(timeout=RENEW_EVERY * 2)
        return self.delivered

    def stop(self) -> None:
        """Claim nothing more; ``run`` returns once what is in flight has been settled."""
        self.stopping.set()

    def _claim_for_free_slots(self, now: datetime | None) -> list[OutboxMessage] | None:
        with self.lock:
            busy = len(self.held)
            busy_tenants = sum(self.held.values())
        free = min(self.slots - busy, CLAIM_BATCH)
        if free <= 0:
            return []
        moment = time.monotonic()
        states = {lane: breaker.state(moment) for lane, breaker in self.breakers.items()}
        try:
            rows = claim(
                now=now or timezone.now(),
                limit=free,
                owner=self.owner,
                closed_lanes={lane for lane, state in states.items() if state == "open"},
                probing_lanes={lane for lane, state in states.items() if state == "probing"},
                tenant_slots=self.slots - self.reserved - busy_tenants,
            )
        except DATABASE_ERRORS as error:
            logger.warning("outbox: cannot claim (%s); trying again shortly", error)
            connection.close()
            return None
        per_tenant = set(_per_tenant_kinds())
        with self.lock:
            for row in rows:
                self.held[row.pk] = row.kind in per_tenant
        return rows

    def _send(self, row: OutboxMessage) -> None:
        """On a slot's thread: send, then hand the outcome to the loop to settle."""
        error: BaseException | None = None
        try:
            close_old_connections()  # a connection the database dropped since is replaced
            error = _send(row)
        finally:
            connection.close()  # this slot's own connection (handlers query)
            self.sent.put((row, error))

    def _settle_sent(self, now: datetime | None, *, wait: float) -> None:
        """Settle every send that has ended, waiting up to ``wait`` seconds for the first."""
        try:
            outcomes = [self.sent.get(timeout=wait) if wait > 0 else self.sent.get_nowait()]
        except queue.Empty:
            return
        while True:
            try:
                outcomes.append(self.sent.get_nowait())
            except queue.Empty:
                break
        try:
            settled = _settle_many(outcomes, now or timezone.now())
        except Exception:
            # Settling gave up (the database stayed away): the claims lapse and other attempts
            # send the messages again.
            logger.exception("outbox: %d messages not settled; their claims lapse", len(outcomes))
            connection.close()
            settled = [None] * len(outcomes)
        for (row, error), delivered in zip(outcomes, settled, strict=True):
            self._settled(row, error, bool(delivered))

    def _settled(self, row: OutboxMessage, error: BaseException | None, delivered: bool) -> None:
        lane = row.lane or row.kind
        with self.lock:
            self.held.pop(row.pk, None)
        self.delivered += delivered
        breaker = self.breakers.setdefault(lane, Breaker())
        was_open = breaker.state(time.monotonic()) == "open"
        breaker.record(error, time.monotonic())
        if not was_open and breaker.state(time.monotonic()) == "open":
            logger.warning(
                "outbox: %s keeps failing (%s); paused for %.0f s",
                lane,
                error,
                breaker.open_until - time.monotonic(),
            )

    def _renew_forever(self) -> None:
        while not self.finished.wait(RENEW_EVERY):
            with self.lock:
                held = list(self.held)
            if not held:
                continue
            try:
                OutboxMessage.objects.filter(
                    pk__in=held, claimed_by=self.owner, delivered_at__isnull=True
                ).update(claimed_until=timezone.now() + LEASE)
            except DATABASE_ERRORS as error:
                logger.warning("outbox: cannot renew leases (%s); trying again", error)
                connection.close()
        connection.close()


def deliver_due(*, now: datetime | None = None, rounds: int = 50) -> int:
    """Claim, send and settle due messages until none is left (tests, the legacy task).

    With ``WAITPOINTS_OUTBOX_SENDERS`` = 1, sends on this thread (tests that keep everything
    in one transaction use it); otherwise runs an ``Engine`` until it is idle."""
    if int(settings.WAITPOINTS_OUTBOX_SENDERS) > 1:
        return Engine().run(until_idle=True, now=now)
    delivered = 0
    for _round in range(rounds):
        rows = claim(now=now or timezone.now())
        if not rows:
            break
        for row in rows:
            delivered += _settle(row, _send(row), now or timezone.now())
    return delivered


def kick() -> None:
    """New work was committed. Nothing to do: delivery processes poll the outbox (every
    ``WAITPOINTS_OUTBOX_POLL_SECONDS``), so no request waits on a broker or a notification."""
