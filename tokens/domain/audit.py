"""The audit trail's one writer: every transition and every refused attempt, in the caller's
transaction, naming who acted (``tokens.domain.actors.Actor``). Each event joins its token's
hash chain as it is written (``tokens.domain.chain``, ``fast_paths.append_event``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokens.domain import chain
from tokens.domain.actors import Actor
from tokens.models import Token, TokenEvent
from tokens.persistence import fast_paths


def record(token: Token, kind: str, actor: Actor, now: datetime, **detail: Any) -> TokenEvent:
    """Write one audit event (inside the caller's transaction), as the next link of the
    token's chain."""
    event = TokenEvent(**_fields(actor), token=token, kind=kind, detail=detail, created_at=now)
    fast_paths.append_event(event)
    return event


def build(token_id: str, kind: str, actor: Actor, now: datetime, **detail: Any) -> TokenEvent:
    """An unsaved event, for the statements that write it with a transition (creation,
    resolution, the sweep's batches: ``tokens.persistence.fast_paths``)."""
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
        "actor_ref": chain.actor_ref(
            api_key_id=actor.api_key.pk if actor.api_key is not None else None,
            user_id=user.pk if user is not None else None,
        ),
    }
