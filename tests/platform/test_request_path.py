"""The web role's request path (waitpoints_site/threadpool.py): an ASGI request becomes the WSGI
environ Django would have built from it, runs on the bounded pool and comes back whole."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, web  # noqa: F401, F811 - the live web role fixture
from waitpoints_site.threadpool import WsgiPool, environ_for


def scope(**overrides: Any) -> dict[str, Any]:
    base = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/waitpoints/tokens",
        "raw_path": b"/api/v1/waitpoints/tokens",
        "query_string": b"page[size]=2",
        "root_path": "",
        "headers": [(b"host", b"example.test")],
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
    }
    return {**base, **overrides}


def test_it_translates_the_scope_as_django_would() -> None:
    headers = [
        (b"host", b"example.test"),
        (b"content-type", b"application/json"),
        (b"x-forwarded-for", b"1.1.1.1"),
        (b"x-forwarded_for", b"6.6.6.6"),  # spoofing attempt: dropped, as Django's ASGI does
        (b"accept", b"text/html"),
        (b"accept", b"application/json"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ]
    environ = environ_for(
        scope(method="post", path="/tokens/caf\u00e9", headers=headers), b'{"x": 1}'
    )
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"].encode("latin-1").decode() == "/tokens/caf\u00e9"
    assert environ["QUERY_STRING"] == "page[size]=2"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "8"  # the body as read, even without the header
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert (environ["REMOTE_ADDR"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "10.1.2.3",
        "127.0.0.1",
        "8000",
    )
    assert environ["wsgi.input"].read() == b'{"x": 1}'
    assert environ_for(scope(), b"").get("CONTENT_LENGTH") is None


def run(pool: WsgiPool, request: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(pool(request, body, send))
    return sent


def test_it_runs_on_the_pool_closes_the_response_there_and_answers_whole() -> None:
    seen: list[str] = []

    class Body:
        def __iter__(self):
            seen.append(threading.current_thread().name)
            yield b"hello, "
            yield b"world"

        def close(self) -> None:  # Django's request_finished: on the request's own thread
            seen.append(threading.current_thread().name)

    def app(environ, start_response):
        seen.append(threading.current_thread().name)
        start_response("201 Created", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")])
        return Body()

    pool = WsgiPool(app, threads=2)
    start, body = run(pool, scope())
    assert start["status"] == 201
    assert (b"set-cookie", b"a=1") in start["headers"]
    assert (b"content-length", b"12") in start["headers"]
    assert body["body"] == b"hello, world"
    assert len(set(seen)) == 1 and seen[0].startswith("web")
    # HEAD: the same headers (Content-Length included), no body.
    start, body = run(pool, scope(method="HEAD"))
    assert (b"content-length", b"12") in start["headers"]
    assert body["body"] == b""


def test_it_never_runs_more_requests_at_once_than_it_has_threads() -> None:
    running, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def app(environ, start_response):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(0.05)
        with lock:
            running -= 1
        start_response("200 OK", [])
        return [b"ok"]

    pool = WsgiPool(app, threads=3)

    async def many() -> None:
        async def send(message: Any) -> None:
            pass

        await asyncio.gather(*(pool(scope(), b"", send) for _ in range(12)))

    asyncio.run(many())
    assert most == 3


@pytest.mark.django_db(transaction=True)
def test_the_live_web_role_answers_head_and_chunked_bodies(
    web: LiveServer,  # noqa: F811 - the fixture imported above
    secret_key: str,
) -> None:
    head = httpx.head(f"{web.url}/healthz", timeout=10)
    assert head.status_code in (200, 503) and head.content == b""
    assert int(head.headers["content-length"]) > 0

    def chunks():
        yield b'{"timeout": "1h", '
        yield b'"tags": ["chunked"]}'

    created = httpx.post(  # no Content-Length: Transfer-Encoding: chunked
        f"{web.url}/api/v1/waitpoints/tokens",
        content=chunks(),
        headers={"Authorization": f"Bearer {secret_key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    token_id = created.json()["id"]
    read = httpx.get(
        f"{web.url}/api/v1/waitpoints/tokens/{token_id}",
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=10,
    )
    assert read.json()["tags"] == ["chunked"]
    missing = httpx.get(f"{web.url}/api/v1/nothing/here", timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"error": "Not found"})
