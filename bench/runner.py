"""The benchmark: every row of issue 12 in one run, beside the floor of the same machine.

    bench/run            # 1M tokens in the measured environment + 1M in another; ~15 minutes
    bench/run --quick    # 100,000 + 100,000 and shorter runs; ~4 minutes

See bench/README.md for what each row measures. Writes docs/benchmarks/results.json,
docs/benchmarks/README.md, docs/benchmarks/explain.md and the charts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench import report, waiters, webhooks

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# BENCH_DB_NAME: another name, so that two checkouts on one server do not drop each other's.
DB_NAME = os.environ.get("BENCH_DB_NAME", "waitpoints_bench")
OUT_DIR = ROOT / "docs" / "benchmarks"
LOG_DIR = ROOT / "var" / "bench-run"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
CONCURRENCY = (1, 8, 32)
LIST_CONNECTIONS = 8  # the list's second target: p95 at 8 concurrent connections
IDLE_SETTLE_SECONDS = 5


# ------------------------------------------------------------------------------------------------
# Settings of one run
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    quick: bool
    tokens: int  # in the measured environment, and as many again in another one
    seconds: int  # per throughput run
    latency_seconds: int  # per latency run (one connection)
    port: int

    @property
    def reserve(self) -> int:
        """WAITING tokens set aside for the complete runs (each id is completed once)."""
        return min(self.tokens // 4, 2500 * self.seconds * len(CONCURRENCY))


def admin_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def bench_url() -> str:
    base, _, _ = admin_url().rpartition("/")
    return f"{base}/{DB_NAME}"


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")


def service_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": bench_url(),
        "REDIS_URL": redis_url(),
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "WAITPOINTS_VAR_DIR": str(LOG_DIR / "var"),
        "DEBUG": "False",
        "PYTHONUNBUFFERED": "1",
        "BIND_HOST": "127.0.0.1",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        # The webhook row's receiver listens on 127.0.0.1.
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "True",
        # Load runs send far more than the default 1200 calls a minute per key: a limit no run
        # reaches, so that every call still pays for its counter but none is refused.
        "WAITPOINTS_RATELIMIT_API_CALLS": "1000000000/1m",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(extra)
    return env


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------
# Data: COPY
# ------------------------------------------------------------------------------------------------


def base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


def token_id(start_ms: int, index: int, salt: int) -> str:
    """Our id format (time-ordered): 'c', 8 base36 of milliseconds, 16 more characters."""
    return "c" + base36(start_ms + index, 8) + base36(salt, 2) + base36(index, 14)


@dataclass(frozen=True)
class Shape:
    """Which tokens carry which tags and statuses (the same in both environments)."""

    count: int
    reserve: int


def status_of(shape: Shape, index: int) -> str:
    if index >= shape.count - shape.reserve:
        return "WAITING"
    return "WAITING" if index % 10 < 7 else "COMPLETED" if index % 10 < 9 else "TIMED_OUT"


def load_environment(conn: psycopg.Connection, environment: int, shape: Shape, salt: int) -> int:
    """COPY ``shape.count`` tokens and their tag rows; returns the first id's millisecond.

    Rows are written in chunks as they are generated, so PostgreSQL ingests while Python
    generates."""
    start = datetime.now(UTC) - timedelta(days=30)
    start_ms = int(start.timestamp() * 1000)
    chunk = 20_000
    columns = (
        "id, environment_id, status, timeout_at, tags, approvers, output, output_type, "
        "output_is_error, created_at, completed_at, cancel_reason"
    )
    with conn.cursor() as cursor:
        with cursor.copy(f"COPY tokens_token ({columns}) FROM STDIN") as copy:
            for first in range(0, shape.count, chunk):
                rows = []
                for index in range(first, min(first + chunk, shape.count)):
                    status = status_of(shape, index)
                    created = (start + timedelta(milliseconds=index)).isoformat()
                    done = created if status != "WAITING" else "\\N"
                    output = '{"json":{"ok":true}}' if status == "COMPLETED" else "\\N"
                    tags = json.dumps(shape_tags(shape, index))
                    rows.append(
                        f"{token_id(start_ms, index, salt)}\t{environment}\t{status}\t\\N\t"
                        f"{tags}\t[]\t{output}\tapplication/json\tf\t{created}\t{done}\t\n"
                    )
                copy.write("".join(rows))
        with cursor.copy("COPY tokens_tokentag (token_id, environment_id, name) FROM STDIN") as c:
            for first in range(0, shape.count, chunk):
                c.write(
                    "".join(
                        f"{token_id(start_ms, index, salt)}\t{environment}\t{name}\n"
                        for index in range(first, min(first + chunk, shape.count))
                        for name in shape_tags(shape, index)
                    )
                )
    conn.commit()
    return start_ms


def set_defaults(conn: psycopg.Connection, table: str, defaults: dict[str, str | None]) -> None:
    """Column defaults in the database (None: drop it); the literals come from the models."""
    for column, literal in defaults.items():
        action = f"SET DEFAULT {literal}" if literal is not None else "DROP DEFAULT"
        conn.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" {action}')


@contextmanager
def bulk_load(conn: psycopg.Connection, tables: tuple[str, ...]) -> Iterator[None]:
    """COPY without per-row index and foreign-key work: drop the secondary indexes (those no
    constraint owns) and skip triggers during the load, then build the indexes once."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname "
        "NOT IN (SELECT conname FROM pg_constraint)",
        [list(tables)],
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("SET session_replication_role = replica")
    conn.commit()
    yield
    conn.execute("SET session_replication_role = DEFAULT")
    conn.execute("SET maintenance_work_mem = '256MB'")
    for _, definition in rows:
        conn.execute(definition)
    conn.commit()


def shape_tags(shape: Shape, index: int) -> list[str]:
    names = ["every"]
    if index % max(1, shape.count // 200) == 7:  # 200 tokens, spread over the whole range
        names.append("rare")
    if index == shape.count // 2:
        names.append("single")
    return names


def recreate_database() -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    # The Procfile's release step: migrate, collectstatic (the dashboard's pages need it).
    run(["bash", "-c", procfile_command("release")], stdout=subprocess.DEVNULL)


def drop_database() -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def flush_redis() -> None:
    subprocess.run(
        [sys.executable, "-c", f"import redis; redis.Redis.from_url({redis_url()!r}).flushdb()"],
        check=False,
    )


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=kwargs.pop("env", service_env()), check=True, text=True, **kwargs
    )


# ------------------------------------------------------------------------------------------------
# Processes: the Procfile's commands
# ------------------------------------------------------------------------------------------------


def procfile_command(role: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == role:
            return command.strip()
    raise SystemExit(f"Procfile has no {role}: line")


class Role:
    """One Procfile role, started as the Procfile starts it, in its own process group."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self.process = subprocess.Popen(
            ["bash", "-c", procfile_command(name.split("-")[0])],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def processes(self) -> list[dict[str, Any]]:
        """This role's processes (the tree under the one we started) and their RSS."""
        return [
            {"pid": pid, "command": cmd[:120], "rss_mb": round(rss_kb / 1024, 1)}
            for pid, cmd, rss_kb in process_tree(self.process.pid)
        ]


def process_tree(root: int) -> list[tuple[int, str, int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[tuple[int, str, int]] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match and not cmd.startswith("bash -c"):
            found.append((pid, cmd, int(match.group(1))))
        stack.extend(children.get(pid, []))
    return found


def wait_healthy(port: int, role: Role, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if role.process.poll() is not None:
            raise SystemExit(f"{role.name} exited; see {role.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                if reply.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{role.name} did not answer on port {port}; see {role.log_path}")


@contextmanager
def web(name: str, port: int, **extra: str) -> Iterator[Role]:
    role = Role(name, service_env(PORT=str(port), **extra))
    try:
        wait_healthy(port, role)
        yield role
    finally:
        role.stop()


# ------------------------------------------------------------------------------------------------
# Load: wrk
# ------------------------------------------------------------------------------------------------


def wrk(
    port: int,
    *,
    path: str,
    seconds: int,
    connections: int,
    method: str = "GET",
    body: str | None = None,
    auth: str | None = None,
    cookie: str | None = None,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    threads = min(connections, 2)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_OUT": str(out)}
        env["BENCH_THREADS"] = str(threads)
        if body is not None:
            env["BENCH_BODY"] = body
        if auth:
            env["BENCH_AUTH"] = auth
        if cookie:
            env["BENCH_COOKIE"] = cookie
        if ids:
            (Path(tmp) / "ids").write_text("\n".join(ids) + "\n")
            env["BENCH_IDS"] = str(Path(tmp) / "ids")
        subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(Path(__file__).parent / "wrk.lua"),
                f"http://127.0.0.1:{port}",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        figures = json.loads(out.read_text())
    seconds_run = figures["duration_us"] / 1e6
    return {
        "connections": connections,
        "requests": figures["requests"],
        "rps": round(figures["requests"] / seconds_run, 1),
        "errors": figures["non_2xx_3xx"] + figures["socket_errors"],
        "p50_ms": figures["p50_us"] / 1000,
        "p95_ms": figures["p95_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
    }


# ------------------------------------------------------------------------------------------------
# The rows
# ------------------------------------------------------------------------------------------------

CREATE_BODY = json.dumps({"timeout": "1h", "tags": ["order:42", "refund"]})
COMPLETE_BODY = json.dumps({"data": {"approved": True}})


def throughput(
    plan: Plan, port: int, secret: str, complete_ids: list[list[str]], retrieve_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    auth = f"Bearer {secret}"
    tokens = "/api/v1/waitpoints/tokens"
    rows: dict[str, list[dict[str, Any]]] = {"create": [], "complete": [], "retrieve": []}
    for index, connections in enumerate(CONCURRENCY):

        def load(path: str, **request: Any) -> dict[str, Any]:
            return wrk(
                port,
                path=path,
                seconds=plan.seconds,
                connections=connections,  # noqa: B023 - called within this iteration
                auth=auth,
                **request,
            )

        rows["create"].append(load(tokens, method="POST", body=CREATE_BODY))
        rows["complete"].append(
            load(
                tokens + "/{id}/complete",
                method="POST",
                body=COMPLETE_BODY,
                ids=complete_ids[index],
            )
        )
        rows["retrieve"].append(load(tokens + "/{id}", ids=retrieve_ids))
    return rows


def list_shapes(deep_cursor: str, first_id: str) -> dict[str, str]:
    """Every list query shape (API); the first five are the issue's rows."""
    base = "/api/v1/waitpoints/tokens?page[size]=100"
    return {
        "first page": base,
        "WAITING + a tag on every token": base + "&filter[status]=WAITING&filter[tags]=every",
        "COMPLETED + a tag on 200 tokens": base + "&filter[status]=COMPLETED&filter[tags]=rare",
        "a tag on 1 token": base + "&filter[tags]=single",
        "1,000 pages deep": base + f"&page[after]={deep_cursor}",
        "status COMPLETED": base + "&filter[status]=COMPLETED",
        "status TIMED_OUT (with overdue and cancelled)": base + "&filter[status]=TIMED_OUT",
        "two tags": base + "&filter[tags]=rare,single",
        "idempotencyKey": base + "&filter[idempotencyKey]=refund-42",
        "createdAt period 1d": base + "&filter[createdAt][period]=1d",
        "createdAt from/to": base
        + "&filter[createdAt][from]=2020-01-01T00:00:00Z"
        + "&filter[createdAt][to]=2100-01-01T00:00:00Z",
        "previous page (page[before])": base + f"&page[before]={first_id}",
    }


def latency(
    plan: Plan,
    port: int,
    paths: dict[str, str],
    *,
    auth: str | None = None,
    cookie: str | None = None,
    connections: int = 1,
) -> dict[str, Any]:
    return {
        name: wrk(
            port,
            path=path,
            seconds=plan.latency_seconds,
            connections=connections,
            auth=auth,
            cookie=cookie,
        )
        for name, path in paths.items()
    }


def pgbench(plan: Plan) -> dict[str, float]:
    """Inserts and conditional updates on bench_floor_token, 8 clients, the same run."""
    scripts = {
        "insert": (
            "INSERT INTO bench_floor_token (id, environment_id, status, tags, approvers, "
            "output_type, output_is_error, created_at, cancel_reason) VALUES "
            "(substr(md5(random()::text || clock_timestamp()::text), 1, 25), "
            ":env, 'WAITING', '[\"order:42\",\"refund\"]', '[]', 'application/json', false, "
            "now(), '');"
        ),
        "conditional update": (
            "\\set n random(1, :ids)\n"
            "UPDATE bench_floor_token SET status = 'COMPLETED', completed_at = now(), "
            'output = \'{"json":{"approved":true}}\' WHERE id = '
            "(SELECT id FROM bench_pgbench_ids WHERE n = :n) AND status = 'WAITING';"
        ),
    }
    with psycopg.connect(bench_url()) as conn:
        (ids,) = conn.execute("SELECT count(*) FROM bench_pgbench_ids").fetchone() or (0,)
        row = conn.execute("SELECT environment_id FROM bench_floor_token LIMIT 1").fetchone()
        env = row[0] if row else 0
    results = {}
    for name, script in scripts.items():
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
            file.write(script + "\n")
            file.flush()
            out = subprocess.run(
                [
                    "pgbench",
                    "-n",
                    "-c8",
                    "-j2",
                    f"-T{plan.seconds}",
                    "-D",
                    f"ids={ids}",
                    "-D",
                    f"env={env}",
                    "-f",
                    file.name,
                    bench_url(),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        match = re.search(r"tps = ([\d.]+)", out)
        results[name] = round(float(match.group(1)), 1) if match else 0.0
    return results


def prepare_floor(conn: psycopg.Connection, environment: int, plan: Plan) -> None:
    conn.execute("CREATE TABLE bench_floor_token (LIKE tokens_token INCLUDING ALL)")
    conn.execute(
        "INSERT INTO bench_floor_token SELECT * FROM tokens_token WHERE environment_id = %s",
        [environment],
    )
    # pgbench's conditional updates: older WAITING ids, outside the complete runs' supply.
    conn.execute(
        "CREATE TABLE bench_pgbench_ids AS SELECT row_number() OVER () AS n, id FROM "
        "(SELECT id FROM bench_floor_token WHERE status = 'WAITING' ORDER BY id LIMIT %s) AS t",
        [min(200_000, plan.tokens // 2)],
    )
    conn.execute("ALTER TABLE bench_pgbench_ids ADD PRIMARY KEY (n)")
    conn.execute("ANALYZE")
    conn.commit()


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(total_kb / 1024 / 1024, 1),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "os": platform.platform(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {"python": platform.python_version()}
    for package in ("django", "djangorestframework", "uvicorn", "gunicorn", "celery", "psycopg"):
        with suppress(PackageNotFoundError):
            found[package] = version(package)
    with psycopg.connect(admin_url()) as conn:
        found["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    redis_version = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import redis; print(redis.Redis.from_url({redis_url()!r}).info()['redis_version'])",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    found["redis"] = redis_version
    found["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    return found


def sweep(plan: Plan) -> dict[str, Any]:
    """bench/sweep.py (its own database), with this run's Redis."""
    args = [sys.executable, str(Path(__file__).parent / "sweep.py")]
    if plan.quick:
        args.append("--quick")
    env = {**os.environ, "BENCH_REDIS_URL": redis_url(), "BENCH_DATABASE_URL": admin_url()}
    subprocess.run(args, cwd=ROOT, env=env, check=True)
    return json.loads((Path(__file__).parent / "sweep-results.json").read_text())


# Rows that need features main does not have yet register here (long-poll waiters): each is a
# function (plan, fixtures) -> dict with a "summary" string, run with the web role up.
EXTRA_ROWS: dict[str, Any] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description="waitpoints benchmark (issue 12)")
    parser.add_argument("--quick", action="store_true", help="100,000 tokens, short runs")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8230")))
    parser.add_argument("--skip-sweep", action="store_true", help="leave the sweep row out")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--tokens", type=int, help="tokens per environment (development)")
    parser.add_argument("--seconds", type=int, help="seconds per load run (development)")
    args = parser.parse_args()
    plan = Plan(
        quick=args.quick,
        tokens=args.tokens or (100_000 if args.quick else 1_000_000),
        seconds=args.seconds or (3 if args.quick else 10),
        latency_seconds=args.seconds or (3 if args.quick else 8),
        port=args.port,
    )
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if plan.quick else "full",
        "tokens_per_environment": plan.tokens,
        "machine": machine(),
        "versions": versions(),
        "procfile": {role: procfile_command(role) for role in ("web", "worker")},
        "web_concurrency": os.environ.get("WEB_CONCURRENCY", "(the server's default)"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    log(f"{results['mode']} run: {plan.tokens:,} tokens per environment, two environments")
    recreate_database()
    flush_redis()
    try:
        fixtures = json.loads(
            run([sys.executable, "-m", "bench.fixtures"], capture_output=True).stdout
        )
        shape = Shape(count=plan.tokens, reserve=plan.reserve)
        with psycopg.connect(bench_url()) as conn:
            log("loading tokens with COPY")
            t0 = time.monotonic()
            defaults = fixtures["token_defaults"]
            set_defaults(conn, "tokens_token", defaults)  # for the columns COPY leaves out
            with bulk_load(conn, ("tokens_token", "tokens_tokentag")):
                start_ms = load_environment(conn, fixtures["environment"], shape, salt=1)
                load_environment(conn, fixtures["other_environment"], shape, salt=2)
                log(f"COPY took {time.monotonic() - t0:.1f} s; rebuilding indexes")
            set_defaults(conn, "tokens_token", dict.fromkeys(defaults))  # as migrations left it
            conn.commit()
        with psycopg.connect(bench_url(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            results["load_seconds"] = round(time.monotonic() - t0, 1)
            log(f"loaded in {results['load_seconds']} s")
            prepare_floor(conn, fixtures["environment"], plan)
            set_defaults(conn, "bench_floor_token", defaults)  # its INSERTs name no new column
        ids = [token_id(start_ms, i, 1) for i in range(plan.tokens)]
        deep_cursor = "waitpoint_" + ids[max(0, plan.tokens - 1 - 100 * 1000)]
        supply = ids[plan.tokens - plan.reserve :]
        per_run = len(supply) // len(CONCURRENCY)
        complete_ids = [supply[i * per_run : (i + 1) * per_run] for i in range(len(CONCURRENCY))]
        retrieve_ids = ["waitpoint_" + i for i in ids[:1000]]
        detail_id = "waitpoint_" + ids[plan.tokens // 2]

        log("EXPLAIN (ANALYZE, BUFFERS) of every list shape")
        shapes = list_shapes(deep_cursor, "waitpoint_" + ids[plan.tokens - 5000])
        explain = run(
            [sys.executable, "-m", "bench.explain", fixtures["secret"]],
            input=json.dumps(shapes),
            capture_output=True,
        ).stdout
        results["explain"] = json.loads(explain)

        log("the service, as the Procfile starts it")
        worker = Role("worker", service_env())
        try:
            with web("web", plan.port) as service:
                # Before any request: what each web process holds when it has served nothing
                # (after a few seconds: /healthz answers once one worker is up, not all).
                time.sleep(IDLE_SETTLE_SECONDS)
                results["rss_idle"] = {"web": service.processes(), "worker": worker.processes()}
                log("list latency, one connection")
                auth = f"Bearer {fixtures['secret']}"
                results["list"] = latency(plan, plan.port, shapes, auth=auth)
                log(f"list latency, {LIST_CONNECTIONS} connections")
                results["list_concurrent"] = latency(
                    plan, plan.port, shapes, auth=auth, connections=LIST_CONNECTIONS
                )
                log("dashboard latency")
                pages = {
                    "token list": "/projects/bench/dev/tokens",
                    "waiting for me": "/",
                    "token detail": f"/tokens/{detail_id}",
                }
                results["dashboard"] = latency(plan, plan.port, pages, cookie=fixtures["cookie"])
                log("throughput: create / complete / retrieve at 1, 8, 32 connections")
                results["service"] = throughput(
                    plan,
                    plan.port,
                    fixtures["secret"],
                    [["waitpoint_" + i for i in run_ids] for run_ids in complete_ids],
                    retrieve_ids,
                )
                results["rss"] = {"web": service.processes(), "worker": worker.processes()}
                log("webhook delivery latency")
                results["webhook delivery"] = webhooks.measure(
                    port=plan.port,
                    receiver_port=plan.port + 1,
                    secret=fixtures["secret"],
                    count=50 if plan.quick else 200,
                )
                for name, row in EXTRA_ROWS.items():
                    results[name] = row(plan, fixtures)
        finally:
            worker.stop()

        log("long-poll waiters on one web process")
        worker = Role("worker", service_env())
        try:
            with web("web-waiters", plan.port + 2, WEB_CONCURRENCY="1") as one:
                waiting_ids = ["waitpoint_" + ids[i] for i in range(plan.tokens) if i % 10 < 7][
                    : 1000 if not plan.quick else 300
                ]
                results["long-poll waiters"] = waiters.measure(
                    port=plan.port + 2,
                    secret=fixtures["secret"],
                    ids=waiting_ids,
                    woken_count=200 if not plan.quick else 100,
                    rss_mb=lambda: sum(p["rss_mb"] for p in one.processes()),
                )
        finally:
            worker.stop()

        log("the floor: bare Django views, same server command")
        with web("web-floor", plan.port, DJANGO_SETTINGS_MODULE="bench.floor.settings") as floor:
            results["floor"] = throughput(
                plan,
                plan.port,
                fixtures["secret"],
                [["waitpoint_" + i for i in run_ids] for run_ids in complete_ids],
                retrieve_ids,
            )
            results["rss"]["floor_web"] = floor.processes()
        log("pgbench")
        results["pgbench"] = pgbench(plan)
    finally:
        drop_database()
    if not args.skip_sweep:
        log("sweep (bench/sweep.py)")
        try:
            results["sweep"] = sweep(plan)
        except subprocess.CalledProcessError as error:  # keep the other rows
            log(f"the sweep failed ({error}); writing the other rows")
            results["sweep_error"] = str(error)
    results["elapsed_seconds"] = round(time.monotonic() - started)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.write(results, args.out)
    log(f"done in {results['elapsed_seconds']} s; see {args.out}/README.md")
