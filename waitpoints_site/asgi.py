"""The ASGI application the ``web`` role serves (hypercorn, see ``hypercorn_config.py``).

Two things sit in front of Django's own handler:

* ``GET /api/v1/waitpoints/tokens/{id}/wait`` goes straight to
  ``tokens.surfaces.triggerdev_v1.wait.asgi_wait``,
  a coroutine per waiter instead of a thread per waiter (see that module for why); so does the
  AAP long poll ``GET /api/aap/v1/requests/{id}?wait=…`` (``tokens.surfaces.aap.wait``);
* request targets longer than ``MAX_URI_BYTES`` get 414;
* ``guard_request_body`` answers 413 before reading a body that announces more than the
  largest accepted body, and 408 to a client that does not send its announced body within
  ``WAITPOINTS_BODY_TIMEOUT_SECONDS``, then closes the connection: Django's ASGI handler reads
  the whole body before routing, and a slow client must not hold a request open for long.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
os.environ["WAITPOINTS_SERVER"] = "asgi"  # read by settings: no persistent DB connections
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402 - after Django is set up

from tokens.surfaces.aap import wait as aap_wait  # noqa: E402
from tokens.surfaces.triggerdev_v1.wait import WAIT_PATH, Receive, Send, asgi_wait  # noqa: E402

from . import server  # noqa: E402

server.install()


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


async def guard_request_body(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    length = _content_length(scope)
    if length is not None and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        await _json(send, 413, "Request body too large", scope)
        return
    messages: list[dict[str, Any]] = []
    if length or any(name == b"transfer-encoding" for name, _ in scope.get("headers", ())):

        async def read_all() -> None:
            size = 0
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    return
                size += len(message.get("body", b""))
                if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                    raise ValueError("too large")
                if not message.get("more_body", False):
                    return

        try:
            await asyncio.wait_for(read_all(), settings.WAITPOINTS_BODY_TIMEOUT_SECONDS)
        except TimeoutError:
            await _json(send, 408, "Request body not received in time", scope)
            return
        except ValueError:
            await _json(send, 413, "Request body too large", scope)
            return

    async def replay() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return await receive()

    await django_application(scope, replay, send)


# Longer request targets get 414. (Hypercorn refuses heads over 16 KiB with 431 only when they
# arrive in more than one read, so it cannot be the only limit.)
MAX_URI_BYTES = 8 * 1024


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) > MAX_URI_BYTES:
            await _json(send, 414, f"Request URI too long (at most {MAX_URI_BYTES} bytes)", scope)
            return
        match = WAIT_PATH.match(scope["path"])
        if match:
            await asgi_wait(scope, receive, send, match["token_id"])
            return
        aap_request_id = aap_wait.wants_asgi(scope)
        if aap_request_id is not None:
            await aap_wait.asgi_read(scope, receive, send, aap_request_id)
            return
        await guard_request_body(scope, receive, send)
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
    await django_application(scope, receive, send)
