"""Ordinary requests: Django's WSGI handler on a bounded pool of threads, inside the ASGI server.

Why not Django's own ASGI handler: for a synchronous view it runs the request on a thread of its
own (one per request, ended with it, so no connection can persist), and every synchronous
middleware is adapted to the event loop and back, several thread hops a request. Measured, that
path cost about half of what a request took, whatever the server (issue 18). Here a request is
one hop: the event loop has already read the whole body (``waitpoints_site.asgi``, under its
deadline), a pool thread runs the WSGI handler, collects the response and closes it (Django's
``request_finished``), and the loop sends it. A pool thread never waits for a client, so slow
clients cost sockets, not threads; and its database connection persists across requests, as
under any threaded WSGI server.

Every response is collected whole before it is sent: the service streams nothing (static files
come from WhiteNoise, a few hundred KB at most), so there is no chunk-by-chunk path to get
wrong.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Send = Callable[[Mapping[str, Any]], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ_for(scope: Mapping[str, Any], body: bytes, script_name: str = "") -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP ``scope`` whose body has been read; headers
    translated as Django's ASGIRequest translates them (names with ``_`` dropped, so that
    ``X-Forwarded_For`` cannot pass for ``X-Forwarded-For``; repeats joined)."""
    path = scope["path"]
    root = scope.get("root_path", "") or script_name
    if root and path.startswith(root):
        path = path[len(root) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"].upper(),
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        # WSGI strings are bytes as latin-1: Django reads them back with .encode("iso-8859-1").
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    server = scope.get("server")
    environ["SERVER_NAME"], environ["SERVER_PORT"] = (
        (str(server[0]), str(server[1])) if server else ("unknown", "0")
    )
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = environ["REMOTE_HOST"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        if "_" in name:
            continue
        value = raw_value.decode("latin-1")
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    if body or "CONTENT_LENGTH" in environ:
        # The body as read (a chunked one has no Content-Length; WSGI would read it as empty).
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _run(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """On a pool thread: the whole exchange, ending with the response's ``close()`` (Django's
    ``request_finished``: this thread's database connection is checked here, on its own
    thread)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: chunks.append(data)  # the legacy write() callable

    chunks: list[bytes] = []
    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    body = b"".join(chunks)
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    if not any(name == b"content-length" for name, _ in raw):
        raw.append((b"content-length", str(len(body)).encode()))
    return int(status[:3]), raw, body


class WsgiPool:
    """Runs a WSGI application for ASGI requests on at most ``threads`` threads."""

    def __init__(self, app: WsgiApp, *, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="web")

    async def __call__(self, scope: Mapping[str, Any], body: bytes, send: Send) -> None:
        loop = asyncio.get_running_loop()
        environ = environ_for(scope, body)
        status, headers, content = await loop.run_in_executor(
            self._executor, _run, self.app, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        # A HEAD answer keeps its Content-Length and sends no body (as a WSGI server does).
        payload = b"" if scope["method"] == "HEAD" else content
        await send({"type": "http.response.body", "body": payload})
