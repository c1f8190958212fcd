"""Does a web process's memory grow under load? RSS of each web process over a long mixed run.

    .venv/bin/python -m bench.memory                # 10 minutes; writes its README section
    .venv/bin/python -m bench.memory --check        # prints, writes nothing (trial: --minutes 1)
    .venv/bin/python -m bench.memory --allow-busy   # on a busy machine too: marked "busy"
    .venv/bin/python -m bench.memory --render       # the section again from memory.json

(the section of docs/benchmarks/README.md between the ``bench.memory`` markers, and
docs/benchmarks/memory.json).

The service runs as the Procfile starts it (``web`` and ``worker``) on its own database
(BENCH_DB_NAME, default ``waitpoints_bench_memory``, dropped after). ``--clients`` kept-alive
connections (default 4) each repeat: create a token, retrieve it, list the newest 100, complete
it; the web processes' RSS is sampled when the load starts and every ``--interval`` seconds
(default 30). Growth: each process's mean RSS over the last minute minus its mean over the first
(the first minute is the warm-up: imports finishing, caches filling, allocator arenas reaching
their working size). "no growth" only when every process stays within ``TOLERANCE_MB`` or
``TOLERANCE_FRACTION`` of its first-minute figure, whichever is larger: after warm-up a Python
worker's RSS moves by a megabyte or two as pymalloc arenas and malloc heaps are kept or given
back, while a leak as small as 1 KB a request, at the hundreds of requests a second a worker
serves here, adds tens of MB between the first minute and the last of a 10-minute run.

Figures from a busy machine are not figures: the 1-minute load average must be below 1.0 at the
start (it waits up to ``--wait-quiet`` seconds, default 180), else it refuses with exit status 2
unless ``--allow-busy`` (published, marked busy).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DB_NAME", "waitpoints_bench_memory")

from bench import publishing, runner  # noqa: E402 - runner reads BENCH_DB_NAME

MARK_START = "<!-- bench.memory: start -->"
MARK_END = "<!-- bench.memory: end -->"
AFTER = "<!-- bench.throughput: end -->"  # a first section goes below throughput's
TOLERANCE_MB = 3.0
TOLERANCE_FRACTION = 0.03
WINDOW_SECONDS = 60  # "the first minute", "the last minute"
MIN_MINUTES_FOR_VERDICT = 3  # shorter, the first and the last minute (nearly) overlap
TOKENS = "/api/v1/waitpoints/tokens"


def _log(message: str) -> None:
    runner.log(f"memory: {message}")


# ------------------------------------------------------------------------------------------------
# The load: create, retrieve, list, complete, on kept-alive connections
# ------------------------------------------------------------------------------------------------


class Client(threading.Thread):
    def __init__(self, port: int, secret: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.requests, self.errors = port, stop, 0, 0
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def call(self, connection: http.client.HTTPConnection, method: str, path: str, body: str = ""):
        connection.request(method, path, body=body or None, headers=self.headers)
        reply = connection.getresponse()
        data = reply.read()
        self.requests += 1
        if reply.status >= 400:
            self.errors += 1
            return None
        return json.loads(data)

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                created = self.call(connection, "POST", TOKENS, runner.CREATE_BODY)
                if created is None:
                    continue
                token = f"{TOKENS}/{created['id']}"
                self.call(connection, "GET", token)
                self.call(connection, "GET", f"{TOKENS}?page[size]=100")
                self.call(connection, "POST", f"{token}/complete", runner.COMPLETE_BODY)
            except (OSError, http.client.HTTPException, ValueError):
                self.errors += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(0.1)
        connection.close()


# ------------------------------------------------------------------------------------------------
# The figures
# ------------------------------------------------------------------------------------------------


def growth(samples: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Per web process: mean RSS over the first and the last minute of the load, the growth
    between them, and the verdict. ``samples``: ``{"t": seconds since the load started,
    "rss_mb": {pid: MB}}``; the one at t=0 (before any request) is the idle figure, not part of
    the first minute."""
    first = [s for s in samples if 0 < s["t"] <= WINDOW_SECONDS]
    last = [s for s in samples if s["t"] >= seconds - WINDOW_SECONDS and s["t"] > 0]
    processes: dict[str, dict[str, Any]] = {}
    for pid in samples[0]["rss_mb"] if samples else {}:
        early = [s["rss_mb"][pid] for s in first if pid in s["rss_mb"]]
        late = [s["rss_mb"][pid] for s in last if pid in s["rss_mb"]]
        if not early or not late:
            processes[pid] = {"verdict": "not measured (the process did not live through)"}
            continue
        first_mb, last_mb = statistics.fmean(early), statistics.fmean(late)
        tolerance = max(TOLERANCE_MB, TOLERANCE_FRACTION * first_mb)
        processes[pid] = {
            "idle_mb": samples[0]["rss_mb"][pid],
            "first_minute_mb": round(first_mb, 1),
            "last_minute_mb": round(last_mb, 1),
            "peak_mb": max(s["rss_mb"].get(pid, 0.0) for s in samples),
            "growth_mb": round(last_mb - first_mb, 1),
            "tolerance_mb": round(tolerance, 1),
            "within": last_mb - first_mb <= tolerance,
        }
    measured = [p for p in processes.values() if "within" in p]
    if seconds < MIN_MINUTES_FOR_VERDICT * 60:
        verdict = f"no verdict: a run under {MIN_MINUTES_FOR_VERDICT} minutes is a trial"
    elif not measured or len(measured) < len(processes):
        verdict = "no verdict: a web process did not live through the run"
    else:
        verdict = "no growth" if all(p["within"] for p in measured) else "**growth**"
    return {"processes": processes, "verdict": verdict}


def section(results: dict[str, Any]) -> str:
    load = results["load_at_start"]
    busy = load[0] >= publishing.QUIET_LOAD
    loads = f"load average {' / '.join(map(str, load))} at the start"
    if "load_at_end" in results:
        loads += f", {' / '.join(map(str, results['load_at_end']))} at the end"
    label = (
        f"**busy machine** ({loads} (1 / 5 / 15 min), {results['machine']['cores']} cores; other "
        "work competed: not the figures of record, a run on a quiet machine replaces them)"
        if busy
        else f"quiet machine ({loads} (1 / 5 / 15 min), {results['machine']['cores']} cores)"
    )
    load_run = results["load"]
    rows = []
    for pid, p in results["growth"]["processes"].items():
        name = f"{pid} `{results.get('commands', {}).get(pid, '')[:60]}`"
        if "within" not in p:
            rows.append(f"| {name} | {p['verdict']} | | | | | |")
            continue
        rows.append(
            f"| {name} | {p['idle_mb']} | {p['first_minute_mb']} | {p['last_minute_mb']} | "
            f"{p['peak_mb']} | {p['growth_mb']:+} | ≤ {p['tolerance_mb']} "
            f"{'(within)' if p['within'] else '**(exceeded)**'} |"
        )
    return "\n".join(
        [
            MARK_START,
            "## Memory under a long mixed load (issue 18)",
            "",
            f"figures: see the run of {results['date']} — {label}.",
            "",
            f"`python -m bench.memory` (bench/README.md): the service as the Procfile starts it "
            f"(`{results['procfile']['web']}`), {results['minutes']} minutes of "
            f"{load_run['clients']} kept-alive clients each repeating create, retrieve, list "
            f"(`page[size]=100`), complete: {load_run['requests']:,} requests "
            f"({load_run['rps']:,.0f}/s), {load_run['errors']} errors. RSS of each web process "
            f"sampled every {results['interval_seconds']} s; growth is the last minute's mean "
            f"minus the first minute's; tolerance {TOLERANCE_MB} MB or "
            f"{TOLERANCE_FRACTION:.0%}, whichever is larger.",
            "",
            f"**Verdict: {results['growth']['verdict']}.**",
            "",
            "| web process (pid, command) | idle MB | first minute MB | last minute MB | "
            "peak MB | growth MB | tolerance MB |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            MARK_END,
        ]
    )


def publish(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    publishing.replace_section(
        out / "README.md", MARK_START, MARK_END, section(results), after=AFTER
    )


def rss_by_pid(role: runner.Role) -> dict[str, float]:
    return {str(p["pid"]): p["rss_mb"] for p in role.processes()}


def measure(port: int, secret: str, web: runner.Role, *, seconds: float, interval: float,
            clients: int) -> dict[str, Any]:  # fmt: skip
    """Run the load for ``seconds``, sampling the web role's RSS from its start."""
    stop = threading.Event()
    threads = [Client(port, secret, stop) for _ in range(clients)]
    samples = [{"t": 0.0, "rss_mb": rss_by_pid(web)}]
    commands = {str(p["pid"]): p["command"] for p in web.processes()}
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            time.sleep(min(interval, seconds - elapsed))
            samples.append({"t": round(time.monotonic() - started, 1), "rss_mb": rss_by_pid(web)})
            _log(f"{samples[-1]['t']:.0f} s: RSS MB {samples[-1]['rss_mb']}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=35)
    took = time.monotonic() - started
    requests = sum(t.requests for t in threads)
    return {
        "commands": commands,
        "samples": samples,
        "load": {
            "clients": clients,
            "requests": requests,
            "rps": round(requests / took, 1),
            "errors": sum(t.errors for t in threads),
        },
        "growth": growth(samples, samples[-1]["t"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the load (10)")
    parser.add_argument("--interval", type=float, default=30, help="seconds between samples")
    parser.add_argument("--clients", type=int, default=4, help="kept-alive connections (4)")
    parser.add_argument("--check", action="store_true", help="print, never publish")
    parser.add_argument("--allow-busy", action="store_true", help="run on a busy machine too")
    parser.add_argument("--wait-quiet", type=float, default=180, help="seconds to wait for it")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8230")))
    parser.add_argument("--out", type=Path, default=runner.OUT_DIR)
    parser.add_argument("--render", action="store_true", help="the section again from memory.json")
    args = parser.parse_args()
    if args.render:
        publish(json.loads((args.out / "memory.json").read_text()), args.out)
        return
    # Stopped (Ctrl-C, SIGTERM): still stop the servers and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wait = 0 if args.allow_busy or args.check else args.wait_quiet
    load = publishing.wait_until_quiet(wait, _log)
    _log(f"load average at the start: {load}")
    if load[0] >= publishing.QUIET_LOAD and not (args.allow_busy or args.check):
        _log(f"refusing: load average {load[0]} ≥ {publishing.QUIET_LOAD} (--allow-busy to run)")
        sys.exit(2)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": runner.machine(),
        "procfile": {role: runner.procfile_command(role) for role in ("web", "worker")},
        "minutes": args.minutes,
        "interval_seconds": args.interval,
        "load_at_start": load,
    }
    runner.recreate_database()
    runner.flush_redis()
    try:
        fixtures = json.loads(
            runner.run([sys.executable, "-m", "bench.fixtures"], capture_output=True).stdout
        )
        worker = runner.Role("worker", runner.service_env())
        try:
            with runner.web("web", args.port) as web:
                time.sleep(runner.IDLE_SETTLE_SECONDS)  # every worker up, not just the first
                _log(f"{args.minutes:g} minutes of mixed load, {args.clients} clients")
                results.update(
                    measure(
                        args.port,
                        fixtures["secret"],
                        web,
                        seconds=args.minutes * 60,
                        interval=args.interval,
                        clients=args.clients,
                    )
                )
        finally:
            worker.stop()
    finally:
        runner.drop_database()
    results["load_at_end"] = publishing.load_average()
    print(section(results))
    if args.check:
        _log("--check: nothing written")
        return
    publish(results, args.out)
    _log(f"written to {args.out}/README.md and memory.json")


if __name__ == "__main__":
    main()
