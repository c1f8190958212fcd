"""Soak the embedded default: web + worker + beat on SQLite and the filesystem broker.

    bin/soak --minutes 30                 # or: .venv/bin/python -m tests.smoke.soak --minutes 30

Starts what ``bin/serve`` starts (migrate, bootstrap, then the Procfile's ``web``, ``worker`` and
``beat`` under honcho) in a temporary ``WAITPOINTS_VAR_DIR`` on a port from
``WAITPOINTS_TEST_PORTS``, and drives steady traffic through the API for the given time:

* a token that times out a few seconds later (the sweep must persist ``TIMED_OUT``);
* a token completed with the API key;
* every few rounds a token with an approver (an e-mail outbox row, delivered by the worker),
  completed through its callback URL once its e-mail has had time to go out;
* now and then a list request.

Then it checks, and exits non-zero unless all hold: no worker crash or restart in the logs
(``Unrecoverable error``, a ``keepalive:`` restart, a role that stopped), every process alive,
every due token ``TIMED_OUT`` in the database, every e-mail outbox row delivered, every request
answered 2xx. It prints one JSON line of figures (requests, tokens, latencies, sweep lag).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.smoke.broker_race import run as broker_race_run
from tests.smoke.processes import (
    embedded_env,
    free_port,
    honcho,
    migrate_and_bootstrap,
    request,
    serving,
    sqlite_query,
    tail,
    wait_until,
)

CRASH_PATTERNS = {
    "unrecoverable": re.compile(r"Unrecoverable error"),
    "restart": re.compile(r"keepalive: .* exited with"),
    "stopped": re.compile(r"\| \S+ stopped \(rc="),
    "traceback": re.compile(r"Traceback \(most recent call last\)"),
}
TIMEOUT_SECONDS = 3
EMAIL_COMPLETE_AFTER = 20.0  # seconds: the e-mail must be out by then (a kick sends it at once)


@dataclass
class Figures:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    timing_out: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    emailed: list[str] = field(default_factory=list)

    def call(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        started = time.monotonic()
        try:
            status, body = request(method, url, timeout=30, **kwargs)
        except OSError as error:
            status, body = 0, repr(error)
        self.latencies.append(time.monotonic() - started)
        self.requests += 1
        if not 200 <= status < 300 and len(self.failures) < 20:
            self.failures.append(
                f"{method} {url.split('/api/')[-1][:60]} -> {status} {body!r:.200}"
            )
        return status, body


def _query(database: Path, sql: str, *params: object) -> list[tuple]:
    return sqlite_query(database, sql, *params, timeout=30)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _crashes(log: Path) -> dict[str, int]:
    text = log.read_text(errors="replace")
    return {
        name: sum(1 for line in text.splitlines() if pattern.search(line))
        for name, pattern in CRASH_PATTERNS.items()
    }


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _drive(
    base: str, key: str, seconds: float, rate: float, email_every: int, figures: Figures, check
) -> None:
    tokens = f"{base}/api/v1/waitpoints/tokens"
    pending_email: list[tuple[float, str]] = []  # (complete after, callback URL)
    deadline = time.monotonic() + seconds
    next_check = time.monotonic() + 10
    round_number = 0
    while time.monotonic() < deadline:
        round_started = time.monotonic()
        round_number += 1
        status, body = figures.call(
            "POST", tokens, body={"timeout": f"{TIMEOUT_SECONDS}s", "tags": ["soak"]}, key=key
        )
        if status == 200:
            figures.timing_out.append(body["id"])
        status, body = figures.call("POST", tokens, body={"timeout": "1h"}, key=key)
        if status == 200:
            status, _ = figures.call(
                "POST",
                f"{tokens}/{body['id']}/complete",
                body={"data": {"n": round_number}},
                key=key,
            )
            if status == 200:
                figures.completed.append(body["id"])
        if round_number % email_every == 0:
            status, body = figures.call(
                "POST", tokens, body={"timeout": "1h", "approvers": ["soak@example.com"]}, key=key
            )
            if status == 200:
                figures.emailed.append(body["id"])
                pending_email.append((time.monotonic() + EMAIL_COMPLETE_AFTER, body["url"]))
        if round_number % 10 == 0:
            figures.call("GET", f"{tokens}?page[size]=10", key=key)
        while pending_email and pending_email[0][0] <= time.monotonic():
            _, url = pending_email.pop(0)
            figures.call("POST", url, body={"approved": True})
        if time.monotonic() >= next_check:
            check()
            next_check = time.monotonic() + 10
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - round_started)))
    for complete_after, url in pending_email:
        # As during the drive: give its e-mail time to go out first, or the worker rightly
        # skips it as moot ("already resolved") and the check below counts it as undelivered.
        time.sleep(max(0.0, complete_after - time.monotonic()))
        figures.call("POST", url, body={"approved": True})


def soak(
    *,
    minutes: float,
    rate: float,
    var: Path,
    log: Path,
    email_every: int = 5,
    sweep_interval: float = 1.0,
    broker_race: int = 0,
) -> dict[str, Any]:
    """Run the soak; return the figures and a list of problems (empty when it passed)."""
    port = free_port()
    env = embedded_env(var, port, LOG_LEVEL="WARNING", SWEEP_INTERVAL_SECONDS=str(sweep_interval))
    database = var / "waitpoints.sqlite3"
    key = migrate_and_bootstrap(env)["key"]
    base = f"http://127.0.0.1:{port}"
    figures = Figures()
    problems: list[str] = []
    started = time.monotonic()
    roles = honcho(port, "web", "worker", "beat")
    with serving(roles, env=env, log=log, base_url=base) as server:

        def check() -> None:
            if server.poll() is not None:
                raise AssertionError(f"honcho exited with {server.returncode}:\n{tail(log)}")

        race: dict[str, Any] = {}
        racer = None
        if broker_race:
            # One more producer and consumer on the service's own broker folder, through the
            # transport the app configures: a burst of messages while the worker polls too.
            def run_race() -> None:
                race.update(broker_race_run("app", broker_race, var=var, queue="soak-race"))

            racer = threading.Thread(target=run_race, daemon=True)
            racer.start()
        try:
            _drive(base, key, minutes * 60, rate, email_every, figures, check)
        except AssertionError as error:
            problems.append(str(error))
        finally:
            if racer is not None:
                racer.join(timeout=180)
        drove = time.monotonic() - started
        if broker_race and (race.get("errors") != 0 or race.get("received") != broker_race):
            problems.append(f"broker race pair: {race or 'did not finish'}")

        # Every due token must be TIMED_OUT by the sweep, every e-mail delivered.
        ids = [token.removeprefix("waitpoint_") for token in figures.timing_out]

        def waiting(ids: list[str]) -> int:
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            rows = _query(
                database,
                f"SELECT COUNT(*) FROM tokens_token WHERE status = 'WAITING' AND id IN ({marks})",
                *ids,
            )
            return rows[0][0]

        def still_waiting() -> int:
            return sum(waiting(ids[i : i + 500]) for i in range(0, len(ids), 500))

        def undelivered() -> int:
            return _query(
                database, "SELECT COUNT(*) FROM tokens_outboxmessage WHERE delivered_at IS NULL"
            )[0][0]

        wait_until(lambda: still_waiting() == 0 and undelivered() == 0, timeout=30, interval=1)
        if server.poll() is not None:
            problems.append(f"honcho exited with {server.returncode}")
        else:
            status, _ = request("GET", f"{base}/healthz", timeout=10)
            if status != 200:
                problems.append(f"/healthz answered {status} at the end")
        left_waiting, left_undelivered = still_waiting(), undelivered()
        lags = [
            (_when(event) - _when(due)).total_seconds()
            for due, event in _query(
                database,
                "SELECT t.timeout_at, e.created_at FROM tokens_token t JOIN tokens_tokenevent e "
                "ON e.token_id = t.id AND e.kind = 'timed_out' WHERE t.status = 'TIMED_OUT'",
            )
        ]
        outbox = _query(
            database,
            "SELECT COUNT(*), SUM(delivered_at IS NOT NULL), SUM(failed_at IS NOT NULL) "
            "FROM tokens_outboxmessage",
        )[0]
        crashes = _crashes(log)  # before honcho's own shutdown lines
    if any(crashes.values()):
        problems.append(f"crashes in the log: {crashes}")
    if left_waiting:
        problems.append(f"{left_waiting} due tokens still WAITING 30 s after the drive")
    if left_undelivered or (outbox[2] or 0):
        problems.append(f"outbox rows not delivered: {left_undelivered} (failed: {outbox[2]})")
    if figures.failures:
        problems.append(f"{len(figures.failures)}+ failed requests, e.g. {figures.failures[:3]}")
    if len(figures.timing_out) != len(lags) and not left_waiting:
        problems.append(f"{len(figures.timing_out)} timed out but {len(lags)} timed_out events")
    return {
        "minutes": round(drove / 60, 2),
        "requests": figures.requests,
        "requests_per_second": round(figures.requests / drove, 1),
        "failed_requests": len(figures.failures),
        "latency_ms": {
            "median": round(statistics.median(figures.latencies) * 1000, 1),
            "p99": round(_percentile(figures.latencies, 0.99) * 1000, 1),
            "max": round(max(figures.latencies) * 1000, 1),
        },
        "tokens": {
            "timed_out": len(figures.timing_out),
            "completed": len(figures.completed),
            "emailed": len(figures.emailed),
        },
        "sweep_lag_s": {
            "median": round(statistics.median(lags), 2) if lags else None,
            "p99": round(_percentile(lags, 0.99), 2),
            "max": round(max(lags), 2) if lags else None,
        },
        "outbox": {"rows": outbox[0], "delivered": outbox[1] or 0, "failed": outbox[2] or 0},
        "crashes": crashes,
        "problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=4, help="rounds per second (default 4)")
    parser.add_argument("--email-every", type=int, default=5, help="rounds per e-mailed token")
    parser.add_argument(
        "--sweep-interval", type=float, default=1.0, help="SWEEP_INTERVAL_SECONDS (default 1)"
    )
    parser.add_argument(
        "--broker-race",
        type=int,
        default=0,
        help="also pass this many messages through one more producer/consumer pair on the "
        "service's broker folder (tests/smoke/broker_race.py; default 0)",
    )
    parser.add_argument("--keep", help="a folder for var/ and the log (default: a temporary one)")
    options = parser.parse_args()
    folder = Path(options.keep or tempfile.mkdtemp(prefix="waitpoints-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "honcho.log"
    print(f"soak: {vars(options)}; log in {log}", flush=True)
    result = soak(
        minutes=options.minutes,
        rate=options.rate,
        var=folder / "var",
        log=log,
        email_every=options.email_every,
        sweep_interval=options.sweep_interval,
        broker_race=options.broker_race,
    )
    print(json.dumps(result), flush=True)
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    main()
