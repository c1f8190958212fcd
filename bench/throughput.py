"""Issue 18's table: create, complete and retrieve through the service beside the floor, one run.

    .venv/bin/python -m bench.throughput          # ~6 minutes; writes docs/benchmarks/README.md
    .venv/bin/python -m bench.throughput --check  # 3-second runs; prints, writes nothing

The floor is the fastest a bare Django view doing the same SQL manages on this machine: the
views of ``bench/floor/`` under gunicorn (gthread, 4 threads a worker) and under granian (WSGI,
4 blocking threads a worker), as many workers as the service's web role has; per row the faster
of the two. The service runs as the Procfile starts it (``web`` and ``worker``). Each is driven
by wrk at 8 and 32 connections, in the same run, on a database of its own (BENCH_DB_NAME,
default ``waitpoints_bench_throughput``, dropped after).

Figures from a busy machine are not figures: it waits up to ``--wait-quiet`` seconds (default
180) for the 1-minute load average to fall below 1.0, and refuses to publish otherwise (exit
status 2). The load average at the start and at the end are part of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DB_NAME", "waitpoints_bench_throughput")

import psycopg  # noqa: E402

from bench import publishing, runner  # noqa: E402 - runner reads BENCH_DB_NAME
from bench.publishing import QUIET_LOAD, replace_section  # noqa: E402

CONNECTIONS = (8, 32)
OPERATIONS = ("create", "complete", "retrieve")
MARK_START = "<!-- bench.throughput: start -->"
MARK_END = "<!-- bench.throughput: end -->"
THREADS_PER_FLOOR_WORKER = 4


def floor_servers(port: int, workers: int) -> dict[str, str]:
    app = "waitpoints_site.wsgi:application"
    threads = THREADS_PER_FLOOR_WORKER
    return {
        f"gunicorn gthread ({workers} × {threads} threads)": (
            f"gunicorn --bind 127.0.0.1:{port} --workers {workers} --threads {threads} "
            f"--worker-class gthread --access-logfile /dev/null {app}"
        ),
        f"granian WSGI ({workers} × {threads} blocking threads)": (
            f"granian --interface wsgi --host 127.0.0.1 --port {port} --workers {workers} "
            f"--blocking-threads {threads} --no-ws {app}"
        ),
    }


@contextmanager
def serving(name: str, command: str, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    runner.LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = runner.LOG_DIR / f"{name.split()[0]}.log"
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=runner.ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    role = runner.Role.__new__(runner.Role)  # only for wait_healthy's and processes()' sake
    role.name, role.log_path, role.process = name, log, process
    try:
        runner.wait_healthy(port, role)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def cpu_seconds(root: int) -> float:
    """User + system CPU time of the process tree under ``root`` (the server's processes)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid, _, _ in runner.process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def measure(
    port: int,
    secret: str,
    seconds: int,
    complete_ids: dict[int, list[str]],
    retrieve: list[str],
    server: int,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Each row, with the server's CPU milliseconds per request (its process tree's)."""
    auth = f"Bearer {secret}"
    tokens = "/api/v1/waitpoints/tokens"
    rows: dict[str, dict[int, dict[str, Any]]] = {op: {} for op in OPERATIONS}
    for connections in CONNECTIONS:
        common = {"seconds": seconds, "connections": connections, "auth": auth}
        requests: dict[str, dict[str, Any]] = {
            "create": {"path": tokens, "method": "POST", "body": runner.CREATE_BODY},
            "complete": {
                "path": tokens + "/{id}/complete",
                "method": "POST",
                "body": runner.COMPLETE_BODY,
                "ids": complete_ids[connections],
            },
            "retrieve": {"path": tokens + "/{id}", "ids": retrieve},
        }
        for op, request in requests.items():
            before = cpu_seconds(server)
            row = runner.wrk(port, **request, **common)
            spent = cpu_seconds(server) - before
            row["server_cpu_ms"] = round(spent * 1000 / max(1, row["requests"]), 2)
            rows[op][connections] = row
        runner.log(
            f"  {connections} connections: "
            + ", ".join(
                f"{op} {rows[op][connections]['rps']:,.0f}/s "
                f"({rows[op][connections]['server_cpu_ms']} ms CPU)"
                for op in OPERATIONS
            )
        )
    return rows


def table(results: dict[str, Any]) -> str:
    floors = list(results["floors"])
    lines = [
        MARK_START,
        "## Throughput: the service beside the floor (issue 18)",
        "",
        f"Run {results['date']} with `python -m bench.throughput` ({results['seconds']} s per "
        f"wrk run, {results['tokens']:,} tokens), load average "
        f"{' / '.join(map(str, results['load_at_start']))} at the start (1 / 5 / 15 min; "
        f"the command refuses to publish above {QUIET_LOAD}) and "
        f"{' / '.join(map(str, results['load_at_end']))} at the end (its own load), "
        f"{results['machine']['cores']} cores. The service: the Procfile's `web` "
        f"({results['web_workers']} processes × {results['web_threads']} threads) and `worker`. "
        "The floor: bare Django views doing the same SQL (`bench/floor/`), the faster of "
        + " and ".join(f"{name}" for name in floors)
        + ", per row.",
        "",
        "| operation | connections | "
        + " | ".join(f"floor: {name}" for name in floors)
        + " | service | service ÷ floor | service non-2xx | server CPU per request, "
        "service / faster floor | target |",
        "| --- | --- | " + " | ".join("---" for _ in floors) + " | --- | --- | --- | --- | --- |",
    ]
    for op in OPERATIONS:
        for connections in CONNECTIONS:
            key = str(connections)
            floor_rps = [results["floors"][name][op][key]["rps"] for name in floors]
            service = results["service"][op][key]
            best = max(floor_rps)
            fastest = results["floors"][floors[floor_rps.index(best)]][op][key]
            ratio = service["rps"] / best if best else 0.0
            met = ratio >= 0.8 and service["errors"] == 0
            lines.append(
                f"| {op} | {connections} | "
                + " | ".join(f"{rps:,.0f}" for rps in floor_rps)
                + f" | {service['rps']:,.0f} (p99 {service['p99_ms']:.1f} ms) | {ratio:.0%} | "
                f"{service['errors']} | {service.get('server_cpu_ms', '?')} / "
                f"{fastest.get('server_cpu_ms', '?')} ms | "
                f"≥ 80%, 0 non-2xx: {'met' if met else '**missed**'} |"
            )
    rss = results.get("rss_mb", {})
    if rss:
        lines += [
            "",
            "RSS after the runs (MB): "
            + "; ".join(f"{name} {', '.join(map(str, values))}" for name, values in rss.items())
            + ".",
        ]
    lines += ["", MARK_END]
    return "\n".join(lines)


def publish(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    # A first one right after the title, so it is what a reader sees first.
    replace_section(out / "README.md", MARK_START, MARK_END, table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="3 s runs; print, never publish")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 10; check: 3)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8230")))
    parser.add_argument("--wait-quiet", type=float, default=180, help="seconds to wait for it")
    parser.add_argument("--out", type=Path, default=runner.OUT_DIR)
    args = parser.parse_args()
    # Stopped (Ctrl-C, SIGTERM): still stop the servers and drop the database (the finally
    # blocks below), instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("wrk", "gunicorn", "granian"):
        if not (runner.BIN / tool).exists() and not shutil.which(tool):
            sys.exit(
                f"bench.throughput: {tool} not found (wrk: apt-get install -y wrk; "
                "gunicorn, granian: .venv/bin/pip install -e '.[dev,bench]')"
            )
    seconds = args.seconds or (3 if args.check else 10)
    load_at_start = publishing.wait_until_quiet(0 if args.check else args.wait_quiet, runner.log)
    runner.log(f"load average at the start: {load_at_start}")
    if load_at_start[0] >= QUIET_LOAD and not args.check:
        runner.log(f"refusing to publish: load average {load_at_start[0]} ≥ {QUIET_LOAD}")
        sys.exit(2)
    # Enough WAITING tokens for every complete run never to complete one twice (at ~4,000/s).
    per_run = 4000 * seconds
    runs = 2 * len(CONNECTIONS)  # the service and gunicorn share ids (their own tables)
    count = per_run * runs + 50_000
    plan = runner.Plan(quick=args.check, tokens=count, seconds=seconds, latency_seconds=seconds,
                       port=args.port)  # fmt: skip
    from waitpoints_site import env as web_env

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "tokens": count,
        "machine": runner.machine(),
        "versions": runner.versions(),
        "procfile": {role: runner.procfile_command(role) for role in ("web", "worker")},
        "web_workers": web_env.web_workers(),
        "web_threads": web_env.web_threads(),
        "load_at_start": load_at_start,
    }
    runner.recreate_database()
    runner.flush_redis()
    try:
        fixtures = json.loads(
            runner.run([sys.executable, "-m", "bench.fixtures"], capture_output=True).stdout
        )
        shape = runner.Shape(count=count, reserve=per_run * runs)
        with psycopg.connect(runner.bench_url()) as conn:
            runner.log(f"loading {count:,} tokens")
            defaults = fixtures["token_defaults"]
            runner.set_defaults(conn, "tokens_token", defaults)
            with runner.bulk_load(conn, ("tokens_token", "tokens_tokentag")):
                start_ms = runner.load_environment(conn, fixtures["environment"], shape, salt=1)
            runner.set_defaults(conn, "tokens_token", dict.fromkeys(defaults))
            conn.commit()
        with psycopg.connect(runner.bench_url(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            runner.prepare_floor(conn, fixtures["environment"], plan)
            runner.set_defaults(conn, "bench_floor_token", defaults)
        ids = ["waitpoint_" + runner.token_id(start_ms, i, 1) for i in range(count)]
        supply = ids[count - shape.reserve :]
        lists = [supply[i * per_run : (i + 1) * per_run] for i in range(runs)]
        first = dict(zip(CONNECTIONS, lists[: len(CONNECTIONS)], strict=True))
        second = dict(zip(CONNECTIONS, lists[len(CONNECTIONS) :], strict=True))
        retrieve = ids[:1000]
        secret = fixtures["secret"]

        runner.log("the service, as the Procfile starts it")
        worker = runner.Role("worker", runner.service_env())
        try:
            with runner.web("web", args.port) as service:
                results["service"] = measure(
                    args.port, secret, seconds, first, retrieve, service.process.pid
                )
                results["rss_mb"] = {
                    "service web": [p["rss_mb"] for p in service.processes()],
                }
        finally:
            worker.stop()
        results["floors"] = {}
        floor_env = runner.service_env(DJANGO_SETTINGS_MODULE="bench.floor.settings")
        servers = floor_servers(args.port, web_env.web_workers())
        for (name, command), own_ids in zip(servers.items(), (first, second), strict=True):
            runner.log(f"the floor: {name}")
            runner.log(f"  {shlex.split(command)[0]} …")
            with serving(name, command, args.port, floor_env) as process:
                results["floors"][name] = measure(
                    args.port, secret, seconds, own_ids, retrieve, process.pid
                )
    finally:
        runner.drop_database()
    results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # JSON keys are strings; keep them so whether the results come from here or from the file.
    for source in [results["service"], *results["floors"].values()]:
        for op in OPERATIONS:
            source[op] = {str(k): v for k, v in source[op].items()}
    print(table(results))
    if args.check:
        runner.log("--check: nothing written")
        return
    publish(results, args.out)
    runner.log(f"written to {args.out}/README.md and throughput.json")


if __name__ == "__main__":
    main()
