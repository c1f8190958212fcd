"""Page middleware that API calls skip.

Static files, sessions, the logged-in user and messages do nothing for a call to an API
(``negotiation.is_api_call``: a DRF view under /api/, called with a bearer credential) but cost
every one of them: in the profile, most of what the middleware stack took. Each class here is
its Django (or WhiteNoise) middleware for pages and passes API calls straight on, hooks
(``process_view`` and the others) included. They are subclasses, so Django's own checks (the
admin needs sessions, auth and messages) still recognise them.

Only ``settings.MIDDLEWARE`` names this module: importing Django's auth middleware needs the
app registry, which is ready by the time the handler loads its middleware. CSRF stays itself
(exempt views return at once there), where ``check --deploy`` looks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from tokens.surfaces.common import negotiation

_HOOKS = ("process_view", "process_exception", "process_template_response")


def for_pages(middleware: type) -> type:
    """``middleware`` for pages, absent for API calls."""

    def __call__(self: Any, request: HttpRequest) -> HttpResponse:
        if negotiation.is_api_call(request):
            response: HttpResponse = self.get_response(request)
            return response
        return middleware.__call__(self, request)

    def passed_on(hook: str) -> Callable[..., Any]:
        inner = getattr(middleware, hook)

        def method(self: Any, request: HttpRequest, *args: Any) -> Any:
            return None if negotiation.is_api_call(request) else inner(self, request, *args)

        method.__name__ = hook
        return method

    namespace: dict[str, Any] = {"__call__": __call__, "__module__": __name__}
    namespace.update({hook: passed_on(hook) for hook in _HOOKS if hasattr(middleware, hook)})
    return type(f"{middleware.__name__}ForPages", (middleware,), namespace)


WhiteNoiseForPages = for_pages(WhiteNoiseMiddleware)
SessionForPages = for_pages(SessionMiddleware)
CommonForPages = for_pages(CommonMiddleware)
AuthenticationForPages = for_pages(AuthenticationMiddleware)
MessagesForPages = for_pages(MessageMiddleware)
