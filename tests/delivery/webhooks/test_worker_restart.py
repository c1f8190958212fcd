"""A real Celery worker (subprocess) delivers webhooks to real receivers: events resolved while
no worker runs all arrive once it starts, again across a restart, each exactly once, signed,
and only to the endpoints subscribed to them."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.delivery.webhooks.receiver import receiving, verify_independently
from tests.platform.test_worker import _env
from tests.smoke.processes import BIN, running, tail, wait_until
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage

pytestmark = [pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]


def worker_args() -> list[str]:
    args = [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--beat", "--loglevel=info"]
    return args + ["--concurrency=1", f"--hostname=webhooks-{secrets.token_hex(4)}@%h"]


def test_nothing_is_lost_across_a_worker_restart(
    tmp_path, environment, other_environment, make_token
):
    system = actors.Actor.system()
    with (
        receiving() as everything,
        receiving() as cancellations,
        receiving() as never,
    ):
        _e, secret = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=everything.url
        )
        _c, cancel_secret = webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=cancellations.url, events=["waitpoint.cancelled"]
        )
        webhook_endpoints.webhook_endpoint_create(
            environment=environment, url=never.url, enabled=False
        )
        webhook_endpoints.webhook_endpoint_create(environment=other_environment, url=never.url)

        # No worker is running: resolve through every path.
        completed, cancelled, forced, swept = (make_token(timeout="1h") for _ in range(4))
        lifecycle.token_complete(token=completed, actor=system, data={"approved": True})
        lifecycle.token_cancel(token=cancelled, actor=system, reason="withdrawn")
        lifecycle.token_force_timeout(token=forced, actor=system)
        lifecycle.token_expire_due(now=timezone.now() + timedelta(hours=2))
        pending = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK)
        assert pending.filter(delivered_at__isnull=True).count() == 5

        assert everything.received == cancellations.received == []
        env = _env(tmp_path, WEBHOOKS_ALLOW_PRIVATE_TARGETS="True")
        log = tmp_path / "worker-1.log"
        with running(worker_args(), env=env, log=log):
            first = everything.wait_for(4, timeout=60)
            cancellations.wait_for(1, timeout=60)
            # Stop only once the outbox has recorded the deliveries (a worker killed between
            # sending and settling sends again when its claim lapses: at least once, same id).
            settled = lambda: not pending.filter(delivered_at__isnull=True).exists()  # noqa: E731
            assert wait_until(settled, timeout=30), tail(log)

        # Stopped again: two more resolutions wait in the outbox.
        later_completed, later_cancelled = make_token(), make_token()
        lifecycle.token_complete(token=later_completed, actor=system, data="yes")
        lifecycle.token_cancel(token=later_cancelled, actor=system)
        assert pending.filter(delivered_at__isnull=True).count() == 3
        assert len(everything.received) == 4

        log = tmp_path / "worker-2.log"
        with running(worker_args(), env=env, log=log):
            received = everything.wait_for(6, timeout=60)
            cancelled_events = cancellations.wait_for(2, timeout=60)
            assert wait_until(settled, timeout=30), tail(log)

    assert received[:4] == first
    events = {}
    for request in received:
        assert verify_independently(secret, request.headers, request.body)
        event = json.loads(request.body)
        events[event["data"]["id"]] = event["type"]
    assert len(received) == 6 and len({r.headers["webhook-id"] for r in received}) == 6
    assert events == {
        completed.friendly_id: "waitpoint.completed",
        cancelled.friendly_id: "waitpoint.cancelled",
        forced.friendly_id: "waitpoint.timed_out",
        swept.friendly_id: "waitpoint.timed_out",
        later_completed.friendly_id: "waitpoint.completed",
        later_cancelled.friendly_id: "waitpoint.cancelled",
    }
    assert len(cancelled_events) == 2
    assert {json.loads(r.body)["data"]["id"] for r in cancelled_events} == {
        cancelled.friendly_id,
        later_cancelled.friendly_id,
    }
    assert all(verify_independently(cancel_secret, r.headers, r.body) for r in cancelled_events)
    assert never.received == []


def test_a_killed_delivery_process_claims_lapse_in_seconds(tmp_path, environment, make_token):
    """``manage.py deliver`` SIGKILLed while its request hangs at the receiver: another one
    sends that event again (same webhook-id) once the 10 s lease lapses, well within 20 s, and
    only that event is sent twice."""
    with receiving(statuses=["hang"]) as receiver:
        webhook_endpoints.webhook_endpoint_create(environment=environment, url=receiver.url)
        system = actors.Actor.system()
        first, second = make_token(), make_token()
        lifecycle.token_complete(token=first, actor=system, data={"n": 1})
        env = _env(tmp_path, WEBHOOKS_ALLOW_PRIVATE_TARGETS="True", WEBHOOKS_TOTAL_TIMEOUT="60")
        deliver = [sys.executable, "-m", "django", "deliver"]
        env["DJANGO_SETTINGS_MODULE"] = "waitpoints_site.settings"
        with running(deliver, env=env, log=tmp_path / "deliver-1.log") as victim:
            receiver.wait_for(1, timeout=30)  # the first event's request now hangs
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
            victim.wait(timeout=10)
        lifecycle.token_complete(token=second, actor=system, data={"n": 2})
        log = tmp_path / "deliver-2.log"
        with running(deliver, env=env, log=log):
            received = receiver.wait_for(3, timeout=30)
            lapsed_after = time.monotonic() - killed
            pending = OutboxMessage.objects.filter(delivered_at__isnull=True)
            assert wait_until(lambda: not pending.exists(), timeout=20), tail(log)
    ids = [r.headers["webhook-id"] for r in received]
    assert len(ids) == 3 and ids[0] in ids[1:] and len(set(ids)) == 2, ids
    assert lapsed_after < 20, lapsed_after
