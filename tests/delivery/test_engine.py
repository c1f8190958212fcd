"""The delivery engine's properties, fast and deterministic: per-endpoint and per-tenant caps,
slots reserved for the service's own mail, leases renewed while alive and lapsing when not,
settles that survive a dropped database connection, and a breaker per endpoint."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from tests.delivery.webhooks.receiver import receiving
from tests.live import test_database_url
from tokens.delivery import outbox
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, WebhookDelivery

SYSTEM = actors.Actor.system()


def webhook_rows(token, endpoint_ids: list[str], each: int = 1) -> list[OutboxMessage]:
    now = timezone.now()
    rows = [
        outbox.message(
            kind=OutboxMessage.Kind.WEBHOOK,
            token=token,
            payload={"endpoint": endpoint, "webhookId": f"msg_{endpoint}_{i}", "type": "t"},
            now=now,
        )
        for endpoint in endpoint_ids
        for i in range(each)
    ]
    return outbox.enqueue_many(rows)


@pytest.mark.django_db
def test_one_endpoint_gets_at_most_its_cap_and_the_others_are_not_held(settings, make_token):
    settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY = 3
    token = make_token()
    webhook_rows(token, ["slow"], each=20)  # queued first: the oldest work
    webhook_rows(token, ["a", "b"])

    first = outbox.claim(now=timezone.now(), limit=16)
    lanes = sorted(row.lane for row in first)
    assert lanes == ["webhook:a", "webhook:b", *["webhook:slow"] * 3]
    # The slow lane is full while its three are in flight: nothing more from it.
    assert outbox.claim(now=timezone.now(), limit=16) == []


@pytest.mark.django_db
def test_one_tenant_gets_at_most_its_cap(settings, make_token, other_environment):
    settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY = 4
    settings.WAITPOINTS_OUTBOX_TENANT_CONCURRENCY = 5
    mine, theirs = make_token(), make_token(env=other_environment)
    webhook_rows(mine, [f"mine{i}" for i in range(4)], each=4)
    webhook_rows(theirs, ["theirs"])

    claimed = outbox.claim(now=timezone.now(), limit=16)
    tenants = [row.token.environment.project_id for row in claimed]
    assert tenants.count(mine.environment.project_id) == 5
    assert tenants.count(theirs.environment.project_id) == 1


@pytest.mark.django_db
def test_slots_reserved_for_mail_take_no_webhook(make_token, environment):
    token = make_token()
    webhook_rows(token, ["a"])
    lifecycle.token_create(environment=environment, actor=SYSTEM, approvers=["ann@example.com"])

    claimed = outbox.claim(now=timezone.now(), limit=4, tenant_slots=0)
    assert [row.kind for row in claimed] == [OutboxMessage.Kind.APPROVAL_EMAIL]


@pytest.mark.django_db
def test_an_open_breaker_keeps_its_lane_out_and_a_probe_is_alone(make_token):
    token = make_token()
    webhook_rows(token, ["down"], each=3)
    webhook_rows(token, ["up"])
    now = timezone.now()

    claimed = outbox.claim(now=now, closed_lanes={"webhook:down"})
    assert [row.lane for row in claimed] == ["webhook:up"]
    claimed = outbox.claim(now=now, probing_lanes={"webhook:down"})
    assert [row.lane for row in claimed] == ["webhook:down"]


def test_the_breaker_opens_after_failures_in_a_row_and_a_success_closes_it():
    breaker, failure = outbox.Breaker(), RuntimeError("HTTP 500")
    for _ in range(outbox.BREAKER_THRESHOLD - 1):
        breaker.record(failure, now=0.0)
    assert breaker.state(0.0) == "closed"
    breaker.record(failure, now=0.0)
    assert breaker.state(1.0) == "open"
    assert breaker.state(outbox.BREAKER_BASE + 0.1) == "probing"
    breaker.record(failure, now=outbox.BREAKER_BASE + 0.1)  # the probe failed: twice as long
    assert breaker.state(outbox.BREAKER_BASE * 2) == "open"
    assert breaker.state(outbox.BREAKER_BASE * 3 + 0.2) == "probing"
    breaker.record(None, now=outbox.BREAKER_BASE * 3 + 0.2)
    assert breaker.state(outbox.BREAKER_BASE * 3 + 0.2) == "closed"


@pytest.mark.django_db(transaction=True)
def test_a_live_engine_renews_its_leases_and_a_dead_ones_lapse(settings, make_token):
    """While its send hangs, the engine keeps the claim alive past the lease; an owner that
    stopped renewing (died) loses its claim after the lease."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_TOTAL_TIMEOUT = 30
    monkey = pytest.MonkeyPatch()
    monkey.setattr(outbox, "RENEW_EVERY", 0.2)
    monkey.setattr(outbox, "LEASE", timedelta(seconds=1))
    try:
        with receiving(default="hang") as hanging:
            endpoint, _secret = webhook_endpoints.webhook_endpoint_create(
                environment=make_token().environment, url=hanging.url
            )
            token = make_token()
            lifecycle.token_complete(token=token, actor=SYSTEM, data={"ok": True})
            engine = outbox.Engine(slots=4)
            runner = threading.Thread(target=lambda: (engine.run(), connection.close()))
            runner.start()
            try:
                hanging.wait_for(1, timeout=10)
                time.sleep(1.5)  # longer than the (shortened) lease: renewal must have run
                row = OutboxMessage.objects.get(kind=OutboxMessage.Kind.WEBHOOK)
                assert row.claimed_by == engine.owner
                assert row.claimed_until > timezone.now()
                assert outbox.claim(now=timezone.now()) == []  # nobody else may take it
            finally:
                engine.stop()
                hanging.release.set()
                runner.join(timeout=30)
        # A claim whose owner stopped renewing: free again once the lease has passed.
        dead = outbox.enqueue(
            kind="webhook", token=token, payload={"endpoint": "x"}, now=timezone.now()
        )
        assert [r.pk for r in outbox.claim(now=timezone.now(), owner="dead")] == [dead.pk]
        assert outbox.claim(now=timezone.now()) == []
        later = timezone.now() + outbox.LEASE + timedelta(milliseconds=10)
        assert [r.pk for r in outbox.claim(now=later, owner="alive")] == [dead.pk]
    finally:
        monkey.undo()


def _terminate_own_backend() -> None:
    """pg_terminate_backend on this connection's backend only (by its pid), from another one."""
    pid = connection.connection.info.backend_pid
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_settle_survives_a_dropped_connection_and_records_the_attempt(settings, make_token):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    with receiving() as receiver:
        webhook_endpoints.webhook_endpoint_create(
            environment=make_token().environment, url=receiver.url
        )
        lifecycle.token_complete(token=make_token(), actor=SYSTEM, data={"ok": True})
        (row,) = outbox.claim(now=timezone.now())
        error = outbox._send(row)
        assert error is None and len(receiver.received) == 1
        connection.ensure_connection()
        _terminate_own_backend()  # the database drops us between the send and the settle

        assert outbox._settle(row, error, timezone.now()) is True
    row.refresh_from_db()
    assert row.delivered_at is not None and row.claimed_until is None and row.attempts == 1
    assert WebhookDelivery.objects.filter(message=row, succeeded=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_hanging_endpoint_delays_no_other_tenant(settings, make_token, other_environment):
    """One tenant's endpoint hangs with many events queued ahead; another tenant's event,
    resolved later, is delivered at once by the same engine (on a slot of its own)."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_TOTAL_TIMEOUT = 30
    settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY = 2
    with receiving(default="hang") as hanging, receiving() as healthy:
        slow_tenant = make_token().environment
        webhook_endpoints.webhook_endpoint_create(environment=slow_tenant, url=hanging.url)
        webhook_endpoints.webhook_endpoint_create(environment=other_environment, url=healthy.url)
        for _ in range(10):
            lifecycle.token_complete(token=make_token(), actor=SYSTEM, data={"ok": True})
        engine = outbox.Engine(slots=8)
        runner = threading.Thread(target=lambda: (engine.run(), connection.close()))
        runner.start()
        try:
            hanging.wait_for(2, timeout=10)
            started = time.monotonic()
            late = make_token(env=other_environment)
            lifecycle.token_complete(token=late, actor=SYSTEM, data={"late": True})
            healthy.wait_for(1, timeout=5)
            assert time.monotonic() - started < 2
            time.sleep(0.3)
            assert len(hanging.received) == 2  # its cap: two in flight, the rest wait
        finally:
            engine.stop()
            hanging.release.set()
            runner.join(timeout=60)


@pytest.mark.django_db
def test_a_tenants_kind_without_a_lane_of_its_own_gets_one_per_environment(
    make_token, other_environment
):
    """A new kind for tenants' receivers (AAP events, …) that names no lane: one lane per
    environment, so one tenant's slow receiver cannot fill every tenant's lane."""
    kind = "test_receiver_event"
    outbox.HANDLERS[kind] = outbox.Handler(send=lambda message: None)
    try:
        mine, theirs = make_token(), make_token(env=other_environment)
        now = timezone.now()
        rows = outbox.enqueue_many(
            [outbox.message(kind=kind, token=t, payload={}, now=now) for t in (mine, theirs)]
        )
        assert [row.lane for row in rows] == [
            f"{kind}:environment:{mine.environment_id}",
            f"{kind}:environment:{theirs.environment_id}",
        ]
    finally:
        del outbox.HANDLERS[kind]
