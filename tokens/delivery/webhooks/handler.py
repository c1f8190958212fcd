"""The outbox handler for webhooks: send one message, signed, and record the attempt.

Each message is one event for one endpoint, with a ``webhook-id`` that stays the same across
retries (receivers drop duplicates by it); every attempt is kept as a ``WebhookDelivery``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from tokens.delivery import http_client, outbox
from tokens.delivery.http_client import Attempt
from tokens.delivery.webhooks.signing import endpoint_secret, signed_headers
from tokens.models import OutboxMessage, WebhookDelivery, WebhookEndpoint

USER_AGENT = "waitpoints-webhooks/1"
# After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the schedule Standard
# Webhooks' reference implementation uses): eight attempts over about 27 hours.
RETRY_DELAYS = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


class WebhookDeliveryFailed(Exception):
    """An attempt failed (the outbox retries the message later)."""


def _retry_after(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt (the outbox stops after MAX_ATTEMPTS)."""
    return RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


def _lane(payload: dict[str, Any]) -> str:
    """One lane per endpoint: its own concurrency cap and circuit breaker (delivery.outbox)."""
    return f"webhook:{payload.get('endpoint', '')}"


@outbox.handler(
    OutboxMessage.Kind.WEBHOOK, max_attempts=MAX_ATTEMPTS, backoff=_retry_after, lane=_lane
)
def deliver_webhook(message: OutboxMessage) -> None:
    """Send one webhook message once and record the attempt; raise to have it retried.

    Called by the outbox worker with no transaction open, so a slow receiver holds no lock;
    each message is one event for one endpoint, sent concurrently with the others.
    """
    payload = message.payload
    endpoint = WebhookEndpoint.objects.filter(pk=payload.get("endpoint")).first()
    if endpoint is None:
        raise outbox.Skip("the webhook endpoint was deleted.")
    if not endpoint.enabled:
        _record_attempt(endpoint, message, Attempt(None, 0, "", "Not sent: endpoint disabled"))
        raise outbox.Skip("the webhook endpoint is disabled.")
    body: str = payload["body"]
    headers = signed_headers(
        secret=endpoint_secret(endpoint),
        webhook_id=payload["webhookId"],
        timestamp=datetime.now(tz=UTC),
        body=body,
    )
    attempt = http_client.post(
        endpoint.url, body=body.encode(), headers=headers, user_agent=USER_AGENT
    )
    # Sent: the record must not be lost to a dropped database connection (it is retried on a
    # fresh one), or the next attempt would be a re-send nobody can see.
    outbox.durable(lambda: _record_attempt(endpoint, message, attempt))
    if not attempt.succeeded:
        raise WebhookDeliveryFailed(attempt.error)


def _record_attempt(
    endpoint: WebhookEndpoint, message: OutboxMessage, attempt: Attempt
) -> WebhookDelivery:
    previous = WebhookDelivery.objects.filter(message=message).count() if message.pk else 0
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        message=message if message.pk else None,
        webhook_id=message.payload["webhookId"],
        event_type=message.payload["type"],
        token_id=message.token_id,
        attempt=previous + 1,
        succeeded=attempt.succeeded,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        response_excerpt=attempt.response_excerpt,
        error=attempt.error,
        created_at=timezone.now(),
    )
