"""What every AAP answer shares: the spec's error shape, ``X-Request-ID`` on every response,
authentication within rate limits, and the guard that turns any failure into a spec error
(never an HTML page or a bare 500)."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from tokens.domain.aap import credentials
from tokens.domain.aap.errors import TYPES, AapError
from tokens.domain.exceptions import TokenError
from tokens.surfaces.common import negotiation, ratelimit
from tokens.surfaces.common.middleware import is_outage

logger = logging.getLogger("tokens.surfaces.aap")


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def error_body(error: AapError, request_id: str) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "type": error.kind,
        "code": error.code,
        "message": error.message,
        "request_id": request_id,
    }
    if error.param:
        inner["param"] = error.param
    return {"error": inner}


def from_error(error: AapError, **headers: str) -> Answer:
    return Answer(error.http_status, {"_error": error}, dict(headers))


def rendered(answer: Answer) -> tuple[int, bytes, dict[str, str]]:
    """Status, body bytes and headers, with this exchange's ``X-Request-ID``."""
    request_id = str(uuid.uuid4())
    headers = {**answer.headers, "X-Request-ID": request_id}
    if answer.body is None:
        return answer.status, b"", headers
    body = answer.body
    if "_error" in body:
        body = error_body(body["_error"], request_id)
    headers["Content-Type"] = "application/json"
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return answer.status, payload, headers


def response(answer: Answer) -> HttpResponse:
    status, payload, headers = rendered(answer)
    out = HttpResponse(payload, status=status, content_type=headers.pop("Content-Type", None))
    for name, value in headers.items():
        out[name] = value
    if not payload:
        del out["Content-Type"]
    return out


def failure(exception: BaseException) -> Answer:
    """Any exception as a spec error: ours as they are, the token domain's by status, a
    database outage as 503 ``dependency``, anything else 500 ``internal`` (logged)."""
    if isinstance(exception, AapError):
        headers = {}
        if exception.http_status == 429 and exception.param:
            headers["Retry-After"] = exception.param
            exception.param = ""
        return from_error(exception, **headers)
    if isinstance(exception, TokenError):
        status = exception.http_status if exception.http_status in TYPES else 400
        return from_error(AapError(exception.message, status=status, code=TYPES[status]))
    if isinstance(exception, DatabaseError) and is_outage(exception):
        error = AapError("The provider is temporarily unavailable.", status=503, code="unavailable")
        return from_error(error, **{"Retry-After": "5"})
    logger.exception("unhandled error in the AAP surface", exc_info=exception)
    return from_error(
        AapError("The provider could not complete the operation.", status=500, code="internal")
    )


View = Callable[..., Answer]


def aap_view(view: View) -> Callable[..., HttpResponse]:
    """A Django view answering an ``Answer``, whatever happens inside it."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            answer = view(request, *args, **kwargs)
        except Exception as exception:  # noqa: BLE001 - every failure is a spec error
            answer = failure(exception)
        return response(answer)

    return negotiation.answers(negotiation.JSON)(csrf_exempt(wrapped))


def rate_limited(decision: ratelimit.Decision, what: str) -> AapError:
    error = AapError(
        f"Too many {what}; retry in {decision.retry_after} s.", status=429, code="rate_limited"
    )
    error.param = str(decision.retry_after)  # carried to the Retry-After header by ``failure``
    return error


def authenticate(header: str, address: str) -> credentials.Caller:
    """The caller, within limits. As everywhere in the service (docs/security.md), the
    credential is checked first and a valid one is held only to its own budget; only a refused
    one counts against its client address (a missing header is not counted), and once the
    address is over that limit its refused credentials answer 429 instead of 401."""
    try:
        caller = credentials.authenticate(header)
    except AapError:
        if header.strip():
            refused = ratelimit.hit(ratelimit.API_KEY_FAILURES, address)
            if refused is not None and not refused.allowed:
                raise rate_limited(refused, "failed credentials from your address") from None
        raise
    if caller.instance is not None:
        scope, subject, what = ratelimit.AAP_CALLS, f"i:{caller.instance.pk}", "requests"
    else:
        assert caller.provisioner is not None  # noqa: S101
        scope, subject, what = ratelimit.AAP_PROVISIONING, f"p:{caller.provisioner.pk}", "calls"
    decision = ratelimit.hit(scope, subject)
    if decision is not None and not decision.allowed:
        raise rate_limited(decision, f"{what} for this credential")
    return caller
