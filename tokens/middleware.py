"""API paths answer JSON even where Django would render HTML (unknown URLs, crashes); security
headers on every response."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("tokens.api")


def _is_confirmation_page(request: HttpRequest) -> bool:
    """A callback URL opened or submitted by a person (tokens.callback): HTML on purpose,
    including a refused form (e.g. a failed CSRF check), which must read as a page."""
    if "/callback/" not in request.path and "/decide/" not in request.path:
        return False
    return request.method in ("GET", "HEAD") or request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    )


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
            and not _is_confirmation_page(request)
        ):
            messages = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
            message = messages.get(response.status_code, response.reason_phrase or "Error")
            return JsonResponse({"error": message}, status=response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
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
