"""Slow and broken clients against the live web role (uvicorn, waitpoints_site/server.py),
with real sockets.

Issue 9 #1: connections that never finish their request (headers never end, or a body shorter
than its Content-Length) must not keep other clients from being served, and are dropped after a
read timeout. Also: errors the server raises itself (malformed heads) answer JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.live import LiveServer, live_web

UNFINISHED_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SHORT_BODY = (
    b"POST /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
)


def open_slow(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(payload)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Readable means the server answered (408) or closed it: either way it let go."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


@pytest.fixture(scope="module")
def quick_timeouts(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    """The web role with 2-second head and body timeouts, to watch it drop slow clients."""
    with (
        django_db_blocker.unblock(),
        live_web(
            tmp_path_factory.mktemp("web-quick"),
            WEB_HEADER_TIMEOUT="2",
            WAITPOINTS_BODY_TIMEOUT_SECONDS="2",
        ) as server,
    ):
        yield server


def test_200_half_open_connections_do_not_stall_healthz(web: LiveServer, record_property) -> None:
    """Hold 200 unfinished requests (re-opened as soon as the server drops one) for
    WAITPOINTS_SLOW_CLIENT_SECONDS (default 6; the figure in docs/security.md used 60) while
    another client asks /healthz twice a second. Every request must be answered (within a
    generous 10 s: the machine running the suite may be busy); how many within 1 s is the
    figure for docs/security.md."""
    duration = float(os.environ.get("WAITPOINTS_SLOW_CLIENT_SECONDS", "6"))
    payloads = [UNFINISHED_HEAD, SHORT_BODY] * 100
    held = [open_slow(web.port, payload) for payload in payloads]
    answered, within_1s, asked, slowest, reopened = 0, 0, 0, 0.0, 0
    try:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            for n, sock in enumerate(held):
                if closed_by_server(sock):
                    sock.close()
                    held[n] = open_slow(web.port, payloads[n])
                    reopened += 1
            asked += 1
            started = time.monotonic()
            try:
                status = httpx.get(f"{web.url}/healthz", timeout=10).status_code
            except httpx.TimeoutException:
                status = 0
            elapsed = time.monotonic() - started
            answered += status == 200
            within_1s += status == 200 and elapsed <= 1.0
            slowest = max(slowest, elapsed)
            time.sleep(max(0.0, 0.5 - elapsed))
    finally:
        for sock in held:
            sock.close()
    summary = (
        f"200 half-open connections held {duration:.0f} s: /healthz answered "
        f"{within_1s}/{asked} within 1 s, {answered}/{asked} in all (slowest "
        f"{slowest * 1000:.0f} ms; {reopened} dropped by the server and re-opened)"
    )
    print(summary)
    record_property("slow_clients", summary)
    assert answered == asked


def _wait_closed(sock: socket.socket, within: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {within} s; received {received!r}") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


def test_an_unfinished_head_is_dropped_after_the_header_timeout(quick_timeouts) -> None:
    sock = open_slow(quick_timeouts.port, UNFINISHED_HEAD)
    with sock:
        elapsed, received = _wait_closed(sock, within=15)
    assert received == b""
    assert elapsed >= 1.5


def test_a_trickled_head_is_dropped_too(quick_timeouts) -> None:
    """A byte every half second never lets the head complete: the timeout counts from the
    connection, not from the last byte."""
    sock = open_slow(quick_timeouts.port, b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    with sock:
        try:
            for _ in range(40):
                sock.sendall(b"X")
                time.sleep(0.5)
        except OSError:
            pass
        else:
            raise AssertionError("the server kept a trickling head open for 20 s")
    assert time.monotonic() - started < 15


def test_a_short_body_gets_408_json_and_is_dropped(quick_timeouts) -> None:
    sock = open_slow(quick_timeouts.port, SHORT_BODY)
    with sock:
        elapsed, received = _wait_closed(sock, within=15)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": "Request body not received in time"}
    assert elapsed >= 1.5


def raw_exchange(port: int, request: bytes) -> tuple[int, bytes, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, head, json.loads(body)


def test_a_bad_content_length_is_a_json_400(web) -> None:
    status, head, body = raw_exchange(
        web.port,
        b"POST /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: ten\r\n\r\n{}",
    )
    assert status == 400
    assert b"content-type: application/json" in head.lower()
    assert "Content-Length" in body["error"]


def test_an_overlong_uri_is_a_json_414(web) -> None:
    path = "/api/v1/waitpoints/tokens?" + "a" * 9_000
    status, head, body = raw_exchange(
        web.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    )
    assert status == 414
    assert body == {"error": "Request URI too long (at most 8192 bytes)"}


def test_an_overlong_head_is_a_json_431(web) -> None:
    """Past the 16 KiB limit on a request head (here 200 KiB of headers)."""
    headers = "".join(f"X-Filler-{n}: {'b' * 1000}\r\n" for n in range(200))
    status, head, body = raw_exchange(
        web.port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    )
    assert status == 431
    assert body == {"error": "Request line or headers too long"}


def test_an_announced_oversized_body_is_refused_before_it_is_sent(web) -> None:
    status, head, body = raw_exchange(
        web.port,
        b"POST /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 500000000\r\n\r\n",
    )
    assert status == 413
    assert body == {"error": "Request body too large"}


def test_an_endless_header_sent_in_pieces_is_a_json_431(web) -> None:
    """One header line that never ends, 1 KiB a write: refused once the head passes 16 KiB,
    before it is buffered whole (the parser would only see the header at its end)."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 200 * 1024:
                sock.sendall(b"b" * 1024)
                sent += 1024
                time.sleep(0.001)
        except OSError:
            pass  # refused and closed while sending: what the server said is still readable
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body) == {"error": "Request line or headers too long"}


def test_a_silent_connection_is_closed_after_the_read_timeout(
    django_db_setup, django_db_blocker, tmp_path_factory
) -> None:
    """WEB_READ_TIMEOUT closes a connection that sends nothing, whatever its state: here in the
    middle of a body with 30 s still to go before its 408."""
    with (
        django_db_blocker.unblock(),
        live_web(
            tmp_path_factory.mktemp("web-silent"),
            WEB_READ_TIMEOUT="2",
            WAITPOINTS_BODY_TIMEOUT_SECONDS="30",
        ) as server,
    ):
        sock = open_slow(server.port, SHORT_BODY)
        with sock:
            elapsed, received = _wait_closed(sock, within=15)
    assert received == b""  # closed for silence, not answered 408
    assert 1.5 <= elapsed < 10
