"""A real HTTP receiver on 127.0.0.1 (a port from WAITPOINTS_TEST_PORTS), in a thread, and an
independent Standard Webhooks verifier written from the specification (not the library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next status in ``statuses`` (then ``default``); "hang"
    holds the request until the receiver stops; ("redirect", url) answers 302 to url."""

    port: int = 0
    statuses: list[object] = field(default_factory=list)
    default: object = 200
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.received) >= count, timeout=timeout)
        assert ok, f"expected {count} requests, got {len(self.received)}"
        return list(self.received)

    def _next(self) -> object:
        with self.changed:
            return self.statuses.pop(0) if self.statuses else self.default


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            behaviour = receiver._next()
            with receiver.changed:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                receiver.changed.notify_all()
            if behaviour == "hang":
                receiver.release.wait(60)
                return
            if isinstance(behaviour, tuple):
                self.send_response(302)
                self.send_header("Location", behaviour[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert isinstance(behaviour, int)
            answer = b'{"ok":true}' if behaviour < 300 else b"boom"
            self.send_response(behaviour)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _ports() -> range:
    first, _, last = os.environ.get("WAITPOINTS_TEST_PORTS", "8040-8059").partition("-")
    return range(int(first), int(last or first) + 1)


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], *, from_top: bool = False
) -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on the first free port of WAITPOINTS_TEST_PORTS (the last, ``from_top``),
    serving on a daemon thread until the block ends."""
    server = None
    for port in reversed(_ports()) if from_top else _ports():
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
        break
    assert server is not None, "no free port in WAITPOINTS_TEST_PORTS"
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def receiving(**kwargs: object) -> Iterator[Receiver]:
    receiver = Receiver(**kwargs)  # type: ignore[arg-type]
    with serving(_handler(receiver)) as server:
        receiver.port = server.server_address[1]
        try:
            yield receiver
        finally:
            receiver.release.set()


def verify_independently(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks, by hand: HMAC-SHA256 keyed with base64-decoded secret (after
    ``whsec_``) over ``{id}.{timestamp}.{body}``, base64, among ``v1,<sig>`` entries."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [
        entry.split(",", 1)[1]
        for entry in headers["webhook-signature"].split(" ")
        if entry.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, signature) for signature in given)
