"""Output shapes of the v1 API: camelCase, optional fields omitted (never null), ISO dates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from tokens import representation
from tokens.models import Token
from tokens.representation import callback_url, v1_status

__all__ = ["TokenOutputSerializer", "base_url", "callback_url", "transition_body", "v1_status"]


def base_url(request: HttpRequest | None) -> str:
    if settings.PUBLIC_BASE_URL or request is None:
        return settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    return request.build_absolute_uri("/").rstrip("/")


def transition_body(token: Token, *, applied: bool, now: datetime) -> dict[str, Any]:
    """The answer of complete, callback and cancel: upstream's ``{"success": true}`` plus ours."""
    status = token.effective(now).status
    return {
        "success": True,
        "applied": applied,
        "status": v1_status(status),
        "statusDetail": status,
    }


class TokenOutputSerializer:
    """Renders a token for list items (``detail=False``) and retrieve (``detail=True``)."""

    def __init__(self, *, now: datetime, base: str, detail: bool) -> None:
        self.now, self.base, self.detail = now, base, detail

    def to_representation(self, token: Token) -> dict[str, Any]:
        return representation.token_representation(
            token, now=self.now, base=self.base, detail=self.detail
        )
