"""``GET /api/aap/v1/requests/{id}?wait=30s``: the long poll, capped at 30 s.

As the v1 API's wait (``tokens.surfaces.triggerdev_v1.wait``, which says why): under ASGI
(the ``web`` role) ``waitpoints_site.asgi`` routes it here before Django, so a waiter is a
coroutine awaiting the wait hub (``tokens.delivery.waiting``), woken by the resolution's
NOTIFY, not a thread; its few short database reads share the hub's small pool of threads.
``read_view`` serves the same answer through Django (WSGI, the test client).
"""

from __future__ import annotations

import io
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils import timezone

from tokens.delivery import waiting
from tokens.domain.aap import credentials, inputs, representation
from tokens.domain.aap import requests as aap_requests
from tokens.domain.aap.errors import AapError
from tokens.models import AapRequest, Token
from tokens.surfaces.aap import answers
from tokens.surfaces.common import ratelimit

logger = logging.getLogger(__name__)

PATH = re.compile(r"^/api/aap/v1/requests/(?P<request_id>[^/]+)$")
MAX_WAIT = 30.0
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def parse_wait(value: str | None) -> float:
    """Seconds to hold the answer: 0 without ``wait``; capped at 30 s; 400 when malformed."""
    if value is None:
        return 0.0
    return min(inputs.duration(value, name="wait").total_seconds(), MAX_WAIT)


def _authorized(header: str, address: str, request_id: str) -> AapRequest:
    caller = answers.authenticate(header, address)
    instance = credentials.as_instance(caller)
    return aap_requests.request_get(instance=instance, request_id=request_id)


# Request id as the caller wrote it → its token's id, for the requests read here lately.
_token_of: OrderedDict[str, str] = OrderedDict()
REMEMBERED = 20_000


def _remember(request_id: str, token_id: str) -> str:
    _token_of[request_id] = token_id
    if len(_token_of) > REMEMBERED:
        _token_of.popitem(last=False)
    return token_id


def _render(request: AapRequest) -> dict[str, Any]:
    return representation.request_wire(request, request.token, timezone.now())


async def read_answer(
    *,
    header: str,
    address: str,
    request_id: str,
    wait: str | None,
    run_db: waiting.RunDb = waiting.run_db,
    disconnected: Callable[[], Awaitable[None]] | None = None,
) -> answers.Answer | None:
    """The answer to one read (None when the client went away first).

    The first read of a request authorises the caller and learns the request's token (one
    trip to the database threads), then waits. A request's token never changes, so the
    process remembers it: the SDK's re-polls subscribe first and authorise and read in one
    trip, and a wake-up uses the row the hub read for all waiters (no trip at all)."""
    request: AapRequest | None = None
    try:
        seconds = parse_wait(wait)
        token_id = _token_of.get(request_id)
        if token_id is None:
            request = await run_db(lambda: _authorized(header, address, request_id))
            token_id = _remember(request_id, request.token_id)
    except Exception as exception:  # noqa: BLE001 - every failure is a spec error
        return answers.failure(exception)

    def reading(current: AapRequest) -> waiting.Reading[dict[str, Any]]:
        body = _render(current)
        final = body["status"] != representation.PENDING
        return waiting.Reading(body, final=final, deadline_at=current.token.timeout_at)

    def read() -> waiting.Reading[dict[str, Any]]:
        # After subscribing: the caller's first read authorises it too, later ones re-read.
        nonlocal request
        if request is None:
            request = _authorized(header, address, request_id)
            if request.token_id != token_id:  # pragma: no cover - a token never changes
                raise RuntimeError("an AAP request's token changed")
            return reading(request)
        return reading(aap_requests.request_reread(request))

    def from_hub(token: Token) -> waiting.Reading[dict[str, Any]]:
        # The hub read the resolved token once for all its waiters; the request's own fields
        # never change, so this waiter needs no read of its own.
        assert request is not None  # noqa: S101 - a wake-up follows this waiter's first read
        request.token = token
        return reading(request)

    try:
        body = await waiting.wait_for_token(
            token_id,
            seconds=seconds,
            read=lambda: run_db(read),
            from_hub=from_hub,
            disconnected=disconnected,
        )
    except Exception as exception:  # noqa: BLE001
        return answers.failure(exception)
    return None if body is None else answers.Answer(200, body)


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


async def asgi_read(scope: dict[str, Any], receive: Receive, send: Send, request_id: str) -> None:
    """A read with ``wait`` under ASGI, without Django's thread per request."""
    request = ASGIRequest(scope, io.BytesIO())
    try:
        answer = await read_answer(
            header=request.META.get("HTTP_AUTHORIZATION", ""),
            address=ratelimit.client_ip(request),
            request_id=request_id,
            wait=request.GET.get("wait"),
            disconnected=lambda: waiting.until_disconnect(receive),
        )
    except Exception as exception:  # noqa: BLE001
        answer = answers.failure(exception)
    if answer is None:
        return
    status, payload, headers = answers.rendered(answer)
    headers = {**SECURITY_HEADERS, **headers}
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def is_aap(scope: Mapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith("/api/aap/")


def refusal(status: int, message: str) -> tuple[int, bytes, dict[str, str]]:
    """A refusal made before Django (body too large or too slow, URI too long) in the spec's
    shape: 400 ``invalid_request`` (the spec has no 408, 413 or 414)."""
    code = {408: "body_timeout", 413: "body_too_large", 414: "uri_too_long"}.get(status, "invalid")
    status, payload, headers = answers.rendered(
        answers.from_error(AapError(message + ".", status=400, code=code))
    )
    headers.pop("Content-Type", None)
    return status, payload, headers


def wants_asgi(scope: Mapping[str, Any]) -> str | None:
    """The request id when this ASGI request is a read with ``wait`` (else Django serves it)."""
    if scope.get("method") != "GET" or b"wait=" not in scope.get("query_string", b""):
        return None
    match = PATH.match(scope.get("path", ""))
    return match["request_id"] if match else None


def read_view(request: HttpRequest, request_id: str) -> answers.Answer:
    """The same read through Django; with ``wait`` it holds this thread (WSGI, tests)."""
    answer = waiting.on_its_own_loop(
        lambda run_db: read_answer(
            header=request.META.get("HTTP_AUTHORIZATION", ""),
            address=ratelimit.client_ip(request),
            request_id=request_id,
            wait=request.GET.get("wait"),
            run_db=run_db,
        )
    )
    if answer is None:  # pragma: no cover - no disconnect signal here
        raise AapError("The client went away.", status=400)
    return answer
