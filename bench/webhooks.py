"""Webhook delivery latency: from a completion's response to its event reaching a receiver."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _call(port: int, secret: str, method: str, path: str, body: object) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - 127.0.0.1
        return json.loads(reply.read())


def measure(*, port: int, receiver_port: int, secret: str, count: int) -> dict[str, Any]:
    """Register an endpoint on a local receiver, complete ``count`` tokens at 20/s and time each
    event's arrival after the completion's response (one clock: this process's)."""
    arrived: dict[str, float] = {}
    every = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            token_id = json.loads(body)["data"]["id"]
            arrived.setdefault(token_id, time.monotonic())
            self.send_response(204)
            self.end_headers()
            if len(arrived) >= count:
                every.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tokens = "/api/v1/waitpoints/tokens"
        _call(
            port,
            secret,
            "POST",
            "/api/v1/webhooks",
            {"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["waitpoint.completed"]},
        )
        ids = [_call(port, secret, "POST", tokens, {"timeout": "1h"})["id"] for _ in range(count)]
        completed: dict[str, float] = {}
        for token_id in ids:
            _call(port, secret, "POST", f"{tokens}/{token_id}/complete", {"data": {"ok": True}})
            completed[token_id] = time.monotonic()
            time.sleep(0.05)
        every.wait(timeout=60)
    finally:
        server.shutdown()
    lags = sorted(arrived[i] - completed[i] for i in completed if i in arrived)
    if not lags:
        return {"delivered": 0, "sent": count, "summary": "no event arrived within 60 s"}

    def pct(fraction: float) -> float:
        return round(lags[min(len(lags) - 1, int(fraction * len(lags)))] * 1000, 1)

    result: dict[str, Any] = {"sent": count, "delivered": len(lags)}
    result.update(p50_ms=pct(0.5), p99_ms=pct(0.99))
    result["max_ms"] = round(lags[-1] * 1000, 1)
    result["summary"] = (
        f"{len(lags)}/{count} delivered; p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
        f"after the completion's response (target p99 ≤ 1 s)"
    )
    return result
