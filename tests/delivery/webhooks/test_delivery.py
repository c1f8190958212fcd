"""Events enqueued with a resolution and delivered to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from tests.delivery.webhooks.receiver import receiving, verify_independently
from tokens.delivery import outbox
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import events as webhook_events
from tokens.delivery.webhooks import handler as webhook_handler
from tokens.delivery.webhooks import signing as webhook_signing
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, WebhookDelivery

pytestmark = pytest.mark.django_db


def endpoint_for(environment, url, **kwargs):
    return webhook_endpoints.webhook_endpoint_create(environment=environment, url=url, **kwargs)


def completed(make_token, **output):
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data=output or {"ok": 1})
    token.refresh_from_db()
    return token


def webhook_messages(token=None):
    messages = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK).order_by("id")
    return list(messages.filter(token=token) if token is not None else messages)


def enqueue(token):
    """The webhook messages the token's resolution enqueued (resolution.on_resolved)."""
    return webhook_messages(token)


def delivery_of(message):
    return WebhookDelivery.objects.filter(message=message).order_by("-attempt").first()


def test_every_resolution_path_enqueues_one_message_per_subscribed_enabled_endpoint(
    environment, other_environment, make_token
):
    everything, _ = endpoint_for(environment, "https://a.example/")
    only_cancel, _ = endpoint_for(environment, "https://b.example/", events=["waitpoint.cancelled"])
    endpoint_for(environment, "https://c.example/", enabled=False)
    endpoint_for(other_environment, "https://d.example/")
    system = actors.Actor.system()
    token = completed(make_token)
    cancelled = make_token()
    lifecycle.token_cancel(token=cancelled, actor=system, reason="no")
    forced = make_token()
    lifecycle.token_force_timeout(token=forced, actor=system)
    swept = make_token(timeout="1s")
    lifecycle.token_expire_due(now=timezone.now() + timezone.timedelta(seconds=5))
    waiting = make_token()
    lifecycle.token_complete(token=token, actor=system, data={"again": True})  # ignored

    sent = {(m.payload["endpoint"], m.token_id, m.payload["type"]) for m in webhook_messages()}
    assert sent == {
        (everything.pk, token.pk, "waitpoint.completed"),
        (everything.pk, cancelled.pk, "waitpoint.cancelled"),
        (only_cancel.pk, cancelled.pk, "waitpoint.cancelled"),
        (everything.pk, forced.pk, "waitpoint.timed_out"),
        (everything.pk, swept.pk, "waitpoint.timed_out"),
    }
    assert len(webhook_messages()) == 5  # the ignored second completion added nothing
    assert len({m.payload["webhookId"] for m in webhook_messages()}) == 5
    assert webhook_messages(waiting) == []
    assert webhook_events.enqueue_for_resolution(token_ids=[waiting.pk], status="WAITING") == []


def test_events_are_written_in_the_resolving_transaction(environment, make_token):
    endpoint_for(environment, "https://a.example/")
    token = make_token()
    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"x": 1})
        assert len(webhook_messages(token)) == 1
        raise RuntimeError("roll the resolution back")
    token.refresh_from_db()
    assert token.status == "WAITING"
    assert webhook_messages(token) == []


def test_the_event_carries_the_token_exactly_as_retrieve_renders_it(
    environment, make_token, api_client
):
    endpoint_for(environment, "https://a.example/")
    token = make_token(timeout="1h", tags=["order:42"], idempotency_key="k")
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"approved": True})
    [message] = enqueue(token)

    event = json.loads(message.payload["body"])
    assert set(event) == {"type", "timestamp", "data"}
    assert event["type"] == "waitpoint.completed"
    assert event["timestamp"].endswith("Z")
    retrieved = api_client.get(f"/api/v1/waitpoints/tokens/{token.friendly_id}")
    assert event["data"] == retrieved.json()
    # Same order of keys too: the body is stored as text, not re-serialised from jsonb.
    assert list(event["data"]) == list(retrieved.json())


def test_timed_out_tokens_raise_timed_out_events(environment, make_token):
    endpoint_for(environment, "https://a.example/", events=["waitpoint.timed_out"])
    token = make_token(timeout="1s")
    lifecycle.token_expire_due(now=timezone.now() + timezone.timedelta(seconds=5))
    [message] = enqueue(token)
    event = json.loads(message.payload["body"])
    assert event["type"] == "waitpoint.timed_out"
    assert event["data"]["status"] == "TIMED_OUT"
    assert event["data"]["outputIsError"] is True


def test_it_delivers_a_signed_event_to_a_real_receiver(environment, make_token):
    with receiving() as receiver:
        endpoint, secret = endpoint_for(environment, receiver.url)
        [message] = enqueue(completed(make_token))
        webhook_handler.deliver_webhook(message)
        [request] = receiver.wait_for(1)
        delivery = delivery_of(message)

    assert request.path == "/hook"
    assert request.body == message.payload["body"].encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == message.payload["webhookId"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 300
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify_independently(secret, request.headers, request.body)
    assert not verify_independently(
        webhook_signing.generate_secret(), request.headers, request.body
    )
    assert not verify_independently(secret, request.headers, request.body + b" ")
    # And the reference implementation agrees.
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "waitpoint.completed"

    assert delivery is not None and delivery.succeeded
    assert delivery.status_code == 200
    assert delivery.response_excerpt == '{"ok":true}'
    assert delivery.latency_ms is not None
    assert delivery.webhook_id == message.payload["webhookId"]
    assert delivery.endpoint == endpoint


def test_it_retries_after_500s_with_the_same_webhook_id_and_body(environment, make_token):
    with receiving(statuses=[500, 503]) as receiver:
        endpoint, secret = endpoint_for(environment, receiver.url)
        [message] = enqueue(completed(make_token))
        for _ in range(2):
            with pytest.raises(webhook_handler.WebhookDeliveryFailed, match="HTTP 5"):
                webhook_handler.deliver_webhook(message)
        webhook_handler.deliver_webhook(message)
        requests = receiver.wait_for(3)

    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    assert all(verify_independently(secret, r.headers, r.body) for r in requests)
    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(a.attempt, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert attempts[0].response_excerpt == "boom"
    assert attempts[0].error == "HTTP 500"


def test_it_does_not_follow_redirects(environment, make_token):
    with receiving() as elsewhere, receiving(default=("redirect", None)) as receiver:
        receiver.default = ("redirect", elsewhere.url)
        endpoint_for(environment, receiver.url)
        [message] = enqueue(completed(make_token))
        with pytest.raises(webhook_handler.WebhookDeliveryFailed, match="Redirect"):
            webhook_handler.deliver_webhook(message)
        receiver.wait_for(1)
    assert elsewhere.received == []
    attempt = WebhookDelivery.objects.get()
    assert attempt.status_code == 302 and attempt.error == "Redirect (302) not followed"


def test_a_hanging_receiver_times_out_within_the_total_limit(environment, make_token, settings):
    settings.WEBHOOKS_TOTAL_TIMEOUT = 1
    with receiving(default="hang") as receiver:
        endpoint_for(environment, receiver.url)
        [message] = enqueue(completed(make_token))
        started = time.monotonic()
        with pytest.raises(webhook_handler.WebhookDeliveryFailed, match="Timed out"):
            webhook_handler.deliver_webhook(message)
        elapsed = time.monotonic() - started
    assert elapsed < 10  # generous: the limit is 1 s, the receiver would hold it for 60
    attempt = WebhookDelivery.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("Timed out")


def test_it_refuses_private_targets_at_delivery_time(
    environment, make_token, settings, monkeypatch
):
    """DNS rebinding: the name looked public when the endpoint was made, now it says 127.0.0.1."""
    with receiving() as receiver:
        endpoint_for(environment, f"http://rebind.example:{receiver.port}/hook")
        [message] = enqueue(completed(make_token))
        settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
        real = socket.getaddrinfo

        def rebinding(host, *args, **kwargs):
            return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        with pytest.raises(webhook_handler.WebhookDeliveryFailed, match="Refused"):
            webhook_handler.deliver_webhook(message)
        assert receiver.received == []
    attempt = WebhookDelivery.objects.get()
    assert "private address" in attempt.error and attempt.status_code is None


def test_it_connects_to_the_address_it_checked(environment, make_token, monkeypatch):
    """One lookup per attempt: the connection goes to that address, the Host header keeps the
    name (so a second, different DNS answer cannot redirect the request)."""
    answers = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        if host == "pinned.example":
            answers.append(host)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    with receiving() as receiver:
        endpoint_for(environment, f"http://pinned.example:{receiver.port}/hook")
        [message] = enqueue(completed(make_token))
        monkeypatch.setattr(socket, "getaddrinfo", counting)
        webhook_handler.deliver_webhook(message)
        [request] = receiver.wait_for(1)
    assert request.headers["host"] == f"pinned.example:{receiver.port}"
    assert answers == ["pinned.example"]


def test_it_skips_deleted_and_disabled_endpoints(environment, make_token):
    with receiving() as receiver:
        kept, _ = endpoint_for(environment, receiver.url)
        gone, _ = endpoint_for(environment, receiver.url)
        token = completed(make_token)
        messages = enqueue(token)
        to_gone = next(m for m in messages if m.payload["endpoint"] == gone.pk)
        to_kept = next(m for m in messages if m.payload["endpoint"] == kept.pk)
        webhook_endpoints.webhook_endpoint_delete(endpoint=gone)
        webhook_endpoints.webhook_endpoint_update(endpoint=kept, enabled=False)
        with pytest.raises(outbox.Skip, match="deleted"):
            webhook_handler.deliver_webhook(to_gone)
        with pytest.raises(outbox.Skip, match="disabled"):
            webhook_handler.deliver_webhook(to_kept)
        assert receiver.received == []
    assert delivery_of(to_kept).error == "Not sent: endpoint disabled"
    assert not OutboxMessage.objects.filter(pk=to_gone.pk).exists()  # dropped with its endpoint
