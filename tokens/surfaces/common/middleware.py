"""API routes answer JSON even where Django would render HTML (unknown URLs, crashes); a
database outage answers as one: 503 "try again shortly", JSON on the API, a page elsewhere;
security headers on every response."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from tokens.surfaces.common import negotiation

logger = logging.getLogger("tokens.surfaces.triggerdev_v1")
outage_logger = logging.getLogger("tokens.outage")

OUTAGE_MESSAGE = "Service unavailable, try again shortly"
OUTAGE_RETRY_AFTER_SECONDS = 5
_OUTAGE_LOG_INTERVAL = 60.0
_outage_lock = threading.Lock()
_outage_logged_at = -_OUTAGE_LOG_INTERVAL


def is_outage(exception: BaseException | None) -> bool:
    """The database is down, unreachable, hanging past connect_timeout or statement_timeout."""
    return isinstance(exception, (OperationalError, InterfaceError))


def _log_outage(exception: BaseException) -> None:
    # One warning a minute per process, not a traceback per request while the database is away.
    global _outage_logged_at
    with _outage_lock:
        now = time.monotonic()
        if now - _outage_logged_at < _OUTAGE_LOG_INTERVAL:
            return
        _outage_logged_at = now
    outage_logger.warning(
        "database unavailable, answering 503: %s: %s",
        type(exception).__name__,
        str(exception).strip().splitlines()[0] if str(exception).strip() else "",
    )


def outage_response(request: HttpRequest, exception: BaseException | None) -> HttpResponse | None:
    """503 for a database outage (JSON on API paths, a page elsewhere); None for anything else."""
    if exception is None or not is_outage(exception):
        return None
    _log_outage(exception)
    response: HttpResponse
    if negotiation.wants_json(request):
        response = JsonResponse({"error": OUTAGE_MESSAGE}, status=503)
    else:
        # No request context: the page must render without the database (no session, no user).
        response = HttpResponse(render_to_string("outage.html"), status=503)
        response["Cache-Control"] = "no-store"
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # type: ignore[attr-defined]  # logged above, once a minute
    return response


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
            and negotiation.wants_json(request)
        ):
            messages = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
            message = messages.get(response.status_code, response.reason_phrase or "Error")
            return JsonResponse({"error": message}, status=response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        outage = outage_response(request, exception)
        if outage is not None:
            return outage
        if not negotiation.wants_json(request):
            return None
        logger.exception("unhandled error on %s", request.path, exc_info=exception)
        return JsonResponse({"error": "Internal Server Error"}, status=500)


# Content-Security-Policy and Permissions-Policy on every response. A small middleware rather than
# django-csp: the policy is one static string (no nonces, no per-view policies, no report
# endpoint), because no page has inline script or style; both policies are settings. Django 6.0
# brings a built-in CSP middleware; this one can give way to it then. A response that already
# carries a policy (set by a view) keeps it.
class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        permissions = settings.PERMISSIONS_POLICY
        if permissions and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = permissions
        return response
