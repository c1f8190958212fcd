"""Long-poll waiters on one web process: memory per waiter, and wake latency from completion."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Callable
from typing import Any


def allow_open_files(connections: int) -> None:
    """Raise this process's soft limit of open files for ``connections`` sockets at once (and
    the processes it starts after: the web role inherits it), up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * connections + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def http_request(
    port: int, method: str, path: str, secret: str, body: bytes = b""
) -> tuple[int, bytes]:
    """One call on a connection of its own (127.0.0.1): the least a client can add to it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        raw = await reader.read()  # Connection: close: the server ends the response with EOF
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1]) if raw else 0
    return status, raw.partition(b"\r\n\r\n")[2]


async def _run(
    port: int,
    secret: str,
    ids: list[str],
    woken_count: int,
    rss_mb: Callable[[], float],
) -> dict[str, Any]:
    before = rss_mb()
    woke: dict[str, float] = {}

    async def wait(token_id: str) -> None:
        status, _ = await http_request(
            port, "GET", f"/api/v1/waitpoints/tokens/{token_id}/wait?timeout=60s", secret
        )
        if status == 200:
            woke[token_id] = time.monotonic()

    waiters = [asyncio.create_task(wait(token_id)) for token_id in ids]
    # Every request sent, authenticated and parked (a coroutine each, server-side) before the
    # first completion; the first ids opened first, and are the ones completed.
    await asyncio.sleep(10)
    during = rss_mb()
    completed: dict[str, float] = {}
    sample = ids[:woken_count]
    queue = list(sample)

    async def completer() -> None:
        while queue:
            token_id = queue.pop()
            body = json.dumps({"data": {"ok": True}}).encode()
            status, _ = await http_request(
                port, "POST", f"/api/v1/waitpoints/tokens/{token_id}/complete", secret, body
            )
            if status == 200:
                completed[token_id] = time.monotonic()

    await asyncio.gather(*(completer() for _ in range(4)))
    await asyncio.sleep(2)
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    lags = sorted(woke[i] - completed[i] for i in sample if i in woke and i in completed)
    result: dict[str, Any] = {
        "waiters": len(ids),
        "rss_mb_before": round(before, 1),
        "rss_mb_with_waiters": round(during, 1),
        "kb_per_waiter": round((during - before) * 1024 / len(ids), 1),
        "completed": len(completed),
        "woken": len(lags),
    }
    if lags:
        result["wake_p50_ms"] = round(lags[len(lags) // 2] * 1000, 1)
        result["wake_p99_ms"] = round(lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000, 1)
    result["summary"] = (
        f"{len(ids)} waiters on one process: {result['kb_per_waiter']} KB each "
        f"(RSS {result['rss_mb_before']} → {result['rss_mb_with_waiters']} MB); "
        f"{len(lags)}/{len(sample)} woken, p99 {result.get('wake_p99_ms', '—')} ms after the "
        "completion's response (target ≤ 100 ms)"
    )
    return result


def measure(
    *, port: int, secret: str, ids: list[str], woken_count: int, rss_mb: Callable[[], float]
) -> dict[str, Any]:
    """``ids``: WAITING tokens, one waiter each; the first ``woken_count`` get completed."""
    allow_open_files(len(ids))
    return asyncio.run(_run(port, secret, ids, woken_count, rss_mb))
