"""Slack's part in ``tokens.delivery.chat``: where a request goes, and the outbox rows that
post it, update it, reply in its thread. Runs in the caller's transaction; writes rows only.

Routing of a request with approvers, in an environment with an enabled connection:

* each approver by direct message, when the connection says so (their e-mail address is looked
  up in Slack by the worker; someone without an account still gets the e-mail);
* the channel the request names (``slackChannel``); otherwise every channel whose routing rule
  names one of the request's tags; otherwise the connection's default channel, if any.

Each place is one ``SlackMessage`` row, written now with no ``ts``, and one SLACK_POST outbox
row naming it; updates and thread replies name the same row, so they find the ``ts`` the post
recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tokens.delivery import outbox
from tokens.models import (
    Environment,
    OutboxMessage,
    SlackConnection,
    SlackMessage,
    SlackRoute,
    Token,
)

Target = SlackMessage.Target


def connection_for(environment_id: int) -> SlackConnection | None:
    return SlackConnection.objects.filter(environment_id=environment_id, enabled=True).first()


def targets(
    connection: SlackConnection, token: Token, *, requested: str, approvers: Sequence[str]
) -> list[tuple[str, str]]:
    """(kind, target) of every place the request goes, in order, without repeats."""
    places: list[tuple[str, str]] = []
    if connection.direct_messages:
        places += [(Target.DIRECT, address.lower()) for address in approvers]
    if requested:
        channels = [requested]
    else:
        tags = set(token.tags)
        channels = [
            route.channel
            for route in SlackRoute.objects.filter(connection=connection).order_by("id")
            if route.tag in tags
        ]
        if not channels and connection.default_channel:
            channels = [connection.default_channel]
    places += [(Target.CHANNEL, channel) for channel in channels]
    return list(dict.fromkeys(places))


def _rows(kind: str, token: Token, messages: Sequence[SlackMessage], now: datetime, **extra):
    return [
        outbox.message(kind=kind, token=token, payload={"message": row.pk, **extra}, now=now)
        for row in messages
    ]


def post(
    connection: SlackConnection, token: Token, places: Sequence[tuple[str, str]], now: datetime
) -> int:
    """A message row and a SLACK_POST for each place the token has no message in yet."""
    existing = set(SlackMessage.objects.filter(token=token).values_list("target_kind", "target"))
    new = SlackMessage.objects.bulk_create(
        [
            SlackMessage(
                token=token, connection=connection, target_kind=kind, target=target, created_at=now
            )
            for kind, target in places
            if (kind, target) not in existing
        ]
    )
    outbox.enqueue_many(_rows(OutboxMessage.Kind.SLACK_POST, token, new, now))
    return len(new)


class _Slack:
    name = "slack"

    def connected(self, environment: Environment) -> bool:
        return connection_for(environment.pk) is not None

    def request_created(self, token: Token, *, requested: str, now: datetime) -> int:
        if not token.approvers:
            return 0  # nobody could decide from Slack: only named approvers can
        connection = connection_for(token.environment_id)
        if connection is None:
            return 0
        places = targets(connection, token, requested=requested, approvers=token.approvers)
        return post(connection, token, places, now)

    def voted(self, token: Token, *, now: datetime) -> int:
        messages = list(SlackMessage.objects.filter(token=token))
        return len(
            outbox.enqueue_many(_rows(OutboxMessage.Kind.SLACK_UPDATE, token, messages, now))
        )

    def followed_up(
        self, token: Token, *, purpose: str, addresses: Sequence[str], now: datetime
    ) -> int:
        messages = list(SlackMessage.objects.filter(token=token).select_related("connection"))
        if not messages:
            return 0
        wanted = {address.lower() for address in addresses}
        # The same follow-up, should its row be sent twice, is replied once (handlers.reply).
        key = f"{purpose}:{now.isoformat()}"
        replies = [
            row
            for row in messages
            if row.target_kind == Target.CHANNEL or (purpose == "reminder" and row.target in wanted)
        ]
        rows = _rows(
            OutboxMessage.Kind.SLACK_REPLY,
            token,
            replies,
            now,
            purpose=purpose,
            addresses=list(addresses),
            key=key,
        )
        outbox.enqueue_many(rows)
        queued = len(rows)
        connection = messages[0].connection
        if purpose == "escalation" and connection.enabled and connection.direct_messages:
            queued += post(connection, token, [(Target.DIRECT, a.lower()) for a in addresses], now)
        return queued

    def resolved(self, token_ids: Sequence[str], *, now: datetime) -> int:
        messages = list(SlackMessage.objects.filter(token_id__in=list(token_ids)))
        rows = [
            outbox.message(
                kind=OutboxMessage.Kind.SLACK_UPDATE,
                token=row.token_id,
                payload={"message": row.pk},
                now=now,
            )
            for row in messages
        ]
        return len(outbox.enqueue_many(rows))


SLACK = _Slack()


def notice(token: Token, *, channel: str, user: str, text: str, now: datetime) -> None:
    """A note only ``user`` sees in ``channel`` (chat.postEphemeral, from the worker)."""
    payload = {"channel": channel, "user": user, "text": text}
    outbox.enqueue(kind=OutboxMessage.Kind.SLACK_NOTICE, token=token, payload=payload, now=now)
