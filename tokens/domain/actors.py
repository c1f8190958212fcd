"""Who acts: recorded on every audit event. Surfaces build one from their request
(``tokens.surfaces.common.http.actor_from_request``); the worker and the sweep act as
``Actor.system()``."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tokens.models import ApiKey, TokenEvent


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel and with which credential."""

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
