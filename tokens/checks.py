"""Startup checks for settings that would otherwise fail later and quietly."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils import timezone

from tokens.delivery import aap as aap_delivery
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
    if not aap_delivery.attempt_limit_ok():
        problems.append(
            Warning(
                "WEBHOOKS_TOTAL_TIMEOUT is over 10 s: AAP receiver verification and "
                "request.resolved attempts must end within 10 s (the protocol's bound).",
                id="tokens.W002",
            )
        )
    if settings.WAITPOINTS_AAP_APPROVAL_VALID_SECONDS < 1:
        problems.append(
            Error(
                "WAITPOINTS_AAP_APPROVAL_VALID_SECONDS must be at least 1: an AAP approval's "
                "expires_at must be later than its decided_at.",
                id="tokens.E003",
            )
        )
    return problems
