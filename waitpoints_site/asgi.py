"""The ASGI application the ``web`` role serves (uvicorn, see ``web.py`` and ``server.py``).

One dispatch, by path, before anything else:

* request targets longer than ``MAX_URI_BYTES`` get 414;
* a path in ``ASYNC_ROUTES`` (the long polls) is served by its coroutine on the event loop: a
  waiter costs a coroutine, not a thread (``tokens.surfaces.triggerdev_v1.wait`` says why); so
  is the AAP long poll ``GET /api/aap/v1/requests/{id}?wait=…`` (``tokens.surfaces.aap.wait``,
  chosen by its query as well as its path);
* everything else is an ordinary request: its body is read here first (``read_body``: 413
  before reading a body that announces more than the largest accepted one, 408 and the
  connection closed for a client that does not send its announced body within
  ``WAITPOINTS_BODY_TIMEOUT_SECONDS``), then Django's WSGI handler runs it on a bounded pool of
  threads (``waitpoints_site.threadpool``: one hop a request, no thread per request, no
  async/sync adaptation of the middleware; docs/architecture.md, "Request path").

Adding a long poll (say the AAP's ``GET /api/aap/…/wait``) is one line in ``ASYNC_ROUTES``: a
compiled pattern and an ASGI coroutine ``(scope, receive, send, **groups)`` that answers it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
# Sets Django up (before anything below imports a model).
django_wsgi = importlib.import_module("waitpoints_site.wsgi").application

from django.conf import settings  # noqa: E402 - after Django is set up

from tokens.surfaces.aap import wait as aap_wait  # noqa: E402
from tokens.surfaces.triggerdev_v1 import wait  # noqa: E402

from . import env, server  # noqa: E402
from .threadpool import WsgiPool  # noqa: E402

Receive = wait.Receive
Send = wait.Send
logger = logging.getLogger("waitpoints_site.asgi")

server.install()


@dataclass(frozen=True)
class AsyncRoute:
    """A path served on the event loop: ``handler(scope, receive, send, **match.groupdict())``."""

    pattern: re.Pattern[str]
    handler: Callable[..., Awaitable[None]]


# The long polls. Everything not listed here runs through Django on the thread pool.
ASYNC_ROUTES: tuple[AsyncRoute, ...] = (
    AsyncRoute(wait.WAIT_PATH, wait.asgi_wait),  # GET /api/v1/waitpoints/tokens/{id}/wait
)

ordinary = WsgiPool(django_wsgi, threads=env.web_threads())


async def _json(send: Send, status: int, message: str, scope: dict[str, Any] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if scope is not None and aap_wait.is_aap(scope):
        # The Agent Approval Protocol's own error shape, with its X-Request-ID.
        status, body, extra = aap_wait.refusal(status, message)
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    else:
        body = json.dumps({"error": message}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value)  # the server has already rejected malformed values
    return None


class _TooLarge(Exception):
    pass


async def read_body(scope: dict[str, Any], receive: Receive, send: Send) -> bytes | None:
    """The request's whole body, read within its deadline; None once this has answered
    413 or 408 itself (or the client went away)."""
    length = _content_length(scope)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length is not None and length > limit:
        await _json(send, 413, "Request body too large", scope)
        return None
    if not length and not any(name == b"transfer-encoding" for name, _ in scope["headers"]):
        return b""
    chunks: list[bytes] = []

    async def read_all() -> bool:
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False  # http.disconnect: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return True

    try:
        # A deadline on this task (one timer), not wait_for's task of its own for every body.
        async with asyncio.timeout(settings.WAITPOINTS_BODY_TIMEOUT_SECONDS):
            complete = await read_all()
    except TimeoutError:
        await _json(send, 408, "Request body not received in time", scope)
        return None
    except _TooLarge:
        await _json(send, 413, "Request body too large", scope)
        return None
    return b"".join(chunks) if complete else None


# Longer request targets get 414. (Hypercorn refuses heads over 16 KiB with 431 only when they
# arrive in more than one read, so it cannot be the only limit.)
MAX_URI_BYTES = 8 * 1024


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) > MAX_URI_BYTES:
            await _json(send, 414, f"Request URI too long (at most {MAX_URI_BYTES} bytes)", scope)
            return
        path = scope["path"]
        for route in ASYNC_ROUTES:
            match = route.pattern.match(path)
            if match:
                await route.handler(scope, receive, send, **match.groupdict())
                return
        aap_request_id = aap_wait.wants_asgi(scope)
        if aap_request_id is not None:
            await aap_wait.asgi_read(scope, receive, send, aap_request_id)
            return
        body = await read_body(scope, receive, send)
        if body is None:
            return
        try:
            await ordinary(scope, body, send)
        except Exception:
            # Django answers its own errors; this is the bridge failing. Once the response has
            # started, the server closes the connection.
            logger.exception("unhandled error on %s", path)
            await _json(send, 500, "Internal Server Error", scope)
        return
    if scope["type"] == "lifespan":
        # Nothing to set up or tear down (the wait hub starts with its first waiter).
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1000})
