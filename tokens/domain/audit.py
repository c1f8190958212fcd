"""Who acts (``Actor``) and the audit trail's one writer. Core: knows nothing of HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tokens.models import ApiKey, Token, TokenEvent


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel and with which credential; recorded on every event.

    Adapters build it from their request (``tokens.surfaces.common.http.actor_from_request``); the worker and
    the sweep act as ``Actor.system()``.
    """

    channel: str
    credential: str = ""
    api_key: ApiKey | None = None
    user: AbstractBaseUser | AnonymousUser | None = None
    ip: str | None = None
    user_agent: str = ""
    # Who decided through a personal link (the address it was signed for).
    email: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(channel=TokenEvent.Channel.SYSTEM, credential=TokenEvent.Credential.SYSTEM)


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
