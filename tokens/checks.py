"""Startup checks for settings that would otherwise fail later and quietly."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils import timezone

from tokens.domain.durations import resolve_timeout, resolve_ttl
from tokens.domain.exceptions import InvalidInput


@register()
def waitpoints_settings_check(app_configs: object, **kwargs: object) -> list:
    problems: list[CheckMessage] = []
    now = timezone.now()
    default = (settings.WAITPOINTS_DEFAULT_TIMEOUT or "").strip()
    if default.lower() not in ("", "none"):
        try:
            resolve_timeout(default, now=now)
        except InvalidInput as error:
            problems.append(Error(error.message, id="tokens.E001"))
    try:
        resolve_ttl(settings.WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL, now=now)
    except InvalidInput as error:
        problems.append(Error(error.message, id="tokens.E002"))
    if not settings.DEBUG and not settings.PUBLIC_BASE_URL:
        problems.append(
            Warning(
                "PUBLIC_BASE_URL is not set: e-mailed links use http://127.0.0.1:8000.",
                id="tokens.W001",
            )
        )
    return problems
