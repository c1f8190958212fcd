"""The Celery worker starts the delivery process (``manage.py deliver``) beside itself and starts
it again when it exits, so the Procfile keeps its roles and every way of running a worker
delivers. Deliveries then share nothing with the worker's pool (the sweep never waits behind a
slow receiver) and need no broker (a Redis outage stops none). Registered by
``waitpoints_site/celery.py``; ``WAITPOINTS_DELIVERY_PROCESS=False`` turns it off."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from celery import bootsteps
from django.conf import settings

logger = logging.getLogger(__name__)

FIRST_DELAY, MAX_DELAY, HEALTHY_AFTER = 1.0, 30.0, 60.0
STOP_WITHIN = 30.0  # seconds for in-flight sends to finish on shutdown (handlers' timeouts)


class DeliveryProcess(bootsteps.StartStopStep):
    """A worker bootstep: ``manage.py deliver --parent <worker pid>`` under a small supervisor
    thread (restarts after 1 s, doubling to 30 s while it keeps dying, as keepalive does)."""

    requires = {"celery.worker.components:Pool"}  # started after the pool has forked

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        if not settings.WAITPOINTS_DELIVERY_PROCESS:
            return
        self.thread = threading.Thread(target=self._supervise, name="delivery-supervisor")
        self.thread.daemon = True
        self.thread.start()

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "django", "deliver", "--parent", str(os.getpid())]

    def _supervise(self) -> None:
        delay = FIRST_DELAY
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(self._command(), env=env)
            returncode = self._wait_beating(self.child)
            if self.stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER:
                delay = FIRST_DELAY
            logger.warning(
                "delivery process (pid %s) exited with %s; restarting in %.0f s",
                self.child.pid,
                returncode,
                delay,
            )
            if self.stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_DELAY)

    def _wait_beating(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for the child to exit, writing the ``delivery`` heartbeat (``/healthz``) while
        it runs."""
        from tokens.platform.heartbeat import DELIVERY, heartbeat_write

        while True:
            heartbeat_write(DELIVERY)
            try:
                return child.wait(timeout=settings.WAITPOINTS_HEARTBEAT_SECONDS)
            except subprocess.TimeoutExpired:
                continue

    def stop(self, parent: Any) -> None:
        self.stopping.set()
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()  # settle what is in flight, then exit
        try:
            child.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)
