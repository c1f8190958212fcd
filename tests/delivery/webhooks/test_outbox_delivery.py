"""Webhooks through the real outbox (claim, send with no transaction open, settle): retries
with back-off and a stable webhook-id, giving up, "retry now", and a hanging receiver that
delays nobody else. Senders run on their own threads and connections, so rows are committed."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.delivery.webhooks.receiver import receiving, verify_independently
from tokens.delivery import outbox
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import handler as webhook_handler
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, Token, WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)


def deliver_then_disconnect() -> None:
    try:
        outbox.deliver_due()
    finally:
        connection.close()  # this thread's own connection


def complete(make_token, **data):
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data=data or {"ok": 1})
    return token


def test_it_retries_after_500s_with_backoff_and_the_same_webhook_id(environment, make_token):
    with receiving(statuses=[500, 502]) as receiver:
        _endpoint, secret = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=receiver.url
        )
        complete(make_token)
        [message] = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK)
        t0 = timezone.now()

        assert outbox.deliver_due(now=t0) == 0
        message.refresh_from_db()
        assert message.attempts == 1 and message.delivered_at is None
        assert message.next_attempt_at == t0 + webhook_handler.RETRY_DELAYS[0]
        assert "HTTP 500" in message.last_error

        assert outbox.deliver_due(now=t0 + timedelta(seconds=1)) == 0  # not due yet
        assert len(receiver.received) == 1

        t1 = t0 + webhook_handler.RETRY_DELAYS[0]
        assert outbox.deliver_due(now=t1) == 0  # 502
        message.refresh_from_db()
        assert message.next_attempt_at == t1 + webhook_handler.RETRY_DELAYS[1]  # exponential-ish

        assert outbox.deliver_due(now=t1 + webhook_handler.RETRY_DELAYS[1]) == 1
        requests = receiver.wait_for(3)

    message.refresh_from_db()
    assert message.delivered_at is not None and message.attempts == 3
    assert {r.headers["webhook-id"] for r in requests} == {message.payload["webhookId"]}
    assert len({r.body for r in requests}) == 1
    assert all(verify_independently(secret, r.headers, r.body) for r in requests)
    outcomes = WebhookDelivery.objects.filter(message=message).order_by("attempt")
    assert [(d.attempt, d.status_code, d.succeeded) for d in outcomes] == [
        (1, 500, False),
        (2, 502, False),
        (3, 200, True),
    ]


def test_it_gives_up_after_about_a_day_and_support_can_retry_now(environment, make_token):
    total = sum(webhook_handler.RETRY_DELAYS, timedelta())
    assert timedelta(hours=20) < total < timedelta(hours=36)  # "about a day"
    with receiving(default=503) as receiver:
        endpoint, _ = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=receiver.url
        )
        complete(make_token)
        [message] = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK)
        moment = timezone.now()
        for _ in range(webhook_handler.MAX_ATTEMPTS + 2):
            outbox.deliver_due(now=moment)
            message.refresh_from_db()
            moment = message.next_attempt_at
        assert message.failed_at is not None
        assert message.attempts == webhook_handler.MAX_ATTEMPTS
        assert len(receiver.received) == webhook_handler.MAX_ATTEMPTS
        assert message.failed_at - message.created_at >= total

        receiver.default = 200
        assert webhook_endpoints.webhook_endpoint_retry_undelivered(endpoint=endpoint) == 1
        assert outbox.deliver_due() == 1
        receiver.wait_for(webhook_handler.MAX_ATTEMPTS + 1)
    message.refresh_from_db()
    assert message.delivered_at is not None
    last = WebhookDelivery.objects.filter(message=message).order_by("-attempt").first()
    assert last.succeeded and last.attempt == webhook_handler.MAX_ATTEMPTS + 1
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_hanging_receiver_delays_neither_other_endpoints_nor_token_operations(
    environment, make_token, settings
):
    settings.WEBHOOKS_TOTAL_TIMEOUT = 60  # the hang ends when the test releases it
    with receiving(default="hang") as stuck, receiving() as healthy:
        webhook_endpoints.webhook_endpoint_create(environment=environment, url=stuck.url)
        webhook_endpoints.webhook_endpoint_create(environment=environment, url=healthy.url)
        complete(make_token)
        assert OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK).count() == 2

        worker = threading.Thread(target=deliver_then_disconnect)
        worker.start()
        stuck.wait_for(1)  # the stuck endpoint holds its request open …
        healthy.wait_for(1)  # … while the other one gets its event
        assert worker.is_alive() and not stuck.release.is_set()

        # Meanwhile tokens resolve as usual: nothing waits for the delivery.
        started = time.monotonic()
        other = complete(make_token, later=True)
        assert time.monotonic() - started < 5
        assert Token.objects.get(pk=other.pk).status == Token.Status.COMPLETED
        stuck.release.set()
        worker.join(30)
        assert not worker.is_alive()


def test_each_message_is_settled_when_its_own_send_ends(
    environment, make_token, settings, monkeypatch
):
    """A fast delivery is recorded while a batch-mate still hangs on its endpoint, not when the
    whole batch has been sent."""
    settings.WEBHOOKS_TOTAL_TIMEOUT = 60  # the hang ends when the test releases it
    settled: list[int] = []
    healthy_settled = threading.Event()
    record = outbox._record

    def recording_settle(row, error, now):  # the real settlement, then note whose it was
        delivered = record(row, error, now)
        transaction.on_commit(lambda: settled.append(row.payload["endpoint"]))
        if row.payload["endpoint"] == fast_endpoint.pk:
            transaction.on_commit(healthy_settled.set)
        return delivered

    monkeypatch.setattr(outbox, "_record", recording_settle)
    with receiving(default="hang") as stuck, receiving() as healthy:
        slow_endpoint, _ = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=stuck.url
        )
        fast_endpoint, _ = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=healthy.url
        )
        complete(make_token)
        messages = {m.payload["endpoint"]: m for m in OutboxMessage.objects.all()}
        assert set(messages) == {slow_endpoint.pk, fast_endpoint.pk}

        worker = threading.Thread(target=deliver_then_disconnect)
        worker.start()
        try:
            stuck.wait_for(1)  # one batch: the stuck endpoint now holds its request open
            assert healthy_settled.wait(10), "the fast delivery waited for its batch-mate"
            assert not stuck.release.is_set() and worker.is_alive()
            fast, slow = messages[fast_endpoint.pk], messages[slow_endpoint.pk]
            fast.refresh_from_db()
            slow.refresh_from_db()
            assert fast.delivered_at is not None and fast.claimed_until is None
            assert WebhookDelivery.objects.get(message=fast).succeeded
            assert slow.delivered_at is None and slow.claimed_until is not None  # in flight
        finally:
            stuck.release.set()
            worker.join(30)
    assert not worker.is_alive()
    assert settled == [fast_endpoint.pk, slow_endpoint.pk]
