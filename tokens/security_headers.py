"""Content-Security-Policy and Permissions-Policy on every response.

A small middleware rather than django-csp: the policy is one static string (no nonces, no
per-view policies, no report endpoint), because no page has inline script or style; both sit
in settings. Django 6.0 brings a built-in CSP middleware; this one can give way to it then.
Responses that already carry a policy (set by a view) keep it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


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
