"""Webhook events: one outbox message per resolved token and subscribed endpoint, written in
the transaction that resolves the token (``domain.resolution.on_resolved``), so events exist
exactly when the resolutions do, and nothing is lost while Redis or the worker is down."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import keys, links
from tokens.domain.representation import TokenOutputSerializer
from tokens.models import OutboxMessage, Token, WebhookEndpoint, iso

Event = WebhookEndpoint.Event
ALL_EVENTS: list[str] = list(Event.values)
EVENT_FOR_STATUS: dict[str, str] = {
    Token.Status.COMPLETED: Event.COMPLETED,
    Token.Status.TIMED_OUT: Event.TIMED_OUT,
    Token.Status.CANCELLED: Event.CANCELLED,
}


def event_body(*, event_type: str, token: Token, now: datetime) -> str:
    """``{"type", "timestamp", "data"}`` with the token exactly as retrieve renders it."""
    rendering = TokenOutputSerializer(now=now, base=links.public_base_url(), detail=True)
    data = rendering.to_representation(token)
    event = {"type": event_type, "timestamp": iso(now), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def enqueue_for_resolution(
    *, token_ids: Sequence[str], status: str, now: datetime | None = None
) -> list[OutboxMessage]:
    """One outbox message per resolved token and enabled endpoint subscribed to its event.

    Called by ``resolution.on_resolved`` inside the transaction that resolved the tokens, so
    events exist exactly when the resolutions do. The body is rendered now and stored as text:
    every retry sends the same bytes under the same ``webhook-id``.
    """
    event_type = EVENT_FOR_STATUS.get(status)
    if event_type is None or not token_ids:
        return []
    now = now or timezone.now()
    resolved = Token.objects.filter(pk__in=list(token_ids))
    # One query when nobody listens (the common case for a sweep batch). Events are filtered
    # here rather than in SQL: JSON containment is not available on SQLite.
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            enabled=True, environment_id__in=resolved.values("environment_id")
        ).order_by("id")
        if event_type in endpoint.events
    ]
    if not endpoints:
        return []
    by_environment: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in endpoints:
        by_environment.setdefault(endpoint.environment_id, []).append(endpoint)
    tokens = resolved.filter(environment_id__in=by_environment).select_related("environment")
    messages = [
        OutboxMessage(
            kind=OutboxMessage.Kind.WEBHOOK,
            token=token,
            payload={
                "endpoint": endpoint.pk,
                "webhookId": "msg_" + keys.generate_token_id(),
                "type": event_type,
                "body": body,
            },
            created_at=now,
            next_attempt_at=now,
        )
        for token in tokens.order_by("id")
        for body in [event_body(event_type=event_type, token=token, now=now)]
        for endpoint in by_environment[token.environment_id]
    ]
    return outbox.enqueue_many(messages)
