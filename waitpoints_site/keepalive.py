"""Run a command and start it again whenever it exits, until asked to stop.

    python -m waitpoints_site.keepalive celery -A waitpoints_site worker --loglevel=info

The Procfile's ``worker`` and ``beat`` lines run under this. Why: honcho (``bin/serve``) stops
every role as soon as one exits, which is right for the web server but meant that one crash of
the Celery worker took the whole service down, silently from the user's point of view. The worker
and beat hold no state that a restart loses (work is in the database and the broker), so the
right answer to their death is to log it loudly and start them again. A wrapper per role keeps
the Procfile usable by any Procfile runner (honcho, foreman, a platform) and needs no daemon or
configuration file; supervisord would do the same with both.

* Each exit is logged on stderr as ``keepalive: <command> exited with …; restarting in N s``.
* Restarts back off from 1 s, doubling to 30 s, and start again from 1 s once the command
  has run for a minute: a role that cannot start does not spin.
* SIGTERM, SIGINT and SIGHUP are passed on to the command and stop the loop; the wrapper then
  exits with the command's status. (honcho signals the whole process group, so the command may
  get the signal twice; Celery's worker and beat treat a repeated one as the same request.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from types import FrameType

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def _say(text: str) -> None:
    print(f"keepalive: {text}", file=sys.stderr, flush=True)


def run(command: list[str]) -> int:
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, on_signal)

    name = " ".join(command[:4])
    delay = FIRST_DELAY
    restarts = 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        returncode = child.wait()
        if stop.is_set():
            return 128 - returncode if returncode < 0 else returncode
        ran = time.monotonic() - started
        if ran >= HEALTHY_AFTER:
            delay = FIRST_DELAY
        restarts += 1
        _say(
            f"{name} (pid {child.pid}) exited with {_describe(returncode)} after {ran:.0f} s; "
            f"restarting in {delay:.0f} s (restart {restarts})"
        )
        if stop.wait(delay):
            return 128 - returncode if returncode < 0 else returncode
        delay = min(delay * 2, MAX_DELAY)


def main() -> None:
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        sys.exit("usage: python -m waitpoints_site.keepalive COMMAND [ARGS…]")
    sys.exit(run(command))


if __name__ == "__main__":
    main()
