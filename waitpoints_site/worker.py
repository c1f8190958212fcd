"""The Celery worker as this service runs it (``waitpoints_site/celery.py`` installs both).

* **No gossip, mingle or event heartbeats.** Nothing here uses them (``/healthz`` has its own
  heartbeat), and gossip's restart after a lost Redis connection is where the worker died with
  kombu's ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (celery/kombu#582):
  one of two 20 s Redis outages crashed the worker.
* **Reconnect within seconds.** kombu waits 2, 4, 6, … up to 30 s between attempts, so a worker
  found Redis again up to 10 s after a 20 s outage ended; here every 0.5 s at first, at most 2 s
  apart, for as long as it takes (``broker_connection_max_retries`` is None in settings), and one
  warning a while instead of an error per attempt.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.apps.worker import Worker as CeleryWorker
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.state import maybe_shutdown

logger = logging.getLogger(__name__)

RECONNECT = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 2.0}


class Worker(CeleryWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(without_gossip=True, without_mingle=True, without_heartbeat=True)
        super().__init__(*args, **kwargs)


class Consumer(CeleryConsumer):
    _last_warning = 0.0

    def ensure_connected(self, conn: Any) -> Any:
        from tokens.platform.heartbeat import throttled_warning

        def on_error(error: Exception, interval: float) -> None:
            throttled_warning("worker cannot reach the broker; retrying", error)

        conn = conn.ensure_connection(
            on_error,
            self.app.conf.broker_connection_max_retries,
            callback=maybe_shutdown,
            **RECONNECT,
        )
        self.first_connection_attempt = False
        self.broker_connection_retry_attempt = 0
        return conn
