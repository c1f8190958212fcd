"""One place that turns every API failure into ``{"error": …}`` JSON (never an HTML page)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from tokens.domain.exceptions import TokenError
from tokens.surfaces.common.middleware import OUTAGE_MESSAGE, outage_response

logger = logging.getLogger(__name__)


def _flatten(detail: Any, path: str = "") -> list[dict[str, object]]:
    if isinstance(detail, dict):
        issues: list[dict[str, object]] = []
        for key, value in detail.items():
            issues += _flatten(value, f"{path}.{key}" if path else str(key))
        return issues
    if isinstance(detail, list):
        issues = []
        for value in detail:
            issues += _flatten(value, path)
        return issues
    return [{"path": path, "message": str(detail)}]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    headers: dict[str, str] = {}
    outage = outage_response(context["request"], exc)
    if outage is not None:  # the database is down or hanging: 503, not 500
        response = Response(
            {"error": OUTAGE_MESSAGE}, status=503, headers={"Retry-After": outage["Retry-After"]}
        )
        response._has_been_logged = True  # type: ignore[attr-defined]  # once a minute
        return response
    if isinstance(exc, TokenError):
        body: dict[str, object] = {"error": exc.message}
        body.update(getattr(exc, "wire_fields", {}))  # e.g. the 403's code, param and type
        if exc.details:
            body["details"] = exc.details
        return Response(body, status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response({"error": "Request body too large"}, status=413)
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        return Response({"error": "Validation error", "details": details}, status=400)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = str(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "Invalid or Missing API key"
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return Response({"error": message}, status=401, headers=headers)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response({"error": "Method not allowed"}, status=405)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return Response({"error": "Not found"}, status=404)
    if isinstance(exc, exceptions.APIException):
        return Response({"error": str(exc.detail)}, status=exc.status_code)
    logger.exception("unhandled API error", exc_info=exc)
    return Response({"error": "Internal Server Error"}, status=500)


def json_error(message: str, status: int, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)
