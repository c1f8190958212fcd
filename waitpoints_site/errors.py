"""The error pages people see: 400, 403, 404, 500 and a failed CSRF check, in the product's look
(templates/errors/). API paths keep answering JSON, as every other API error does.

The 500 page renders without a request context (no session, no user, no database: the error may
be the database), and falls back to a few lines of plain HTML should even that template fail."""

from __future__ import annotations

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from tokens.surfaces.common import negotiation
from tokens.surfaces.common.middleware import outage_response

logger = logging.getLogger("django.request")

# A last resort that needs nothing: no template engine, no static files, no database.
BARE_500 = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Something went wrong · waitpoints</title></head><body><main>"
    "<h1>Something went wrong on our side</h1>"
    "<p>Nothing you did caused this. Try again in a moment.</p>"
    '<p><a href="/">Go to the dashboard</a></p></main></body></html>'
)


def _is_api(request: HttpRequest) -> bool:
    return negotiation.wants_json(request)


def _page(request: HttpRequest, template: str, status: int) -> HttpResponse:
    response = render(request, template, status=status)
    response["Cache-Control"] = "no-store"
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Bad request"}, status=400)
    return _page(request, "400.html", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Forbidden"}, status=403)
    return _page(request, "403.html", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Not found"}, status=404)
    return _page(request, "404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Also reached for a database outage raised outside a view (a session saved by middleware).
    outage = outage_response(request, sys.exc_info()[1])
    if outage is not None:
        return outage
    if _is_api(request):
        return JsonResponse({"error": "Internal Server Error"}, status=500)
    body: str
    try:
        # No request: nothing here may touch the session, the user or the database.
        body = render_to_string("500.html")
    except Exception:
        logger.exception("the 500 page failed to render; answering the bare page")
        body = BARE_500
    response = HttpResponse(body, status=500)
    response["Cache-Control"] = "no-store"
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a form posted without a valid CSRF token (it was open too long,
    cookies are blocked, or it came from another site). The reason goes to the log, not the page."""
    logger.warning("CSRF check failed on %s: %s", request.path, reason)
    # The approval link's confirmation page lives under /api/ but is a page for people, who
    # may have no account: the way back is the link itself (a GET shows the request again).
    confirmation = negotiation.is_confirmation_page(request)
    if _is_api(request):
        return JsonResponse({"error": "Forbidden: CSRF check failed"}, status=403)
    context = {"retry_url": request.path if confirmation else ""}
    response = render(request, "403_csrf.html", context, status=403)
    response["Cache-Control"] = "no-store"
    return response
