"""``python manage.py deliver``: the delivery process (``delivery.outbox.Engine``).

The Celery worker starts one beside itself (``tokens/platform/delivery.py``), so the Procfile's
roles are unchanged; run it yourself only with ``WAITPOINTS_DELIVERY_PROCESS=False``.
SIGTERM or SIGINT: claim nothing more, settle what is in flight, exit. ``--parent PID``: the
same when that process is gone (a SIGKILLed worker leaves no delivery process behind).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from django.core.management.base import BaseCommand, CommandParser

from tokens.delivery import outbox


class Command(BaseCommand):
    help = "Deliver outbox messages (webhooks, e-mail, Slack) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")

    def handle(self, *args: object, **options: int) -> None:
        engine = outbox.Engine()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            engine.stop()

        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, on_signal)
        parent = options["parent"]
        if parent:
            threading.Thread(target=_watch, args=(parent, engine), daemon=True).start()
        self.stderr.write(
            f"deliver: started ({engine.owner}, {engine.slots} slots, "
            f"{engine.reserved} reserved for e-mail and reminders)"
        )
        engine.run()
        self.stderr.write(f"deliver: stopped ({engine.owner})")


def _watch(parent: int, engine: outbox.Engine) -> None:
    while not engine.stopping.wait(1.0):
        if os.getppid() != parent:
            engine.stop()
