"""Heartbeats of the worker and beat: each writes, every ``WAITPOINTS_HEARTBEAT_SECONDS``, when
it was last alive into the cache (Redis, or the database table on the embedded default);
``/healthz`` reads their age. Registered by ``waitpoints_site/celery.py`` and settings."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings

logger = logging.getLogger(__name__)

WORKER = "worker"
BEAT = "beat"
DELIVERY = "delivery"  # written by the worker while its delivery process runs (platform.delivery)


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


_heartbeat_failures: dict[str, _Throttled] = {
    WORKER: _Throttled(),
    BEAT: _Throttled(),
    DELIVERY: _Throttled(),
}
_broker_failures = _Throttled()


def throttled_warning(text: str, error: Exception) -> None:
    """One warning a while for the worker's broker reconnections (waitpoints_site/worker.py)."""
    _broker_failures.warn(text, error)


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
