"""Expiry at scale: how long after their deadline tokens read TIMED_OUT in the database.

    .venv/bin/python bench/sweep.py            # 100,000 due at one instant, then steady state
    .venv/bin/python bench/sweep.py --quick    # 10,000, and a shorter steady state

Runs on PostgreSQL and Redis (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
postgres, where it creates and later drops a database ``waitpoints_bench_sweep``; BENCH_REDIS_URL,
default redis://127.0.0.1:6379/8). It loads the tokens with COPY, starts the worker and beat
exactly as the Procfile does, and watches the table:

* **burst**: N tokens due at the same instant; reports when the last one was TIMED_OUT,
  in seconds after that instant;
* **steady**: 20 tokens due every 100 ms for a while; reports the lag between each token's
  deadline and the first poll (every 50 ms) that saw it TIMED_OUT: p50, p99, max.

Prints a Markdown table, and writes the figures as JSON beside this file (sweep-results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DB_NAME = "waitpoints_bench_sweep"


def admin_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def bench_url() -> str:
    base, _, _ = admin_url().rpartition("/")
    return f"{base}/{DB_NAME}"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": bench_url(),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "WAITPOINTS_VAR_DIR": str(ROOT / "var" / "bench"),
        "PYTHONUNBUFFERED": "1",
    }


def recreate_database() -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env(),
        check=True,
    )


def environment_id() -> int:
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from tokens.domain import tenancy;"
            "print(tenancy.environment_get_or_create(project_slug='bench', slug='dev').pk)",
        ],
        cwd=ROOT,
        env=env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def load(conn: psycopg.Connection, env_id: int, deadlines: list[datetime]) -> None:
    """COPY one WAITING token per deadline (ids are unique, time-ordered like ours)."""
    rows = StringIO()
    created = datetime.now(UTC).isoformat()
    for index, deadline in enumerate(deadlines):
        token_id = f"cbench{index:019d}"
        rows.write(
            f"{token_id}\t{env_id}\tWAITING\t{deadline.isoformat()}\t[]\t[]\t"
            f"application/json\tf\t{created}\t\t\t\t\t\t\t1\n"
        )
    with conn.cursor() as cursor:
        columns = (
            "id, environment_id, status, timeout_at, tags, approvers, output_type, "
            "output_is_error, created_at, cancel_reason, context_json, decision_json, "
            "description, requested_by, title, required_approvals"
        )
        with cursor.copy(f"COPY tokens_token ({columns}) FROM STDIN") as copy:
            copy.write(rows.getvalue())
    conn.commit()


def start_roles(log_dir: Path) -> list[subprocess.Popen]:
    """worker and beat, with the Procfile's commands."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "celerybeat-schedule").unlink(missing_ok=True)
    roles = {
        "worker": [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--loglevel=info"],
        "beat": [str(BIN / "celery"), "-A", "waitpoints_site", "beat", "--loglevel=info"],
    }
    processes = []
    for name, args in roles.items():
        log = (log_dir / f"{name}.log").open("w")
        processes.append(
            subprocess.Popen(
                args,
                cwd=ROOT,
                env=env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def burst(conn: psycopg.Connection, env_id: int, count: int) -> float:
    at = datetime.now(UTC) + timedelta(seconds=12)  # after the roles have started
    load(conn, env_id, [at] * count)
    processes = start_roles(ROOT / "var" / "bench")
    try:
        while True:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM tokens_token WHERE status = 'WAITING'"
            ).fetchone()
            conn.commit()
            if waiting == 0:
                return (datetime.now(UTC) - at).total_seconds()
            if datetime.now(UTC) - at > timedelta(minutes=10):
                raise SystemExit(f"{waiting} tokens still WAITING 10 minutes after the deadline")
            time.sleep(0.05)
    finally:
        stop(processes)


def steady(conn: psycopg.Connection, env_id: int, seconds: int) -> list[float]:
    conn.execute("TRUNCATE tokens_token CASCADE")
    conn.commit()
    start = datetime.now(UTC) + timedelta(seconds=12)
    deadlines = [
        start + timedelta(milliseconds=100 * tick)
        for tick in range(seconds * 10)
        for _ in range(20)
    ]
    load(conn, env_id, deadlines)
    processes = start_roles(ROOT / "var" / "bench")
    seen: dict[str, float] = {}
    try:
        end = deadlines[-1] + timedelta(seconds=15)
        while datetime.now(UTC) < end and len(seen) < len(deadlines):
            now = datetime.now(UTC)
            rows = conn.execute(
                "SELECT id, timeout_at FROM tokens_token WHERE status = 'TIMED_OUT'"
            ).fetchall()
            conn.commit()
            for token_id, deadline in rows:
                if token_id not in seen:
                    seen[token_id] = (now - deadline).total_seconds()
            time.sleep(0.05)
    finally:
        stop(processes)
    if len(seen) < len(deadlines):
        raise SystemExit(f"only {len(seen)} of {len(deadlines)} tokens timed out")
    return sorted(seen.values())


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 tokens; 10 s steady state")
    args = parser.parse_args()
    count, seconds = (10_000, 10) if args.quick else (100_000, 30)

    recreate_database()
    env_id = environment_id()
    with psycopg.connect(bench_url()) as conn:
        burst_seconds = burst(conn, env_id, count)
        lags = steady(conn, env_id, seconds)
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "burst": {"tokens": count, "all_timed_out_after_seconds": round(burst_seconds, 2)},
        "steady": {
            "tokens": len(lags),
            "lag_p50_seconds": round(percentile(lags, 0.5), 3),
            "lag_p99_seconds": round(percentile(lags, 0.99), 3),
            "lag_max_seconds": round(lags[-1], 3),
        },
    }
    (Path(__file__).parent / "sweep-results.json").write_text(json.dumps(results, indent=2))
    print(f"| {count:,} tokens due at one instant | all TIMED_OUT {burst_seconds:.1f} s after |")
    lag = results["steady"]
    print(
        f"| steady: {len(lags):,} tokens, 200/s | lag p50 {lag['lag_p50_seconds']} s, "
        f"p99 {lag['lag_p99_seconds']} s, max {lag['lag_max_seconds']} s |"
    )


if __name__ == "__main__":
    main()
