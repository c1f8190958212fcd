"""``GET /healthz`` and the heartbeats it reports.

It answers within a second whatever is down or hanging: each check runs in a thread of its own
with a shared budget (``_BUDGET``), and a check still running from an earlier call is reported as
``"timeout"`` instead of being started again, so a hanging database holds at most one thread.

* ``database``: ``SELECT 1`` (503 when it fails or does not answer in time).
* ``broker``: a Redis ping, or ``"embedded"`` for the filesystem broker.
* ``worker`` / ``beat``: seconds since each last wrote its heartbeat into the cache (Redis, or
  the database table on the embedded default) every ``WAITPOINTS_HEARTBEAT_SECONDS``.
* ``sweep``: ``lagSeconds``, how long the oldest WAITING token has been past its ``timeoutAt``
  (0 when none is); above ``WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS`` the answer is 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings
from django.http import HttpRequest, JsonResponse

from tokens.delivery import waiting

logger = logging.getLogger(__name__)

_BUDGET = 0.8  # seconds for all checks together
WORKER = "worker"
BEAT = "beat"
TIMEOUT = "timeout"


# ------------------------------------------------------------------------------------------------
# Heartbeats
# ------------------------------------------------------------------------------------------------


def _heartbeat_key(role: str) -> str:
    return f"heartbeat:{role}"


class _Throttled:
    """Log a failing background write once per interval, not on every attempt."""

    def __init__(self) -> None:
        self.last = -1e9
        self.held_back = 0

    def warn(self, text: str, error: Exception) -> None:
        now = time.monotonic()
        if now - self.last < float(settings.WAITPOINTS_LOG_REPEAT_SECONDS):
            self.held_back += 1
            return
        more = f" ({self.held_back} more since the last warning)" if self.held_back else ""
        logger.warning("%s: %s: %s%s", text, type(error).__name__, error, more)
        self.last, self.held_back = now, 0


_heartbeat_failures: dict[str, _Throttled] = {WORKER: _Throttled(), BEAT: _Throttled()}


def heartbeat_write(role: str, *, now: float | None = None) -> bool:
    """Record that ``role`` is alive; never raises (an outage is logged once a while)."""
    from django.core.cache import caches
    from django.db import close_old_connections

    try:
        if not settings.REDIS_URL:
            close_old_connections()  # the database cache, from a long-lived process
        timeout = max(60, settings.WAITPOINTS_HEARTBEAT_SECONDS * 20)
        caches["default"].set(_heartbeat_key(role), now or time.time(), timeout=timeout)
        return True
    except Exception as error:  # noqa: BLE001 - the heartbeat must never take its process down
        _heartbeat_failures[role].warn(f"{role} heartbeat not written", error)
        return False


def heartbeat_age(role: str, *, now: float | None = None) -> float | None:
    """Seconds since ``role`` last wrote its heartbeat; None when it never did (or long ago)."""
    from django.core.cache import caches

    value = caches["default"].get(_heartbeat_key(role))
    if value is None:
        return None
    return max(0.0, (now or time.time()) - float(value))


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A worker bootstep: the heartbeat runs on the worker's own timer, so it stops when the
    worker's event loop does (registered in waitpoints_site/celery.py)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        heartbeat_write(WORKER)
        self.tref = parent.timer.call_repeatedly(
            settings.WAITPOINTS_HEARTBEAT_SECONDS, heartbeat_write, (WORKER,), priority=10
        )

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler, plus a heartbeat, and one warning a while when the broker is down.

    Celery's own ``apply_entry`` logs every failed publish as an error with a traceback and a
    stack dump: with a one-second sweep that is a flood during a Redis outage.
    """

    _last_heartbeat = 0.0
    _publish_failures = _Throttled()
    _publish_failing = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._last_heartbeat >= settings.WAITPOINTS_HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            heartbeat_write(BEAT)
        delay = float(super().tick(*args, **kwargs))
        # Wake up in time for the next heartbeat even when no task is due for a while.
        return min(delay, float(settings.WAITPOINTS_HEARTBEAT_SECONDS))

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as error:  # noqa: BLE001 - as Celery's: one failed entry never stops beat
            self._publish_failing = True
            self._publish_failures.warn(f"beat could not send {entry.name} (broker down?)", error)
        else:
            if self._publish_failing:
                self._publish_failing = False
                logger.warning("beat sends tasks again: the broker answers")

    def _ensure_connected(self) -> Any:
        # Celery logs every reconnection attempt as an error; one warning a while is enough.
        def _error_handler(error: Exception, interval: float) -> None:
            self._publish_failures.warn("beat cannot reach the broker", error)

        return self.connection.ensure_connection(
            _error_handler, self.app.conf.broker_connection_max_retries
        )


# ------------------------------------------------------------------------------------------------
# /healthz
# ------------------------------------------------------------------------------------------------


class _Check:
    """One check on a thread of its own (one thread per check, reused between calls)."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.lock = threading.Lock()
        self.executor: ThreadPoolExecutor | None = None
        self.running: Future[Any] | None = None

    def _run(self) -> Any:
        from django.db import connections

        try:
            return self.function()
        finally:
            # A fresh connection per check: one left open on this thread would outlive the
            # request (and a test database), and a health check should not depend on it.
            connections.close_all()

    def start(self) -> Future[Any] | None:
        with self.lock:
            if self.running is not None and not self.running.done():
                return None  # still hanging from an earlier call
            if self.executor is None:
                self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthz")
            self.running = self.executor.submit(self._run)
            return self.running


def _database() -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from tokens.persistence import selectors

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    now = timezone.now()
    oldest = selectors.token_oldest_overdue_timeout(now=now)
    lag = 0.0 if oldest is None else (now - oldest).total_seconds()
    return {"lag": lag}


def _broker() -> str:
    if not settings.REDIS_URL:
        return "embedded"
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    try:
        return "ok" if client.ping() else "unavailable"
    finally:
        client.close()


def _heartbeats() -> dict[str, float | None]:
    now = time.time()
    return {role: heartbeat_age(role, now=now) for role in (WORKER, BEAT)}


_CHECKS = {
    "database": _Check(_database),
    "broker": _Check(_broker),
    "heartbeats": _Check(_heartbeats),
}


def _gather() -> dict[str, Any]:
    deadline = time.monotonic() + _BUDGET
    futures = {name: check.start() for name, check in _CHECKS.items()}
    results: dict[str, Any] = {}
    for name, future in futures.items():
        if future is None:
            results[name] = TIMEOUT
            continue
        try:
            results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            results[name] = TIMEOUT
        except Exception as error:  # noqa: BLE001 - a failing check is an unhealthy answer
            results[name] = error
    return results


def _failed(result: Any) -> str:
    return "timeout" if result == TIMEOUT else "unavailable"


def _role(age: float | None) -> dict[str, Any]:
    if age is None:
        return {"status": "unknown"}
    stale = age > max(3 * settings.WAITPOINTS_HEARTBEAT_SECONDS, 15)
    return {"status": "stale" if stale else "ok", "lastSeenSecondsAgo": round(age, 1)}


def healthz(request: HttpRequest) -> JsonResponse:
    results = _gather()
    database = results["database"]
    broker = results["broker"]
    heartbeats = results["heartbeats"]
    body: dict[str, Any] = {
        "database": "ok" if isinstance(database, dict) else _failed(database),
        "broker": broker if broker in ("ok", "embedded") else _failed(broker),
        # Long-poll waiters blocked in this web process (tokens.delivery.waiting).
        "waiters": waiting.blocked_waiters(),
    }
    if isinstance(heartbeats, dict):
        body["worker"] = _role(heartbeats[WORKER])
        body["beat"] = _role(heartbeats[BEAT])
    else:
        body["worker"] = body["beat"] = {"status": "unavailable"}
    healthy = isinstance(database, dict)
    if isinstance(database, dict):
        lag = round(database["lag"], 1)
        late = lag > settings.WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS
        body["sweep"] = {
            "status": "late" if late else "ok",
            "lagSeconds": lag,
            "maxLagSeconds": settings.WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS,
        }
        healthy = not late
    body = {"status": "ok" if healthy else "error", **body}
    response = JsonResponse(body, status=200 if healthy else 503)
    response["Cache-Control"] = "no-store"
    return response
