"""``GET /healthz``: the database, the broker, the worker's and beat's heartbeats, the sweep.

It answers within a second whatever is down or hanging: each check runs in a thread of its own
with a shared budget (``_BUDGET``), and a check still running from an earlier call is reported as
``"timeout"`` instead of being started again, so a hanging database holds at most one thread.

* ``database``: ``SELECT 1`` (503 when it fails or does not answer in time).
* ``broker``: a Redis ping, or ``"embedded"`` for the filesystem broker.
* ``worker`` / ``beat``: seconds since each last wrote its heartbeat into the cache (Redis, or
  the database table on the embedded default) every ``WAITPOINTS_HEARTBEAT_SECONDS``;
  ``delivery``: the same, written by a worker while its delivery process runs.
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

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from tokens.delivery import waiting
from tokens.platform.heartbeat import BEAT, DELIVERY, WORKER, heartbeat_age

logger = logging.getLogger(__name__)

_BUDGET = 0.8  # seconds for all checks together
TIMEOUT = "timeout"


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
    return {role: heartbeat_age(role, now=now) for role in (WORKER, BEAT, DELIVERY)}


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
        body["delivery"] = _role(heartbeats[DELIVERY])
    else:
        body["worker"] = body["beat"] = body["delivery"] = {"status": "unavailable"}
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
