"""Chat channels (Slack today): where approval requests are posted as interactive messages.

The domain calls the four functions below, in its own transactions, at the moments a chat
message must follow: a request is created, a vote is recorded, a reminder or an escalation
falls due, tokens resolve (``tokens.domain.resolution.on_resolved``). Each channel writes
outbox rows only (never a network call here), so a slow or failing chat service delays nothing.

A channel is one module implementing ``Channel``; adding one (Microsoft Teams, with Adaptive
Cards) is one more entry in ``CHANNELS`` plus its outbox handlers and its interactivity surface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tokens.delivery.slack import channel as slack_channel
from tokens.models import Environment, Token


class Channel(Protocol):
    name: str  # the key of a request's own routing (``requested``), e.g. "slack"

    def connected(self, environment: Environment) -> bool:
        """Whether the environment has an enabled connection to this channel."""
        ...

    def request_created(self, token: Token, *, requested: str, now: datetime) -> int:
        """Queue the request's messages (``requested``: a place the request names itself)."""
        ...

    def voted(self, token: Token, *, now: datetime) -> int:
        """Queue updates of the token's messages (the approvals so far)."""
        ...

    def followed_up(
        self, token: Token, *, purpose: str, addresses: Sequence[str], now: datetime
    ) -> int:
        """Queue a reminder or escalation ("reminder" / "escalation") for ``addresses``."""
        ...

    def resolved(self, token_ids: Sequence[str], *, now: datetime) -> int:
        """Queue the final update of every message of these tokens."""
        ...


CHANNELS: tuple[Channel, ...] = (slack_channel.SLACK,)


def connected(environment: Environment, name: str) -> bool:
    return any(channel.connected(environment) for channel in CHANNELS if channel.name == name)


def request_created(token: Token, *, requested: Mapping[str, str], now: datetime) -> int:
    return sum(
        channel.request_created(token, requested=requested.get(channel.name, ""), now=now)
        for channel in CHANNELS
    )


def voted(token: Token, *, now: datetime) -> int:
    return sum(channel.voted(token, now=now) for channel in CHANNELS)


def followed_up(token: Token, *, purpose: str, addresses: Sequence[str], now: datetime) -> int:
    return sum(
        channel.followed_up(token, purpose=purpose, addresses=addresses, now=now)
        for channel in CHANNELS
    )


def resolved(token_ids: Sequence[str], *, now: datetime) -> int:
    return sum(channel.resolved(token_ids, now=now) for channel in CHANNELS)
