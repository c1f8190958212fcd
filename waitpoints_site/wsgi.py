"""Django's WSGI handler: for WSGI servers, and for ordinary requests of the web role (served on
a thread pool inside the ASGI server: waitpoints_site/threadpool.py)."""

from __future__ import annotations

import os
from typing import Any

import django
from django.core.handlers.wsgi import WSGIHandler
from django.urls import ResolverMatch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")


class Handler(WSGIHandler):
    """Resolves a request's route once: the middleware that asks which view a request is for
    (``negotiation.is_api_call``) may have resolved it already, and keeps what it found."""

    def resolve_request(self, request: Any) -> ResolverMatch:
        found = getattr(request, "resolver_match", None)
        if isinstance(found, ResolverMatch) and not hasattr(request, "urlconf"):
            return found
        match: ResolverMatch = super().resolve_request(request)
        return match


def get_application() -> Handler:
    django.setup(set_prefix=False)  # as django.core.wsgi.get_wsgi_application
    return Handler()


application = get_application()
