"""JSON or a page? Decided once, here, from the route a request resolves to.

* A DRF view, a view routed under the root where the APIs are mounted (``API_ROOT``), or a
  plain view marked ``@answers(JSON)``, answers JSON (errors included: 404, 405, 413, 500, an
  outage).
* A view marked ``@answers(people_or_json)`` (the confirmation page behind callback URLs and
  personal links) is a page when a person opens or submits it (GET, HEAD, or a form post) and
  JSON otherwise (a program POSTing JSON to the callback URL).
* Every other view (dashboard, admin, login) is a page.
* A path that resolves to no view answers JSON under ``API_ROOT``, so that an unknown API URL
  gets ``{"error": "Not found"}``, and a page elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest
from django.urls import Resolver404, ResolverMatch, resolve
from rest_framework.views import APIView

API_ROOT = "/api/"  # where waitpoints_site/urls.py mounts the API surfaces
PAGE = "page"
JSON = "json"

Rule = Callable[[HttpRequest], str]
V = TypeVar("V", bound=Callable[..., Any])


def answers(rule: str | Rule) -> Callable[[V], V]:
    """Mark a plain view: ``JSON``, ``PAGE`` or a rule deciding per request."""

    def mark(view: V) -> V:
        view.negotiation = rule  # type: ignore[attr-defined]
        return view

    return mark


def people_or_json(request: HttpRequest) -> str:
    """A page for a person (opening the link, or posting its form), JSON for programs."""
    if request.method in ("GET", "HEAD"):
        return PAGE
    form = request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
    return PAGE if form else JSON


def _match(request: HttpRequest) -> ResolverMatch | None:
    """The route the request resolves to (None: no route matches)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
    return match


def kind(request: HttpRequest) -> str:
    """``JSON`` or ``PAGE`` for this request (its errors included)."""
    match = _match(request)
    if match is None:
        return JSON if request.path.startswith(API_ROOT) else PAGE
    rule = getattr(match.func, "negotiation", None)
    if rule is not None:
        return rule(request) if callable(rule) else rule
    view_class = getattr(match.func, "cls", None)
    if isinstance(view_class, type) and issubclass(view_class, APIView):
        return JSON
    return JSON if f"/{match.route}".startswith(API_ROOT) else PAGE


def is_api_call(request: HttpRequest) -> bool:
    """A call to an API proper: a DRF view routed under ``API_ROOT``. Programs call these with a
    bearer credential; no session, CSRF cookie, message or static file is involved, so the
    middleware that serves pages skips them (``middleware.for_pages``). Decided once a request."""
    decided: bool | None = request.__dict__.get("_waitpoints_api_call")
    if decided is None:
        match = _match(request) if request.path.startswith(API_ROOT) else None
        if match is not None:
            # Kept, so that the handler (waitpoints_site.wsgi.Handler) does not resolve again.
            request.resolver_match = match
        view_class = getattr(match.func, "cls", None) if match is not None else None
        decided = isinstance(view_class, type) and issubclass(view_class, APIView)
        request.__dict__["_waitpoints_api_call"] = decided
    return decided


def wants_json(request: HttpRequest) -> bool:
    return kind(request) == JSON


def is_confirmation_page(request: HttpRequest) -> bool:
    """A person on a link's confirmation page (the way back after an error is the link)."""
    match = _match(request)
    rule = getattr(match.func, "negotiation", None) if match else None
    return rule is people_or_json and kind(request) == PAGE
