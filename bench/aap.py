"""The AAP provider (issue 19): create latency, and 1,000 SDK gates waiting at once on one web
process, each woken within 1 s of its decision.

    .venv/bin/python -m bench.aap               # ~2 minutes; writes docs/benchmarks/README.md
    .venv/bin/python -m bench.aap --check       # 200 creates, 100 gates; prints, writes nothing
    .venv/bin/python -m bench.aap --allow-busy  # on a busy machine too: figures labelled "busy"
    .venv/bin/python -m bench.aap --render      # the section again from docs/benchmarks/aap.json

Also ``python -m bench aap``. The service runs as the Procfile starts it (``web`` and
``worker``, on 127.0.0.1, PostgreSQL and Redis), on a database of its own (BENCH_DB_NAME,
default ``waitpoints_bench_aap``, dropped after; BENCH_REDIS_URL is flushed). An instance is
provisioned as a deployment would: ``manage.py create_aap_provisioner``, then
``POST /api/aap/v1/instances`` with that token.

* **Create latency**: ``POST /api/aap/v1/requests`` (a new Idempotency-Key each) with raw httpx
  on kept-alive connections, N in a row on one connection and N over 8: the SDK's ``Client``
  would add its strict parsing of every answer to the figure and retry 429 and 5xx answers,
  hiding them; here each answer is read, counted and timed, nothing more.
* **Gates**: a web role of one process (``WEB_CONCURRENCY=1``), and in this process 1,000
  ``AsyncGate.check`` calls of the official SDK at once (sync mode: create, then long polls
  ``GET …/requests/{id}?wait=25s`` as the SDK sends them, then consume), over one
  ``AsyncClient`` whose ``get`` notes when the poll that carried the decision returned. Once
  the web process reports all 1,000 parked (``/healthz`` ``waiters``), every request is
  approved over the token API (``POST /api/v1/waitpoints/tokens/{id}/complete`` with
  ``{"status": "approved"}``, as the dashboard writes it) by 4 clients in a tight loop. The
  decision committed between that call's start and its response: the wake latency is given
  from the response (the v1 waiters' row measures the same way) and "within 1 s" is counted
  from the call's start, so that it never flatters.

Figures from a busy machine are not figures: the 1-minute load average must be below 1.0 at
the start (it waits up to ``--wait-quiet`` seconds for it); otherwise it refuses (exit status
2), unless ``--allow-busy``, which publishes them marked as taken on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DB_NAME", "waitpoints_bench_aap")

import httpx  # noqa: E402
from agentapprovalprotocol import Allow, AsyncClient, AsyncGate, Call, Request  # noqa: E402

from bench import publishing, runner, throughput, waiters  # noqa: E402 - runner reads BENCH_DB_NAME

MARK_START = "<!-- bench.aap: start -->"
MARK_END = "<!-- bench.aap: end -->"
AFTER = "<!-- bench.throughput: end -->"
REQUESTS = "/api/aap/v1/requests"
GATE_TOOL = "deploy"
WITHIN = 1.0  # seconds: the bound from a decision to its gate's wake-up
WARM_UP = 20  # creates before the timed ones: connections opened, code paths warm


def _log(message: str) -> None:
    runner.log(f"aap: {message}")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max in milliseconds (the nearest-rank value, as the other rows)."""
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def submission(call_id: str) -> dict[str, Any]:
    """A create as the SDK's gate sends one (tool, arguments, timeout, context.call_id)."""
    return {
        "tool": "send_email",
        "arguments": {"to": "customers@example.com", "subject": "Our prices change", "n": 4000},
        "timeout": "10m",
        "agent_reasoning": "The user asked to announce the new prices.",
        "context": {"call_id": call_id, "runtime": "bench"},
    }


# ------------------------------------------------------------------------------------------------
# Create latency
# ------------------------------------------------------------------------------------------------


def create_latency(*, url: str, credential: str, count: int, connections: int) -> dict[str, Any]:
    """``count`` creates over ``connections`` kept-alive connections (a thread each, started
    together); each timed from sending to its whole answer read."""
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"}
    durations: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(connections + 1)
    shares = [count // connections + (i < count % connections) for i in range(connections)]

    def one_connection(share: int, warm_up: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for n in range(warm_up + share):
                if n == warm_up:
                    start.wait()
                body = json.dumps(submission(str(uuid.uuid4()))).encode()
                began = time.perf_counter()
                reply = http.post(
                    REQUESTS, content=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                reply.read()
                elapsed = time.perf_counter() - began
                if n >= warm_up:
                    with lock:
                        durations.append(elapsed)
                        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    warm_ups = [WARM_UP // connections or 1 for _ in shares]
    threads = [
        threading.Thread(target=one_connection, args=(share, warm_up), daemon=True)
        for share, warm_up in zip(shares, warm_ups, strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return {
        "connections": connections,
        "requests": len(durations),
        "errors": sum(n for status, n in statuses.items() if status != 201),
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "rps": round(len(durations) / seconds, 1) if seconds else 0.0,
        **percentiles(durations),
    }


# ------------------------------------------------------------------------------------------------
# 1,000 gates waiting at once
# ------------------------------------------------------------------------------------------------


@dataclass
class Records:
    """What the gates' clients note, shared by all of them."""

    # Creates go at most this many at a time: a thousand at once would queue behind the web
    # process's few threads past the SDK's 40 s timeout and be sent again. The gates' long
    # polls, the part measured, all run at once.
    arrivals: asyncio.Semaphore
    created: list[str] = field(default_factory=list)
    returned: dict[str, float] = field(default_factory=dict)  # id -> the deciding read's return


class TimedClient(AsyncClient):
    """The SDK's client, unchanged, noting when each request's decision came back to it."""

    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient, records: Records
    ) -> None:
        super().__init__(base_url, token, http=http)
        self.records = records

    async def create(self, submission: Any, key: str) -> Request:
        async with self.records.arrivals:
            request = await super().create(submission, key)
        self.records.created.append(request.id)
        return request

    async def get(self, request_id: str, *, wait: int | None = None) -> Request:
        request = await super().get(request_id, wait=wait)
        if request.status != "pending":
            self.records.returned.setdefault(request_id, time.monotonic())
        return request


async def _parked(url: str, count: int, checks: list[asyncio.Task[Any]], timeout: float) -> int:
    """Wait until the web process holds ``count`` blocked waiters (its /healthz says so: the
    only way to see inside another process); the number seen."""
    deadline = time.monotonic() + timeout
    seen = 0
    async with httpx.AsyncClient(timeout=timeout) as http:
        while time.monotonic() < deadline:
            # Its answer waits for a thread behind the creates: no shorter timeout than ours.
            seen = int((await http.get(f"{url}/healthz")).json()["waiters"])
            if seen >= count or any(check.done() for check in checks):
                return seen
            await asyncio.sleep(0.1)
    return seen


async def _token_ids(port: int, api_key: str, request_ids: set[str]) -> dict[str, str]:
    """AAP request id -> its token's id, from the token API's list (the gates' tool tag)."""
    found: dict[str, str] = {}
    after = ""
    while True:
        path = f"/api/v1/waitpoints/tokens?page[size]=100&filter[tags]=aap-tool:{GATE_TOOL}"
        status, body = await waiters.http_request(port, "GET", path + after, api_key)
        if status != 200:
            raise SystemExit(f"bench.aap: listing the gates' tokens answered {status}: {body!r}")
        page = json.loads(body)
        for token in page["data"]:
            for tag in token["tags"]:
                if tag.startswith("aap-request:") and tag[12:] in request_ids:
                    found[tag[12:]] = token["id"]
        if not page["data"] or "next" not in page.get("pagination", {}):
            return found
        after = f"&page[after]={page['data'][-1]['id']}"


async def _decide(
    port: int, api_key: str, token_ids: dict[str, str], deciders: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Approve each request over the token API; when each call started and was answered."""
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    queue = list(token_ids.items())
    queue.reverse()  # popped from the end: the first created is decided first
    body = json.dumps({"data": {"status": "approved", "comment": "bench"}}).encode()

    async def decider() -> None:
        while queue:
            request_id, token_id = queue.pop()
            path = f"/api/v1/waitpoints/tokens/{token_id}/complete"
            sent[request_id] = time.monotonic()
            status, _ = await waiters.http_request(port, "POST", path, api_key, body)
            if status == 200:
                answered[request_id] = time.monotonic()
            else:
                del sent[request_id]

    await asyncio.gather(*(decider() for _ in range(deciders)))
    return sent, answered


async def _gates(
    *,
    url: str,
    credential: str,
    api_key: str,
    count: int,
    deciders: int,
    rss_mb: Callable[[], float] | None,
    server_cpu: Callable[[], float] | None,
) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    before = rss_mb() if rss_mb else None
    # CPU seconds of the web process and of this client, at each step: which side was short.
    cpu: dict[str, list[float]] = {}

    def note_cpu(step: str) -> None:
        cpu[step] = [round(server_cpu(), 2) if server_cpu else 0.0, round(time.process_time(), 2)]

    note_cpu("start")
    records = Records(arrivals=asyncio.Semaphore(32))
    # Each gate its own client and connection, as each agent runtime has: one client for all
    # would put a thousand connections in one httpx pool, whose bookkeeping grows with the
    # square of them and would be what this measures. One TLS context for all (none is used
    # on http://127.0.0.1, but each client would build one).
    tls = ssl.create_default_context()
    https = [
        httpx.AsyncClient(timeout=40.0, follow_redirects=False, verify=tls) for _ in range(count)
    ]
    try:
        gates = [
            AsyncGate(
                TimedClient(f"{url}/api/aap", credential, http=http, records=records),
                mode="sync",
                timeout="10m",
                report_outcomes=False,
            )
            for http in https
        ]
        started = time.monotonic()
        checks = [
            asyncio.create_task(
                gate.check(Call(key=f"gate-{n}", tool=GATE_TOOL, arguments={"gate": n}))
            )
            for n, gate in enumerate(gates)
        ]
        parked = await _parked(url, count, checks, timeout=max(60.0, count / 5))
        parked_after = time.monotonic() - started
        _log(f"{parked} gates parked after {parked_after:.1f} s")
        note_cpu("parked")
        during = rss_mb() if rss_mb else None
        token_ids = await _token_ids(port, api_key, set(records.created))
        sent, answered = await _decide(port, api_key, token_ids, deciders)
        decided_in = time.monotonic() - min(sent.values(), default=time.monotonic())
        note_cpu("decided")
        done, pending = await asyncio.wait(checks, timeout=60)
        for check in pending:
            check.cancel()
        verdicts = [check.result() for check in done if not check.cancelled()]
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    returned = records.returned
    lags = [returned[i] - answered[i] for i in answered if i in returned]
    bounds = [returned[i] - sent[i] for i in answered if i in returned]
    result: dict[str, Any] = {
        "gates": count,
        "parked": parked,
        "parked_after_s": round(parked_after, 1),
        "decided": len(answered),
        "decided_in_s": round(decided_in, 2),
        "decisions_per_s": round(len(answered) / decided_in, 1) if decided_in else 0.0,
        "woken": len(lags),
        "within_1s": sum(bound <= WITHIN for bound in bounds),
        "allowed": sum(isinstance(verdict, Allow) for verdict in verdicts),
        "wake": percentiles(lags),
        "wake_from_call_start": percentiles(bounds),
        "cpu_s": {
            f"{first}→{then}": {
                "server": round(cpu[then][0] - cpu[first][0], 2),
                "client": round(cpu[then][1] - cpu[first][1], 2),
            }
            for first, then in (("start", "parked"), ("parked", "decided"))
        },
    }
    if before is not None and during is not None:
        result["rss_mb_before"] = round(before, 1)
        result["rss_mb_with_gates"] = round(during, 1)
        result["kb_per_gate"] = round((during - before) * 1024 / count, 1)
    result["passed"] = result["within_1s"] == count
    return result


def gates(
    *,
    url: str,
    credential: str,
    api_key: str,
    count: int,
    deciders: int = 4,
    rss_mb: Callable[[], float] | None = None,
    server_cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """``count`` SDK gates waiting at once on the web role at ``url``, then all approved."""
    waiters.allow_open_files(count)
    return asyncio.run(
        _gates(
            url=url,
            credential=credential,
            api_key=api_key,
            count=count,
            deciders=deciders,
            rss_mb=rss_mb,
            server_cpu=server_cpu,
        )
    )


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now: other engineers' servers share this machine's 8230s."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def provision(url: str) -> tuple[str, str]:
    """An instance of bench/dev as a deployment makes one: the management command's provisioner
    token, then ``POST /v1/instances``; its id and credential."""
    printed = runner.run(
        [sys.executable, "manage.py", "create_aap_provisioner", "--project", "bench", "--env",
         "dev", "--name", "bench"],
        capture_output=True,
    ).stdout  # fmt: skip
    provisioner = printed.strip().splitlines()[-1]
    reply = httpx.post(
        f"{url}/api/aap/v1/instances",
        json={"instance_name": "bench"},
        headers={"Authorization": f"Bearer {provisioner}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    if reply.status_code != 201:
        raise SystemExit(f"bench.aap: provisioning answered {reply.status_code}: {reply.text}")
    answer = reply.json()
    return answer["instance"]["id"], answer["credential"]["token"]


def busy_refusal(load: list[float], *, allow_busy: bool) -> str | None:
    """Why not to run now (None: go on); a busy machine is allowed with ``--allow-busy``."""
    if load[0] < publishing.QUIET_LOAD or allow_busy:
        return None
    return (
        f"load average {load[0]} ≥ {publishing.QUIET_LOAD} on {os.cpu_count()} cores: other work "
        "competes, so these would not be figures; refusing (--allow-busy to run anyway, marked "
        "busy)"
    )


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
    g = results["gates"]
    rows = []
    for row in results["create"]:
        rows.append(
            f"| create `POST /api/aap/v1/requests`, {row['connections']} connection"
            f"{'s' if row['connections'] > 1 else ''} ({row['requests']:,} requests) | "
            f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, **p99 {row['p99_ms']} ms**; "
            f"{row['rps']:,.0f}/s; {row['errors']} not 201 | — |"
        )
    wake, bound = g["wake"], g["wake_from_call_start"]
    rows.append(
        f"| {g['gates']:,} SDK gates waiting at once on one web process, all approved "
        f"({g['decisions_per_s']:,.0f} decisions/s) | **{g['within_1s']:,}/{g['gates']:,} woken "
        f"within 1 s**; wake after the decision's response p50 {wake.get('p50_ms', '—')} ms, "
        f"p99 {wake.get('p99_ms', '—')} ms, max {wake.get('max_ms', '—')} ms (after the "
        f"decision call's start: max {bound.get('max_ms', '—')} ms); {g['allowed']:,} allowed "
        f"| {g['gates']:,}/{g['gates']:,} within 1 s: "
        f"{'met' if g['passed'] else '**missed**'} |"
    )
    memory = (
        f" The web process: {g['rss_mb_before']} MB before the gates, {g['rss_mb_with_gates']} "
        f"MB with them parked ({g['kb_per_gate']} KB a gate)."
        if "kb_per_gate" in g
        else ""
    )
    return "\n".join(
        [
            MARK_START,
            "## AAP provider (issue 19)",
            "",
            f"figures: see the run of {results['date']} — {label}.",
            "",
            f"`python -m bench.aap` (bench/README.md). The service as the Procfile starts it "
            f"(`web`, `worker`); creates timed with raw httpx on kept-alive connections; the "
            f"gates are the SDK's `AsyncGate` ({results['sdk']}), one process of `web` "
            f"(`WEB_CONCURRENCY=1`), decided over the token API by 4 clients.{memory}",
            "",
            "| what | measured | target |",
            "| --- | --- | --- |",
            *rows,
            "",
            MARK_END,
        ]
    )


def publish(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "aap.json").write_text(json.dumps(results, indent=2) + "\n")
    publishing.replace_section(
        out / "README.md", MARK_START, MARK_END, section(results), after=AFTER
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="a small run; print, never publish")
    parser.add_argument("--allow-busy", action="store_true", help="run on a busy machine too")
    parser.add_argument("--requests", type=int, help="creates per row (default 1000; check 200)")
    parser.add_argument("--gates", type=int, help="gates at once (default 1000; check 100)")
    parser.add_argument("--wait-quiet", type=float, default=180, help="seconds to wait for it")
    parser.add_argument("--out", type=Path, default=runner.OUT_DIR)
    parser.add_argument("--render", action="store_true", help="the section again from aap.json")
    args = parser.parse_args()
    if args.render:
        publish(json.loads((args.out / "aap.json").read_text()), args.out)
        return
    # Stopped (Ctrl-C, SIGTERM): still stop the servers and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    count = args.requests or (200 if args.check else 1000)
    gate_count = args.gates or (100 if args.check else 1000)
    load = publishing.wait_until_quiet(0 if args.allow_busy else args.wait_quiet, _log)
    _log(f"load average at the start: {load}")
    if (refusal := busy_refusal(load, allow_busy=args.allow_busy)) is not None:
        _log(f"WARNING: {refusal}")
        sys.exit(2)
    # Before any server starts: the web role inherits the limit, and holds a socket a gate too.
    waiters.allow_open_files(gate_count)
    from importlib.metadata import version

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": runner.machine(),
        "sdk": f"agentapprovalprotocol {version('agentapprovalprotocol')}",
        "procfile": {role: runner.procfile_command(role) for role in ("web", "worker")},
        "load_at_start": load,
    }
    # Every call counts in Redis, none is refused (by default 600 a minute per credential and
    # 1,200 new requests a minute per environment).
    limits = {
        "WAITPOINTS_RATELIMIT_AAP_CALLS": "1000000000/1m",
        "WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS": "1000000000/1m",
    }
    runner.recreate_database()
    runner.flush_redis()
    try:
        fixtures = json.loads(
            runner.run([sys.executable, "-m", "bench.fixtures"], capture_output=True).stdout
        )
        worker = runner.Role("worker", runner.service_env())
        try:
            port = free_port()
            with runner.web("web", port, **limits):
                url = f"http://127.0.0.1:{port}"
                results["instance"], credential = provision(url)
                _log(f"create latency: {count:,} creates on 1 connection, then on 8")
                results["create"] = [
                    create_latency(url=url, credential=credential, count=count, connections=n)
                    for n in (1, 8)
                ]
            port = free_port()
            with runner.web("web-aap-gates", port, WEB_CONCURRENCY="1", **limits) as one:
                _log(f"{gate_count:,} gates waiting at once on one web process")
                results["gates"] = gates(
                    url=f"http://127.0.0.1:{port}",
                    credential=credential,
                    api_key=fixtures["secret"],
                    count=gate_count,
                    rss_mb=lambda: sum(p["rss_mb"] for p in one.processes()),
                    server_cpu=lambda: throughput.cpu_seconds(one.process.pid),
                )
        finally:
            worker.stop()
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"bench.aap: {error}; see {runner.LOG_DIR}") from error
    finally:
        runner.drop_database()
    results["load_at_end"] = publishing.load_average()
    print(section(results))
    if args.check:
        print(json.dumps({"create": results["create"], "gates": results["gates"]}, indent=1))
        _log("--check: nothing written")
    else:
        publish(results, args.out)
        _log(f"written to {args.out}/README.md and aap.json")
    if not results["gates"]["passed"]:
        _log("MISSED: not every gate was woken within 1 s of its decision")
        sys.exit(1)


if __name__ == "__main__":
    main()
