"""Login forms (dashboard and admin) that limit failed attempts per client address.

Over the limit the form refuses before checking the password, so guessing stops even for the
right one, and says so on the page; the response is a 429 with Retry-After
(tokens.surfaces.common.ratelimit.RateLimitHeadersMiddleware).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView

from tokens.surfaces.common import ratelimit


class _LimitedLogin:
    request: Any

    def _limited_clean(self, clean: Any) -> dict[str, Any]:
        request = self.request
        subject = ratelimit.client_ip(request) if request is not None else "unknown"
        decision = ratelimit.peek(ratelimit.LOGIN, subject)
        if decision is not None and not decision.allowed:
            if request is not None:
                ratelimit.remember(request, decision)
            minutes = max(1, round(decision.retry_after / 60))
            raise forms.ValidationError(
                "Too many failed login attempts from your address. "
                f"Try again in about {minutes} minute{'s' if minutes != 1 else ''}.",
                code="rate_limited",
            )
        try:
            return clean()
        except forms.ValidationError:
            ratelimit.hit(ratelimit.LOGIN, subject)
            raise


class RateLimitedAuthenticationForm(_LimitedLogin, AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        return self._limited_clean(super().clean)


class RateLimitedAdminAuthenticationForm(_LimitedLogin, AdminAuthenticationForm):
    def clean(self) -> dict[str, Any]:
        return self._limited_clean(super().clean)


login_view = LoginView.as_view(authentication_form=RateLimitedAuthenticationForm)
