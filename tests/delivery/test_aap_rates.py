"""AAP traffic is limited per destination in attempts per window, across instances, URL paths
and delivery processes: per receiver host and per resolved address (two names of one address
share it). An event over a limit waits for the next window without spending an attempt or
touching the breaker, and none is lost; a verification over it is refused (429) with nothing
sent or created.

The windows' clock (``aap.window_clock``) is held still and moved to the next window, and the
outbox's clock with it (``Engine.run(now=…)``), instead of sleeping until a window ends."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentapprovalprotocol.receiver import new_secret

from tests.delivery.test_aap_destinations import counting_receiver, queue_resolved_events
from tokens.delivery import aap, outbox
from tokens.domain import actors
from tokens.domain.aap import credentials, instances
from tokens.domain.aap.errors import AapError
from tokens.models import AapInstance, Environment, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = actors.Actor.system()
BODY = {"tool": "deploy", "arguments": {"service": "api"}, "timeout": "30m"}
PERIOD = 60  # seconds: every rate below is per minute


@pytest.fixture(autouse=True)
def _limits(settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WAITPOINTS_OUTBOX_LANE_CONCURRENCY = 3
    settings.WAITPOINTS_OUTBOX_TENANT_CONCURRENCY = 100
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST = "off"
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS = "off"
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT = "off"


class Clock:
    """The rate windows' clock, held at a moment of the current window until moved."""

    def __init__(self) -> None:
        self.now = float(int(datetime.now(tz=UTC).timestamp()))

    def __call__(self) -> float:
        return self.now

    def next_window(self) -> datetime:
        """Move to the start of the next window; that moment, for the outbox's clock."""
        self.now = (self.now // PERIOD + 1) * PERIOD
        return datetime.fromtimestamp(self.now, tz=UTC)

    def window_end(self) -> datetime:
        return datetime.fromtimestamp((self.now // PERIOD + 1) * PERIOD, tz=UTC)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    held = Clock()
    monkeypatch.setattr(aap, "window_clock", held)
    return held


def resolved_events(environment: Environment, urls: list[str], each: int) -> list[str]:
    """An instance per URL, ``each`` requests of each cancelled by the agent; the event ids."""
    queue_resolved_events(environment, urls, each)
    return [row.payload["event_id"] for row in events()]


def events() -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT).order_by("pk"))


def a_round(now: datetime | None = None) -> outbox.Engine:
    """A delivery process (slots enough for every event at once), until nothing is due."""
    engine = outbox.Engine(slots=16)
    engine.run(until_idle=True, now=now)
    return engine


def test_one_host_gets_at_most_its_rate_per_window_across_instances_and_paths(
    environment, settings, clock
) -> None:
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST = "5/1m"
    with counting_receiver() as receiver:
        receiver.gate.set()
        paths = [f"/agents/{n}/events" for n in range(4)]
        sent = resolved_events(environment, [receiver.url(p) for p in paths], each=3)
        assert len(sent) == 12

        engine = a_round()
        assert len(receiver.received) == 5
        waiting = [row for row in events() if row.delivered_at is None]
        assert len(waiting) == 7
        # Held back, not attempted: no attempt spent, no error, due when the window ends.
        assert {(row.attempts, row.last_error, row.failed_at) for row in waiting} == {(0, "", None)}
        assert {row.next_attempt_at for row in waiting} == {clock.window_end()}
        breaker = engine.breakers["aap:host:127.0.0.1"]
        assert (breaker.failures, breaker.trips) == (0, 0)  # the host did nothing wrong

        a_round(clock.next_window())  # another process, in the next window
        assert len(receiver.received) == 10
        a_round(clock.next_window())
    assert sorted(receiver.received) == sorted(sent)  # every event, each once
    assert {(row.delivered_at is not None, row.attempts) for row in events()} == {(True, 1)}


def test_two_names_of_one_address_share_its_rate(environment, settings, clock) -> None:
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS = "4/1m"
    with counting_receiver() as receiver:
        receiver.gate.set()
        by_name = f"http://localhost:{receiver.port}/events"  # localhost is 127.0.0.1 here
        sent = resolved_events(environment, [receiver.url("/events"), by_name], each=3)
        # Two hosts, so two lanes: only the address joins them.
        assert {row.lane for row in events()} == {"aap:host:127.0.0.1", "aap:host:localhost"}

        a_round()
        assert len(receiver.received) == 4
        waiting = [row for row in events() if row.delivered_at is None]
        assert [(row.attempts, row.next_attempt_at) for row in waiting] == [
            (0, clock.window_end())
        ] * 2

        a_round(clock.next_window())
    assert sorted(receiver.received) == sorted(sent)
    assert {(row.delivered_at is not None, row.attempts) for row in events()} == {(True, 1)}


def test_one_environment_gets_at_most_its_rate_across_its_receivers(
    environment, other_environment, settings, clock
) -> None:
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT = "3/1m"
    with counting_receiver() as one, counting_receiver("127.0.0.2") as two:
        one.gate.set()
        two.gate.set()
        mine = resolved_events(environment, [one.url("/a"), two.url("/b")], each=2)
        theirs = set(resolved_events(other_environment, [one.url("/c")], each=2)) - set(mine)

        a_round()
        got = one.received + two.received
        # Three of this environment's four, over two hosts; the other environment's both.
        assert len(set(got) & set(mine)) == 3 and theirs <= set(got)
        waiting = [row for row in events() if row.delivered_at is None]
        assert [(row.attempts, row.next_attempt_at) for row in waiting] == [(0, clock.window_end())]

        a_round(clock.next_window())
        assert sorted(one.received + two.received) == sorted([*mine, *theirs])
    assert {(row.delivered_at is not None, row.attempts) for row in events()} == {(True, 1)}


@dataclass
class ChallengeReceiver:
    """Answers every verification with its challenge (and an event with 200 too); keeps the
    ids of the messages it got."""

    port: int = 0
    received: list[str] = field(default_factory=list)

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def challenge_receiver() -> Iterator[ChallengeReceiver]:
    receiver = ChallengeReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            receiver.received.append(message["id"])
            answer = json.dumps({"challenge": message.get("challenge")}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def provision(provisioner, url: str) -> tuple[int, dict]:
    body = {
        "delivery": {
            "type": "webhook",
            "url": url,
            "registration_id": str(uuid.uuid4()),
            "signing_secret": new_secret(),
        }
    }
    return instances.instance_provision(provisioner=provisioner, key=str(uuid.uuid4()), body=body)


def test_verifications_count_toward_the_destination_and_over_it_nothing_is_sent_or_made(
    environment, settings, clock
) -> None:
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS = "2/1m"
    provisioner, _token = credentials.provisioner_create(environment=environment, name="p")
    with challenge_receiver() as receiver:
        assert provision(provisioner, receiver.url("127.0.0.1", "/a"))[0] == 201
        assert provision(provisioner, receiver.url("localhost", "/b"))[0] == 201
        with pytest.raises(AapError) as refused:
            provision(provisioner, receiver.url("localhost", "/c"))
        assert len(receiver.received) == 2  # the third was never sent
        # The spec's rate-limit error; ``param`` becomes the Retry-After header (answers.py).
        error = refused.value
        assert (error.http_status, error.kind, error.code) == (429, "rate_limit", "rate_limited")
        assert 1 <= int(error.param) <= PERIOD
        assert AapInstance.objects.count() == 2

        clock.next_window()
        assert provision(provisioner, receiver.url("localhost", "/c"))[0] == 201
    assert len(receiver.received) == 3


def test_an_event_and_a_verification_share_the_hosts_rate(environment, settings, clock) -> None:
    settings.WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST = "2/1m"
    provisioner, _token = credentials.provisioner_create(environment=environment, name="p")
    with challenge_receiver() as receiver:
        resolved_events(environment, [receiver.url("127.0.0.1", "/events")], each=1)
        assert provision(provisioner, receiver.url("127.0.0.1", "/a"))[0] == 201
        a_round()  # the event takes the window's second attempt
        assert [row.delivered_at is not None for row in events()] == [True]
        with pytest.raises(AapError) as refused:
            provision(provisioner, receiver.url("127.0.0.1", "/b"))
        assert refused.value.http_status == 429
    assert len(receiver.received) == 2 and AapInstance.objects.count() == 2
