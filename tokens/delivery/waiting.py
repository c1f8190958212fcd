"""In-process registry of long-poll waiters, woken by the resolution hook.

One ``WaitHub`` per event loop (in practice: per web process). A waiter subscribes to a token's
internal id and awaits a future; the hub resolves it when it learns the token was resolved:

* on PostgreSQL from one ``LISTEN waitpoint_resolved`` connection (psycopg 3, async), whose
  payloads are comma-separated internal ids, NOTIFYed by the resolution transaction on commit,
  whichever process (web, worker, beat) made the resolution;
* everywhere from the ``tokens.domain.signals.token_resolved`` signal, for resolutions made in this
  very process;
* on SQLite (the embedded default, which has no NOTIFY) additionally from one query every
  ``WAITPOINTS_WAIT_RECHECK_SECONDS`` for all waited ids together, for resolutions made by other
  processes (another web process, the worker's sweep).

A wake-up only tells a waiter to read the token again; the database stays the truth, so a
spurious wake-up is harmless and a missed one is covered by the waiter's re-read after
subscribing, by the wake-everyone after each (re)connection of the listener, and by the end of
the wait.

``wait_for_token`` is the waiting loop itself, shared by every long poll (the v1 API's ``…/wait``,
the AAP read with ``?wait=``): a surface gives it how to read its answer and turns the result into
its own form; ``on_its_own_loop`` runs one such wait from a synchronous view (WSGI, the test
client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from tokens.domain.signals import token_resolved

if TYPE_CHECKING:
    from tokens.models import Token

logger = logging.getLogger(__name__)

CHANNEL = "waitpoint_resolved"
T = TypeVar("T")
A = TypeVar("A")

# How a wait runs its short database reads: ``run_db`` (the shared threads) under ASGI, the
# request's own thread under WSGI.
RunDb = Callable[[Callable[[], Any]], Awaitable[Any]]

# Database work of waiters runs here: a few threads per process, however many waiters there are.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _db_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.WAITPOINTS_WAIT_DB_THREADS, thread_name_prefix="wait-db"
            )
        return _executor


# How often a database thread checks its connection when nothing failed (see below).
CONNECTION_CHECK_SECONDS = 1.0
_checked = threading.local()
_clock = time.monotonic  # the tests move it


def _with_fresh_connection(function: Callable[[], T]) -> T:
    # These threads serve no Django request, whose start and end check the thread's connection:
    # check it here as they would, but at most once a second when nothing failed. Each check
    # makes the next query start with a health check (``SELECT 1`` under CONN_HEALTH_CHECKS),
    # and with a thousand waiters polling that was as many round trips as the reads themselves.
    # A persistent connection stays open for the next read (each of these few threads keeps
    # one); after a failure it is checked at once, so one that broke, or outlived
    # CONN_MAX_AGE, is closed and a restarted database costs one failed read, not every read.
    now = _clock()
    if now - getattr(_checked, "at", -CONNECTION_CHECK_SECONDS) >= CONNECTION_CHECK_SECONDS:
        close_old_connections()
        _checked.at = now
    try:
        return function()
    except BaseException:
        close_old_connections()
        _checked.at = -CONNECTION_CHECK_SECONDS
        raise


async def run_db(function: Callable[[], T]) -> T:
    """Run a short synchronous ORM call on the bounded pool of database threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_db_executor(), _with_fresh_connection, function)


class WaitHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # A waiter's future gets the token as read after its resolution, or None: read it again.
        self.waiters: dict[str, set[asyncio.Future[Token | None]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        # Set while no connection attempt is in flight: psycopg leaves a connection open when
        # its connect is cancelled half-way, so ``aclose`` waits for this before cancelling.
        self.connect_settled = asyncio.Event()
        self.connect_settled.set()
        self.blocked = 0  # waiters that have read their token and now await a wake-up

    # -- waiters ------------------------------------------------------------------------------

    def subscribe(self, token_id: str) -> asyncio.Future[Token | None]:
        self._ensure_started()
        future: asyncio.Future[Token | None] = self.loop.create_future()
        self.waiters.setdefault(token_id, set()).add(future)
        return future

    def unsubscribe(self, token_id: str, future: asyncio.Future[Token | None]) -> None:
        futures = self.waiters.get(token_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self.waiters[token_id]

    def wake(self, token_ids: Iterable[str]) -> None:
        """These tokens were resolved: read them once for all their waiters, then wake them
        with the fresh row (call on the hub's loop)."""
        ids = [token_id.strip() for token_id in token_ids if token_id.strip() in self.waiters]
        if ids:
            self.loop.create_task(self._deliver(ids))

    async def _deliver(self, token_ids: list[str]) -> None:
        from tokens.persistence.selectors import tokens_by_ids

        try:
            fresh = await run_db(lambda: tokens_by_ids(token_ids=token_ids))
        except Exception as error:  # noqa: BLE001 - the waiters read the row themselves
            logger.warning("wait hub: reading resolved tokens failed (%s)", error)
            fresh = {}
        for token_id in token_ids:
            for future in self.waiters.pop(token_id, ()):
                if not future.done():
                    future.set_result(fresh.get(token_id))

    def wake_all(self) -> None:
        """Let every waiter read its token again (after a gap in notifications)."""
        for futures in self.waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self.waiters.clear()

    def wake_threadsafe(self, token_ids: list[str]) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake, token_ids)

    # -- sources of wake-ups ------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self.task is None or self.task.done():
            source = self._listen if _is_postgresql() else self._recheck
            self.task = self.loop.create_task(source(), name="waitpoints-wait-hub")

    async def _listen(self) -> None:
        import psycopg

        backoff = 0.5
        while True:
            try:
                self.connect_settled.clear()
                try:
                    connected = await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True)
                finally:
                    self.connect_settled.set()
                async with connected as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    self.listening.set()
                    # Anything resolved before LISTEN took effect (or while reconnecting) sent
                    # no notification we could see: let every waiter read its token again.
                    self.wake_all()
                    async for notification in conn.notifies():
                        self.wake(notification.payload.split(","))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - reconnect whatever went wrong
                self.listening.clear()
                logger.warning("wait hub: LISTEN connection lost (%s); reconnecting", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def aclose(self) -> None:
        """Stop listening and close the connection (for an event loop that is about to end)."""
        if self.task is None:
            return
        await self.connect_settled.wait()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None

    async def _recheck(self) -> None:
        from tokens.persistence.selectors import token_ids_resolved

        self.listening.set()
        interval = settings.WAITPOINTS_WAIT_RECHECK_SECONDS
        while True:
            await asyncio.sleep(interval)
            waited = list(self.waiters)
            if not waited:
                continue
            try:
                resolved = await run_db(partial(token_ids_resolved, token_ids=waited))
            except Exception as error:  # noqa: BLE001 - try again next round
                logger.warning("wait hub: re-check failed (%s)", error)
                continue
            self.wake(resolved)


def _is_postgresql() -> bool:
    return connections["default"].vendor == "postgresql"


NOT_LIBPQ_OPTIONS = frozenset(
    {"isolation_level", "assume_role", "server_side_binding", "prepare_threshold", "pool"}
)


def _conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db: dict[str, Any] = dict(settings.DATABASES["default"])
    params: dict[str, Any] = {
        "dbname": db.get("NAME") or "",
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
        # Per process, so an operator (or a test) tells the web processes' listeners apart.
        "application_name": f"waitpoints-wait-hub {os.getpid()}",
    }
    # libpq options such as sslmode; Django's and psycopg's own keys (pool, isolation_level,
    # server_side_binding, prepare_threshold, …) are not, and libpq refuses them.
    for key, value in (db.get("OPTIONS") or {}).items():
        if isinstance(value, str | int) and key not in NOT_LIBPQ_OPTIONS:
            params[key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


_hubs: dict[asyncio.AbstractEventLoop, WaitHub] = {}
_hubs_lock = threading.Lock()


def hub() -> WaitHub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        if loop not in _hubs:
            _hubs[loop] = WaitHub(loop)
        return _hubs[loop]


async def close_hub() -> None:
    """Close the running loop's hub, if it has one: for a loop that ends after one wait (the
    WSGI view's), so its LISTEN connection ends with it instead of outliving the loop."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        closing = _hubs.pop(loop, None)
    if closing is not None:
        await closing.aclose()


def blocked_waiters() -> int:
    """Waiters of this process now blocked (for /healthz and the tests that need to know)."""
    with _hubs_lock:
        return sum(each.blocked for each in _hubs.values())


def _on_token_resolved(sender: object, token_ids: list[str], **kwargs: object) -> None:
    with _hubs_lock:
        hubs = list(_hubs.values())
    for each in hubs:
        each.wake_threadsafe(list(token_ids))


token_resolved.connect(_on_token_resolved, dispatch_uid="tokens.delivery.waiting")


# ------------------------------------------------------------------------------------------------
# The waiting loop of every long poll
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading(Generic[A]):
    """What a waiter read: the answer it would give now, whether that answer is final (the token
    is resolved: answer at once), and the token's own deadline (reaching it is an answer too,
    even before any sweep has persisted the timeout)."""

    answer: A
    final: bool
    deadline_at: datetime | None


async def wait_for_token(
    token_id: str,
    *,
    seconds: float,
    read: Callable[[], Awaitable[Reading[A]]],
    from_hub: Callable[[Token], Reading[A]] | None = None,
    disconnected: Callable[[], Awaitable[None]] | None = None,
) -> A | None:
    """Read until the answer is final or ``seconds`` have passed, and give the last answer;
    None when the client went away first (``disconnected()`` returns when it does).

    ``read`` reads the answer from the database (through the caller's ``RunDb``); ``from_hub``,
    when given, turns the row the hub read once for all its waiters into an answer, which spares
    this waiter its own read when the token is resolved."""
    loop = asyncio.get_running_loop()
    waits = hub()
    deadline = loop.time() + seconds
    gone = asyncio.ensure_future(disconnected()) if disconnected is not None else None
    try:
        while True:
            wake = waits.subscribe(token_id)
            try:
                # Read after subscribing: a resolution committed before the subscription is
                # seen here, one committed after it wakes us.
                reading = await read()
                remaining = deadline - loop.time()
                if reading.final or remaining <= 0:
                    return reading.answer
                if reading.deadline_at is not None:
                    # Wake at the deadline (plus a hair, so the read sees it passed).
                    until = (reading.deadline_at - timezone.now()).total_seconds()
                    remaining = min(remaining, max(until, 0) + 0.002)
                pending: set[asyncio.Future[Any]] = {wake} if gone is None else {wake, gone}
                waits.blocked += 1
                try:
                    await asyncio.wait(pending, timeout=remaining, return_when="FIRST_COMPLETED")
                finally:
                    waits.blocked -= 1
                if gone is not None and gone.done():
                    return None
            finally:
                waits.unsubscribe(token_id, wake)
            fresh = wake.result() if wake.done() else None
            if fresh is not None and from_hub is not None:
                # The hub read it once for all its waiters, after the resolution committed.
                reading = from_hub(fresh)
                if reading.final:
                    return reading.answer
    finally:
        if gone is not None:
            gone.cancel()


def on_its_own_loop(wait: Callable[[RunDb], Awaitable[T]]) -> T:
    """Run one wait from a synchronous view (WSGI, the test client), holding its thread: the
    database reads run on the request's own thread (and connection), as any sync view's, and
    the event loop is this request's only, so its hub (and LISTEN connection) ends with it."""

    async def run() -> T:
        try:
            return await wait(lambda function: sync_to_async(function)())
        finally:
            await close_hub()

    return async_to_sync(run)()


async def until_disconnect(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    """Return when the ASGI client goes away (the ``disconnected`` of a wait)."""
    while (await receive())["type"] != "http.disconnect":
        pass
