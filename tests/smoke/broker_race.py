"""One producer and one consumer on a filesystem broker folder, in two processes.

    python -m tests.smoke.broker_race --transport kombu --messages 3000
    python -m tests.smoke.broker_race --transport waitpoints --messages 3000
    python -m tests.smoke.broker_race --transport app --messages 3000

``kombu`` is kombu's stock ``filesystem://`` transport, ``waitpoints`` ours
(``waitpoints_site.broker``), ``app`` whatever the Celery app's settings configure for the
embedded default (its broker under ``WAITPOINTS_VAR_DIR``): what the worker itself would use. It
prints one JSON line: how many messages were sent,
received intact, and how many reads failed (kombu's transport raises ``JSONDecodeError`` when the
consumer takes a message file its producer has created but not yet written: the error that
killed the worker of the embedded default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kombu import Connection

from tests.smoke.processes import ROOT, subprocess_env

TRANSPORTS = {
    "kombu": "kombu.transport.filesystem:Transport",
    "waitpoints": "waitpoints_site.broker:Transport",
    "app": "",
}
QUEUE = "race"
PADDING = "x" * 1500  # about the size of a Celery task message


def _connection(transport: str, folder: Path) -> Connection:
    if transport == "app":
        # The settings put the broker under WAITPOINTS_VAR_DIR (run() sets it to the folder).
        from waitpoints_site.celery import app

        return app.connection_for_write()
    # The same options as settings.CELERY_BROKER_TRANSPORT_OPTIONS for the embedded default.
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
        "control_folder": str(folder / "control"),
    }
    return Connection("filesystem://", transport=TRANSPORTS[transport], transport_options=options)


def produce(transport: str, folder: Path, messages: int, name: str = QUEUE) -> None:
    with _connection(transport, folder) as connection:
        queue = connection.SimpleQueue(name)
        for number in range(messages):
            queue.put({"n": number, "padding": PADDING})
        queue.close()


def consume(
    transport: str, folder: Path, messages: int, idle_seconds: float, name: str = QUEUE
) -> dict[str, Any]:
    received: set[int] = set()
    errors: list[str] = []
    with _connection(transport, folder) as connection:
        queue = connection.SimpleQueue(name)
        last = time.monotonic()
        while len(received) < messages and time.monotonic() - last < idle_seconds:
            try:
                message = queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except Exception as error:  # what the Celery worker calls "Unrecoverable error"
                errors.append(repr(error))
                last = time.monotonic()
                continue
            message.ack()
            if message.payload.get("padding") == PADDING:
                received.add(message.payload["n"])
            last = time.monotonic()
        queue.close()
    return {"received": len(received), "errors": len(errors), "first_errors": errors[:3]}


def run(
    transport: str,
    messages: int,
    idle_seconds: float = 5.0,
    var: Path | None = None,
    queue: str = QUEUE,
) -> dict[str, Any]:
    """Start the consumer, then the producer, in two processes; return the consumer's count.

    ``var``: the WAITPOINTS_VAR_DIR for ``app`` (default: a temporary folder); for the others
    its ``broker`` folder is used.
    """
    with tempfile.TemporaryDirectory(prefix="broker-race-") as directory:
        var = Path(directory) if var is None else var
        folder = var / "broker"
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        env = subprocess_env(
            WAITPOINTS_VAR_DIR=str(var),
            SECRET_KEY=os.environ.get("SECRET_KEY") or "broker-race-" + "x" * 40,
        )
        common = [str(folder), str(messages), str(idle_seconds), queue]
        module = [sys.executable, "-m", "tests.smoke.broker_race"]
        consumer = subprocess.Popen(
            [*module, "--role", "consume", "--transport", transport, *common],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        producer = subprocess.run(
            [*module, "--role", "produce", "--transport", transport, *common],
            check=False,
            cwd=ROOT,
            env=env,
        )
        out, _ = consumer.communicate(timeout=120 + idle_seconds)
        lines = out.strip().splitlines()
        # The consumer can die before it counts, e.g. on a half-written exchange table at start.
        died = {"received": 0, "errors": 1, "first_errors": [f"exited {consumer.returncode}"]}
        result: dict[str, Any] = (
            json.loads(lines[-1]) if consumer.returncode == 0 and lines else died
        )
        result.update(transport=transport, sent=messages, producer_rc=producer.returncode)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="waitpoints")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--role", choices=["produce", "consume"])
    parser.add_argument("args", nargs="*", help="internal: folder, messages, idle seconds, queue")
    options = parser.parse_args()
    if options.role == "produce":
        folder, messages, _idle, name = options.args
        produce(options.transport, Path(folder), int(messages), name)
    elif options.role == "consume":
        folder, messages, idle, name = options.args
        result = consume(options.transport, Path(folder), int(messages), float(idle), name)
        print(json.dumps(result), flush=True)
    else:
        print(json.dumps(run(options.transport, options.messages)))


if __name__ == "__main__":
    main()
