"""Webhook endpoints: the writes (create, update, rotate the secret, delete, retry now).

Adapters (API, dashboard, admin) call these and nothing else; reads are in
``tokens.persistence.selectors``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tokens.delivery import http_client, outbox
from tokens.delivery.webhooks.events import ALL_EVENTS
from tokens.delivery.webhooks.signing import generate_secret
from tokens.domain import keys
from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_WEBHOOK_DESCRIPTION_LENGTH, MAX_WEBHOOKS_PER_ENVIRONMENT
from tokens.models import Environment, OutboxMessage, WebhookEndpoint
from tokens.persistence import selectors


def clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise InvalidInput(f"Invalid events: expected an array of {', '.join(ALL_EVENTS)}.")
    unknown = [e for e in events if e not in ALL_EVENTS]
    if unknown:
        raise InvalidInput(
            f"Invalid events: unknown event {unknown[0]!r}; use {', '.join(ALL_EVENTS)}."
        )
    if not events:
        raise InvalidInput("Invalid events: subscribe to at least one event.")
    return [e for e in ALL_EVENTS if e in events]  # canonical order, no duplicates


def clean_description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > MAX_WEBHOOK_DESCRIPTION_LENGTH:
        raise InvalidInput(
            "Invalid description: expected a string of at most "
            f"{MAX_WEBHOOK_DESCRIPTION_LENGTH} characters."
        )
    return description.strip()


def clean_enabled(enabled: Any) -> bool:
    if not isinstance(enabled, bool):
        raise InvalidInput("Invalid enabled: expected true or false.")
    return enabled


UNSET: Any = object()


@transaction.atomic
def webhook_endpoint_create(
    *,
    environment: Environment,
    url: Any,
    events: Any = UNSET,
    description: Any = "",
    enabled: Any = True,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Nothing → an endpoint; its signing secret is returned once and kept only encrypted."""
    now = now or timezone.now()
    values = {
        "url": http_client.clean_target_url(url),
        "events": ALL_EVENTS if events is UNSET else clean_events(events),
        "description": clean_description(description),
        "enabled": clean_enabled(enabled),
    }
    # Lock the environment row so concurrent creates cannot both pass the count.
    Environment.objects.select_for_update().filter(pk=environment.pk).first()
    if environment.webhook_endpoints.count() >= MAX_WEBHOOKS_PER_ENVIRONMENT:
        raise InvalidInput(
            f"Too many webhook endpoints: at most {MAX_WEBHOOKS_PER_ENVIRONMENT} per environment."
        )
    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        environment=environment,
        encrypted_secret=keys.encrypt(secret),
        created_at=now,
        updated_at=now,
        **values,
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: Any = UNSET,
    events: Any = UNSET,
    description: Any = UNSET,
    enabled: Any = UNSET,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change the given fields; the others stay as they are."""
    changes: dict[str, Any] = {}
    if url is not UNSET:
        changes["url"] = http_client.clean_target_url(url)
    if events is not UNSET:
        changes["events"] = clean_events(events)
    if description is not UNSET:
        changes["description"] = clean_description(description)
    if enabled is not UNSET:
        changes["enabled"] = clean_enabled(enabled)
    changes["updated_at"] = now or timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**changes)
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> str:
    """A new signing secret, returned once; messages not yet delivered are signed with it."""
    secret = generate_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        encrypted_secret=keys.encrypt(secret), updated_at=now or timezone.now()
    )
    endpoint.refresh_from_db()
    return secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery history; its undelivered events are dropped."""
    OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.WEBHOOK,
        payload__endpoint=endpoint.pk,
        delivered_at__isnull=True,
        failed_at__isnull=True,
    ).delete()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


def webhook_endpoint_retry_undelivered(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> int:
    """Every failed or pending event of this endpoint → due now (support staff: "retry now")."""
    count = 0
    for message in selectors.webhook_messages_undelivered(endpoint=endpoint):
        count += outbox.retry(message=message, now=now)
    return count
