"""AAP events are limited per destination host, across instances and URL paths: at most the
lane's cap in flight at once toward one host, one circuit breaker for a failing host, and
nothing lost on the way (a held-back event waits, keeping its attempts, and is delivered once
the host recovers). A receiver on 127.0.0.1 counts the requests it holds at once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentapprovalprotocol.receiver import new_secret
from django.db import connection
from django.utils import timezone

from tokens.delivery import aap, outbox
from tokens.domain import actors, keys
from tokens.domain.aap import instances
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapInstance, Environment, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = actors.Actor.system()
BODY = {"tool": "deploy", "arguments": {"service": "api"}, "timeout": "30m"}
LANE = "aap:host:127.0.0.1"


@dataclass
class CountingReceiver:
    """Answers ``status`` to every POST; while ``gate`` is closed it holds each request open.
    ``peak`` is the most requests it ever held at once."""

    status: int = 204
    gate: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    current: int = 0
    peak: int = 0
    received: list[str] = field(default_factory=list)  # webhook-id of each request
    host: str = "127.0.0.1"
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def wait_for(self, what, timeout: float = 20) -> None:
        with self.changed:
            assert self.changed.wait_for(what, timeout=timeout), (self.current, self.received)


@contextmanager
def counting_receiver(host: str = "127.0.0.1") -> Iterator[CountingReceiver]:
    receiver = CountingReceiver(host=host)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.changed:
                receiver.current += 1
                receiver.peak = max(receiver.peak, receiver.current)
                receiver.received.append(self.headers["webhook-id"])
                receiver.changed.notify_all()
            receiver.gate.wait(30)
            with receiver.changed:
                status = receiver.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with receiver.changed:
                receiver.current -= 1
                receiver.changed.notify_all()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.gate.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _limits(settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY = 3
    # Only the host's cap is under test here: the project's must not be what holds events back.
    settings.WAITPOINTS_OUTBOX_TENANT_CONCURRENCY = 100


def queue_resolved_events(environment: Environment, urls: list[str], each: int) -> None:
    """An instance per URL, ``each`` requests of each cancelled by the agent: one queued
    event per request."""
    for n, url in enumerate(urls):
        instance, _credential = instances.instance_create_for_environment(
            environment=environment, name=f"agent-{n}"
        )
        AapInstance.objects.filter(pk=instance.pk).update(
            delivery_url=url,
            delivery_registration_id=uuid.uuid4(),
            encrypted_signing_secret=keys.encrypt(new_secret()),
        )
        instance.refresh_from_db()
        for _ in range(each):
            request, _new = aap_requests.request_create(
                instance=instance, key=str(uuid.uuid4()), body=BODY, actor=SYSTEM
            )
            aap_requests.request_cancel(instance=instance, request_id=str(request.pk), actor=SYSTEM)


def resolved_events(environment: Environment, urls: list[str], each: int) -> list[str]:
    """Events queued for receivers on one host (other paths): all in its lane; their ids."""
    queue_resolved_events(environment, urls, each)
    rows = list(OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT))
    assert {row.lane for row in rows} == {LANE}
    return [row.payload["event_id"] for row in rows]


def in_flight() -> int:
    return OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.AAP_EVENT, claimed_until__isnull=False, delivered_at__isnull=True
    ).count()


def run_again(engine: outbox.Engine) -> outbox.Engine:
    """The same delivery process another round (its breakers are its memory), until idle."""
    again = outbox.Engine(slots=engine.slots, owner=engine.owner)
    again.breakers = engine.breakers
    again.run(until_idle=True)
    return again


def run_engine(engine: outbox.Engine) -> threading.Thread:
    runner = threading.Thread(target=lambda: (engine.run(until_idle=True), connection.close()))
    runner.start()
    return runner


def test_many_instances_on_one_host_get_at_most_the_cap_at_once(environment) -> None:
    with counting_receiver() as receiver:
        paths = [f"/agents/{n}/events" for n in range(4)]
        events = resolved_events(environment, [receiver.url(p) for p in paths], each=3)
        engine = outbox.Engine(slots=16)  # slots enough for every event at once
        runner = run_engine(engine)
        try:
            # Until every claimed event's request has arrived (and is held open).
            receiver.wait_for(lambda: receiver.current >= 3 and receiver.current == in_flight())
            assert receiver.current == 3
            # Another delivery process gets nothing for that host either: the cap is shared.
            assert outbox.claim(now=timezone.now(), owner="another process") == []
            receiver.gate.set()
        finally:
            runner.join(60)
        assert not runner.is_alive()
    assert receiver.peak == 3
    assert sorted(receiver.received) == sorted(events)  # each once
    rows = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT)
    # Those held back by the cap were not attempted until they were sent.
    assert [(row.delivered_at is not None, row.attempts) for row in rows] == [(True, 1)] * 12


def test_a_failing_host_trips_one_breaker_and_recovery_delivers_every_event(
    environment,
) -> None:
    with counting_receiver() as receiver:
        receiver.status, receiver.gate = 500, threading.Event()
        receiver.gate.set()
        paths = [f"/agents/{n}/events" for n in range(4)]
        events = resolved_events(environment, [receiver.url(p) for p in paths], each=3)
        engine = outbox.Engine(slots=16)
        engine.run(until_idle=True)  # until nothing it may claim is left
        failed = len(receiver.received)
        # Five failures in a row toward the host opened its breaker (each instance alone had
        # at most three): the attempts that had started finished, no more were made.
        assert outbox.BREAKER_THRESHOLD <= failed <= outbox.BREAKER_THRESHOLD + 2
        breaker = engine.breakers[LANE]
        assert breaker.trips == 1 and breaker.state(time.monotonic()) == "open"
        rows = list(OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT))
        assert all(row.delivered_at is None and row.failed_at is None for row in rows)
        assert sum(row.attempts for row in rows) == failed
        held = [row for row in rows if row.attempts == 0]
        assert len(held) == 12 - failed and all(r.next_attempt_at <= timezone.now() for r in held)
        run_again(engine)  # still open: nothing is sent, nothing is spent
        assert len(receiver.received) == failed
        assert sum(
            r.attempts for r in OutboxMessage.objects.filter(pk__in=[r.pk for r in rows])
        ) == (failed)

        # The host recovers; the pause and the failed events' back-off have passed.
        with receiver.changed:
            receiver.status = 204
        breaker.open_until = 0.0
        OutboxMessage.objects.filter(pk__in=[r.pk for r in rows]).update(
            next_attempt_at=timezone.now()
        )
        assert run_again(engine).delivered == 12
    assert breaker.state(time.monotonic()) == "closed"
    delivered = OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.AAP_EVENT, delivered_at__isnull=False
    )
    assert sorted(row.payload["event_id"] for row in delivered) == sorted(events)
    assert len(receiver.received) == failed + 12 and receiver.peak <= 3


def test_an_event_whose_receiver_moved_host_is_sent_in_the_new_hosts_lane_at_no_cost(
    environment,
) -> None:
    with counting_receiver() as old, counting_receiver("127.0.0.2") as new:
        (event,) = resolved_events(environment, [old.url("/events")], each=1)
        new.gate.set()
        # The receiver was replaced by one on another host before the event was sent.
        AapInstance.objects.update(delivery_url=new.url("/events"))
        assert outbox.deliver_due() == 1
    (row,) = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT)
    assert row.lane == "aap:host:127.0.0.2" and row.attempts == 1 and row.delivered_at
    assert (old.received, new.received) == ([], [event])


def test_a_host_too_long_for_the_lane_gets_a_lane_of_its_own() -> None:
    long_a, long_b = "a" * 200 + ".example", "a" * 200 + ".example.org"
    assert aap.host_lane(long_a) != aap.host_lane(long_b)
    assert all(len(aap.host_lane(h)) <= 120 for h in (long_a, long_b))
    assert aap.host_lane(aap.destination_host("https://Hooks.Example.com:8443/a?b")) == (
        "aap:host:hooks.example.com"
    )
