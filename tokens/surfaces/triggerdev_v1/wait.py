"""``GET /api/v1/waitpoints/tokens/{id}/wait?timeout=30s``: long-poll until the token resolves.

Answers exactly as retrieve does as soon as the token is resolved (a timeout counts: a token
that passes its ``timeoutAt`` during the wait is answered at ``timeoutAt``), or with the still
WAITING token when the wait ends. Secret key or this token's public access token, as complete,
under the same rate limits as every API call (``authenticate_within_limits``: the same counters,
429 and ``x-ratelimit-*`` headers, which Django's middleware adds elsewhere and this module
itself here).

Under ASGI (the ``web`` role) ``waitpoints_site.asgi`` routes this path straight to
``asgi_wait`` instead of through Django's handler: Django runs the synchronous middleware and
signal receivers of every request on a thread of its own that it keeps until the request ends,
so a thousand waiters would pin a thousand threads. Here a waiter is a coroutine awaiting a
future (``tokens.delivery.waiting``); its few short database reads share a small pool of threads.
The
Django view ``wait_view`` serves the same answer under WSGI and the test client.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import AuthenticationFailed

from tokens.delivery import waiting
from tokens.domain.durations import parse_duration
from tokens.domain.exceptions import TokenError
from tokens.domain.representation import TokenOutputSerializer
from tokens.models import Token
from tokens.persistence import selectors
from tokens.surfaces.common import negotiation, ratelimit
from tokens.surfaces.common.http import base_url
from tokens.surfaces.common.openapi import (
    COMMON_ERRORS,
    EXTENSION,
    RATE_LIMIT_HEADERS,
    TOKENS_TAG,
    described,
    errors,
    token_id_parameter,
)
from tokens.surfaces.triggerdev_v1.authentication import (
    ApiKeyAuthentication,
    RateLimited,
    authenticate_within_limits,
    check_write_scope,
)
from tokens.surfaces.triggerdev_v1.schema import (
    WAIT_TIMEOUT_PARAMETER,
    WaitpointTokenDetailSerializer,
)

logger = logging.getLogger(__name__)

WAIT_PATH = re.compile(r"^/api/v1/waitpoints/tokens/(?P<token_id>[^/]+)/wait$")
TIMEOUT_HELP = "a duration such as 30s or 1m, or a number of seconds, at most 60s"
# Headers Django's middleware would add to an API response.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _error(message: str, status: int, **headers: str) -> Answer:
    return Answer(status, {"error": message}, dict(headers))


def parse_wait_timeout(value: str | None) -> float:
    """Seconds to wait: ``WAITPOINTS_WAIT_DEFAULT_SECONDS`` when absent; TokenError if bad."""
    maximum = settings.WAITPOINTS_WAIT_MAX_SECONDS
    if value is None:
        return float(settings.WAITPOINTS_WAIT_DEFAULT_SECONDS)
    text = value.strip()
    seconds: float | None = None
    if re.fullmatch(r"\d{1,6}(\.\d{1,3})?", text):
        seconds = float(text)
    elif (duration := parse_duration(text)) is not None:
        seconds = duration.total_seconds()
    if seconds is None:
        raise TokenError(f"Invalid timeout {value[:100]!r}: expected {TIMEOUT_HELP}.")
    if seconds > maximum:
        raise TokenError(f"Invalid timeout {value[:100]!r}: the longest wait is {maximum}s.")
    return seconds


def _authorize(header: str, token_param: str, address: str, limits: dict[str, str]) -> Token:
    """Same rules as complete: a secret key of the token's environment, or a public access
    token whose scopes cover this token; and the same rate limits as every API call. Where the
    caller's key stands goes into ``limits`` (the ``x-ratelimit-*`` headers of the answer)."""
    principal, decision = authenticate_within_limits(
        header, address, allow_public_access_token=True
    )
    if decision is not None:
        limits.update(decision.headers())
    check_write_scope(principal, token_param)  # complete's 403, before the lookup as there
    return selectors.token_get_for_environment(
        environment=principal.environment, token_id=token_param
    )


def _read(token: Token, base: str) -> tuple[Token, dict[str, Any]]:
    fresh = selectors.token_get_for_environment(
        environment=token.environment, token_id=token.friendly_id
    )
    fresh.environment = token.environment  # the callback URL needs it; spare the query
    return fresh, _render(fresh, base)


def _render(token: Token, base: str) -> dict[str, Any]:
    """Retrieve's JSON; no database access (the environment is already loaded)."""
    serializer = TokenOutputSerializer(now=timezone.now(), base=base, detail=True)
    return serializer.to_representation(token)


async def wait_answer(
    request: HttpRequest,
    token_param: str,
    *,
    run_db: waiting.RunDb = waiting.run_db,
    disconnected: Callable[[], Awaitable[None]] | None = None,
) -> Answer | None:
    """The response to one wait request; None when the client went away first
    (``disconnected()`` returns when it does)."""
    try:
        request.get_host()
        timeout = parse_wait_timeout(request.GET.get("timeout"))
        base = base_url(request)
    except DisallowedHost:
        return _error("Invalid Host header", 400)
    except TokenError as error:
        return _error(error.message, error.http_status)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    address = ratelimit.client_ip(request)
    limits: dict[str, str] = {}  # x-ratelimit-*, as the middleware adds to other API answers
    try:
        # One trip to the database threads for the counters and the credential: neither the
        # counter store (Redis, or the database on the embedded default) nor the database is
        # ever asked from the event loop.
        token = await run_db(lambda: _authorize(header, token_param, address, limits))
    except RateLimited as refused:
        return Answer(429, {"error": str(refused)}, refused.decision.headers())
    except AuthenticationFailed as error:
        return _error(str(error.detail), 401, **{"WWW-Authenticate": 'Bearer realm="api"'})
    except TokenError as error:
        denied = _error(error.message, error.http_status, **limits)
        denied.body.update(getattr(error, "wire_fields", {}))
        return denied
    answer = await _wait(token, base, timeout, run_db=run_db, disconnected=disconnected)
    if answer is not None:
        answer.headers.update(limits)
    return answer


async def _wait(
    token: Token,
    base: str,
    timeout: float,
    *,
    run_db: waiting.RunDb,
    disconnected: Callable[[], Awaitable[None]] | None,
) -> Answer | None:
    def reading(fresh: Token, body: dict[str, Any]) -> waiting.Reading[dict[str, Any]]:
        final = body["statusDetail"] != Token.Status.WAITING
        return waiting.Reading(body, final=final, deadline_at=fresh.timeout_at)

    async def read() -> waiting.Reading[dict[str, Any]]:
        return reading(*await run_db(partial(_read, token, base)))

    body = await waiting.wait_for_token(
        token.id,
        seconds=timeout,
        read=read,
        from_hub=lambda fresh: reading(fresh, _render(fresh, base)),
        disconnected=disconnected,
    )
    return None if body is None else Answer(200, body, {})


# ------------------------------------------------------------------------------------------------
# Adapters: a bare ASGI handler for the web role, a Django view for WSGI and the test client
# ------------------------------------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


async def asgi_wait(scope: dict[str, Any], receive: Receive, send: Send, token_id: str) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        answer: Answer | None = _error("Method not allowed", 405, Allow="GET")
    else:
        request = ASGIRequest(scope, io.BytesIO())
        try:
            answer = await wait_answer(
                request, token_id, disconnected=lambda: waiting.until_disconnect(receive)
            )
        except Exception:
            logger.exception("unhandled error on %s", scope["path"])
            answer = _error("Internal Server Error", 500)
    if answer is None:
        return
    payload = json.dumps(answer.body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **SECURITY_HEADERS, **answer.headers}
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
    body = b"" if scope["method"] == "HEAD" else payload
    await send({"type": "http.response.body", "body": body})


@described(
    authentication_classes=[ApiKeyAuthentication],
    public_access_token=True,
    get=extend_schema(
        operation_id="waitForWaitpointToken",
        summary="Wait for a token to resolve (long poll)",
        description=(
            "Answers as retrieve does as soon as the token is resolved (a timeout counts), or "
            "with the still `WAITING` token when the wait ends."
        ),
        tags=[TOKENS_TAG],
        parameters=[token_id_parameter("token_id"), WAIT_TIMEOUT_PARAMETER, *RATE_LIMIT_HEADERS],
        responses={
            200: WaitpointTokenDetailSerializer,
            **errors(400, 403, 404, *COMMON_ERRORS),
        },
        extensions={EXTENSION: True},
    ),
)
@negotiation.answers(negotiation.JSON)
def wait_view(request: HttpRequest, token_id: str) -> JsonResponse:
    """The same endpoint through Django (WSGI, the test client); it holds a thread per waiter."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"error": "Method not allowed"}, status=405)
        response["Allow"] = "GET"
        return response

    answer = waiting.on_its_own_loop(lambda run_db: wait_answer(request, token_id, run_db=run_db))
    assert answer is not None  # noqa: S101 - no disconnect signal here
    response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response
