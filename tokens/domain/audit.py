"""The audit trail's one writer: every transition and every refused attempt, in the caller's
transaction, naming who acted (``tokens.domain.actors.Actor``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokens.domain.actors import Actor
from tokens.models import Token, TokenEvent


def record(token: Token, kind: str, actor: Actor, now: datetime, **detail: Any) -> TokenEvent:
    """Write one audit event (inside the caller's transaction)."""
    return TokenEvent.objects.create(
        **_fields(actor), token=token, kind=kind, detail=detail, created_at=now
    )


def build(token_id: str, kind: str, actor: Actor, now: datetime, **detail: Any) -> TokenEvent:
    """An unsaved event, for ``bulk_create`` (the sweep writes one per token it times out)."""
    return TokenEvent(**_fields(actor), token_id=token_id, kind=kind, detail=detail, created_at=now)


def _fields(actor: Actor) -> dict[str, Any]:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return {
        "channel": actor.channel,
        "credential": actor.credential,
        "api_key": actor.api_key,
        "user": user,
        "ip": actor.ip,
        "user_agent": (actor.user_agent or "")[:512],
        "email": actor.email,
    }
