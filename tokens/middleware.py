"""API paths answer JSON even where Django would render HTML (unknown URLs, crashes)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("tokens.api")


def _is_confirmation_page(request: HttpRequest) -> bool:
    """GET on a callback URL is a page for people (tokens.callback), HTML on purpose."""
    return request.method in ("GET", "HEAD") and "/callback/" in request.path


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
