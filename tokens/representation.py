"""A token as the v1 API renders it (retrieve, list, webhook payloads): one place, no HTTP.

camelCase, optional fields omitted (never null), dates ISO-8601 UTC with ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from tokens import keys
from tokens.models import Token, iso

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def configured_base_url() -> str:
    """The public base URL where no request is at hand (worker, e-mails, webhooks)."""
    return settings.PUBLIC_BASE_URL or DEFAULT_BASE_URL


def callback_url(token: Token, *, base: str) -> str:
    digest = keys.callback_hash(
        callback_secret=token.environment.callback_secret, internal_id=token.id
    )
    path = reverse("token-callback", kwargs={"token_id": token.friendly_id, "digest": digest})
    return base + path


def v1_status(status: str) -> str:
    """The SDK accepts only three statuses: a cancelled token reads as TIMED_OUT."""
    return Token.Status.TIMED_OUT.value if status == Token.Status.CANCELLED else status


def token_representation(
    token: Token, *, now: datetime, base: str, detail: bool = True
) -> dict[str, Any]:
    """The token as list items (``detail=False``) and retrieve (``detail=True``) show it."""
    state = token.effective(now)
    cancelled = state.status == Token.Status.CANCELLED
    data: dict[str, Any] = {
        "id": token.friendly_id,
        "url": callback_url(token, base=base),
        "status": v1_status(state.status),
        "statusDetail": state.status,
    }
    if state.completed_at:
        data["completedAt"] = iso(state.completed_at)
    if token.timeout_at:
        data["timeoutAt"] = iso(token.timeout_at)
        data["completedAfter"] = iso(token.timeout_at)
    if token.idempotency_key:
        data["idempotencyKey"] = token.idempotency_key
        if token.idempotency_key_expires_at:
            data["idempotencyKeyExpiresAt"] = iso(token.idempotency_key_expires_at)
    data["tags"] = list(token.tags)
    data["createdAt"] = iso(token.created_at)
    if cancelled and token.cancelled_at:
        data["cancelledAt"] = iso(token.cancelled_at)
    if detail:
        if state.output is not None:
            data["output"] = state.output
        data["outputType"] = state.output_type
        data["outputIsError"] = state.output_is_error
    return data
