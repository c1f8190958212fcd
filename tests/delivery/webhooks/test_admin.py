"""Django admin: endpoints through the services, secret shown once, recent deliveries, retry."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import handler as webhook_handler
from tokens.delivery.webhooks import signing as webhook_signing
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
ENDPOINTS = "/admin/tokens/webhookendpoint/"
DELIVERIES = "/admin/tokens/webhookdelivery/"


@pytest.fixture
def support(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    client = Client()
    client.force_login(user)
    return client


def a_failed_event(environment, make_token):
    endpoint, _ = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://a.example/"
    )
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"x": 1})
    [message] = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK, token=token)
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        message=message,
        webhook_id=message.payload["webhookId"],
        event_type="waitpoint.completed",
        token_id=token.pk,
        attempt=1,
        status_code=500,
        latency_ms=12,
        response_excerpt="upstream exploded",
        error="HTTP 500",
        created_at=timezone.now(),
    )
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=webhook_handler.MAX_ATTEMPTS, failed_at=timezone.now()
    )
    return endpoint, message


def test_it_creates_an_endpoint_and_shows_the_secret_once(support, environment):
    response = support.post(
        f"{ENDPOINTS}add/",
        {
            "environment": environment.pk,
            "url": "https://hooks.example.com/in",
            "events": ["waitpoint.completed", "waitpoint.cancelled"],
            "description": "orders",
            "enabled": "on",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    assert response["Cache-Control"].startswith("no-store")
    secret = re.search(rb'value="(whsec_[^"]+)"', response.content).group(1).decode()
    endpoint = WebhookEndpoint.objects.get()
    assert webhook_signing.endpoint_secret(endpoint) == secret
    assert endpoint.events == ["waitpoint.completed", "waitpoint.cancelled"]
    page = support.get(f"{ENDPOINTS}{endpoint.pk}/change/")
    assert secret.encode() not in page.content


def test_it_refuses_a_private_url_with_a_form_error(support, environment, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = support.post(
        f"{ENDPOINTS}add/",
        {
            "environment": environment.pk,
            "url": "http://127.0.0.1/",
            "events": ["waitpoint.completed"],
        },
    )
    assert response.status_code == 200
    assert b"private address" in response.content
    assert not WebhookEndpoint.objects.exists()


def test_it_shows_recent_deliveries_and_retries_now(support, environment, make_token):
    endpoint, message = a_failed_event(environment, make_token)
    page = support.get(f"{ENDPOINTS}{endpoint.pk}/change/")
    assert page.status_code == 200
    assert b"upstream exploded" in page.content
    assert b"HTTP 500" in page.content
    assert b"12 ms" in page.content

    response = support.post(
        ENDPOINTS,
        {"action": "retry_undelivered", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    assert "1 event queued for another attempt." in [str(m) for m in response.context["messages"]]
    message.refresh_from_db()
    assert message.failed_at is None and message.attempts == 0
    assert message.next_attempt_at <= timezone.now()


def test_it_retries_from_the_delivery_list(support, environment, make_token):
    _endpoint, message = a_failed_event(environment, make_token)
    listing = support.get(DELIVERIES)
    assert b"HTTP 500" in listing.content
    delivery = WebhookDelivery.objects.get()
    support.post(DELIVERIES, {"action": "retry_events", "_selected_action": [delivery.pk]})
    message.refresh_from_db()
    assert message.failed_at is None


def test_actions_disable_and_delete_through_the_services(support, environment, make_token):
    endpoint, message = a_failed_event(environment, make_token)
    support.post(ENDPOINTS, {"action": "disable_endpoints", "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    OutboxMessage.objects.filter(pk=message.pk).update(failed_at=None)  # pending again
    support.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"})
    assert not WebhookEndpoint.objects.exists()
    assert not OutboxMessage.objects.filter(pk=message.pk).exists()  # its pending event too
