"""Asynchronous delivery with the SDK's Receiver (unchanged), served over real HTTP on this
machine: verification before anything is committed, signed ID-only request.resolved events
through the outbox, retries that keep the event's id and body and respect Retry-After, receiver
replacement, and the end of delivery on removal and deletion.

The live web role verifies receivers; the outbox worker's work (``outbox.deliver_due``) runs
in the test process, on the same database."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from agentapprovalprotocol import Allow, AsyncGate, Call, Pending, Receiver
from agentapprovalprotocol.receiver import new_secret, verify
from django.db import connection
from django.utils import timezone

from tests.surfaces.aap.conftest import complete, new_key, raw
from tests.surfaces.aap.test_requests import BODY, assert_spec_error
from tokens.delivery import outbox
from tokens.models import AapInstance, AapRequest, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback_receivers(settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the worker (this process) sends to 127.0.0.1


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop in a thread: the Receiver, its client and the gate all live on it."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)


def run(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class ReceiverServer:
    """An HTTP server in front of ``Receiver.handle``; ``fail`` queues answers to give first."""

    loop: asyncio.AbstractEventLoop
    receiver: Receiver
    hits: list[Hit] = field(default_factory=list)
    fail: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if outer.fail:
                    status, extra = outer.fail.pop(0)
                    answer = b""
                else:
                    extra = {}
                    status, answer = run(outer.loop, outer.receiver.handle(headers, body))
                outer.hits.append(Hit(headers, body, status))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/aap/events"

    def events(self) -> list[Hit]:
        return [h for h in self.hits if json.loads(h.body)["type"] == "request.resolved"]


@pytest.fixture
def receivers(loop) -> Iterator[list[ReceiverServer]]:
    made: list[ReceiverServer] = []
    yield made
    for server in made:
        server.server.shutdown()


def serve(loop, receivers, receiver: Receiver) -> ReceiverServer:
    server = ReceiverServer(loop, receiver)
    receivers.append(server)
    return server


def deliver() -> int:
    try:
        return outbox.deliver_due()
    finally:
        connection.close()


def approve(web_url: str, api_key: str, request_id: str) -> None:
    request = AapRequest.objects.select_related("token").get(pk=request_id)
    assert complete(web_url, api_key, request, {"status": "approved"}).status_code == 200


def events_of(request_id: str) -> list[OutboxMessage]:
    token = AapRequest.objects.get(pk=request_id).token_id
    return list(OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT, token_id=token))


def test_a_paused_run_is_resumed_by_the_event_and_then_allowed(
    aap_web, base, provisioner, api_key, loop, receivers
) -> None:
    resumed = threading.Event()
    verdicts: list[object] = []
    call = Call(
        key=str(uuid.uuid4()),
        tool="deploy",
        arguments={"service": "api", "version": "1.2.3"},
        resume={"framework": "test", "run": "run-1"},
    )

    async def resume(handle: dict[str, Any], request: Any) -> None:
        verdicts.append(await gate.check(call))
        resumed.set()

    receiver = Receiver(resumers={"test": resume})
    server = serve(loop, receivers, receiver)
    provisioned = run(
        loop,
        receiver.provision(
            provider_url=base, provisioner_token=provisioner, url=server.url, instance_name="bg"
        ),
    )
    instance = AapInstance.objects.get(pk=provisioned.instance_id)
    assert instance.delivery_url == server.url
    assert str(instance.delivery_registration_id) == provisioned.registration_id
    assert provisioned.secret not in instance.encrypted_signing_secret
    (verification,) = server.hits
    assert (
        verification.status == 200
        and json.loads(verification.body)["type"] == "webhook.verification"
    )
    read = raw(base, "GET", f"/v1/instances/{instance.pk}", provisioner).json()
    assert read["delivery"] == {
        "type": "webhook",
        "url": server.url,
        "registration_id": provisioned.registration_id,
    }

    assert receiver.client is not None
    gate = AsyncGate(receiver.client, mode="async")
    pending = run(loop, gate.check(call))
    assert isinstance(pending, Pending)
    assert not events_of(pending.request_id)  # nothing until it is terminal
    approve(aap_web.url, api_key, pending.request_id)
    (queued,) = events_of(pending.request_id)
    assert deliver() == 1
    (event,) = server.events()
    assert event.status == 204
    body = json.loads(event.body)
    assert set(body) == {"id", "type", "instance_id", "request_id", "created_at"}
    assert (
        body["request_id"] == pending.request_id and body["instance_id"] == provisioned.instance_id
    )
    assert event.headers["webhook-id"] == body["id"] == queued.payload["event_id"]
    assert resumed.wait(20)
    assert isinstance(verdicts[0], Allow), verdicts
    decided = run(loop, receiver.client.get(pending.request_id))
    assert (
        body["created_at"]
        == decided.decision.decided_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )
    assert deliver() == 0  # acknowledged: never sent again
    run(loop, receiver.client.aclose())


def provision_with(
    base: str, provisioner: str, receiver: Receiver, url: str, key: str | None = None
):
    body = {
        "instance_name": "raw",
        "delivery": {
            "type": "webhook",
            "url": url,
            "registration_id": receiver.registration_id,
            "signing_secret": receiver.secret,
        },
    }
    return raw(
        base,
        "POST",
        "/v1/instances",
        provisioner,
        json=body,
        headers={"Idempotency-Key": key or new_key()},
    )


def ready_receiver() -> Receiver:
    return Receiver(resumers={}, secret=new_secret(), registration_id=str(uuid.uuid4()))


def test_a_failed_verification_creates_nothing_and_may_be_retried(
    base, provisioner, loop, receivers
) -> None:
    expecting = ready_receiver()
    server = serve(loop, receivers, expecting)
    stranger = Receiver(resumers={}, secret=expecting.secret, registration_id=str(uuid.uuid4()))
    key = new_key()
    refused = provision_with(base, provisioner, stranger, server.url, key)
    error = assert_spec_error(refused, 422, "webhook_verification_failed")
    assert error["param"] == "delivery"
    assert server.hits[0].status == 403  # the receiver refused an unexpected registration
    assert not AapInstance.objects.exists()
    # Unanswered, wrong challenge, bare 2xx: all refused.
    for status in (500, 204):
        server.fail.append((status, {}))
        assert provision_with(base, provisioner, expecting, server.url).status_code == 422
    assert not AapInstance.objects.exists()
    # The same key and input, once the receiver expects that registration: created.
    expecting.registration_id = stranger.registration_id
    accepted = provision_with(base, provisioner, stranger, server.url, key=key)
    assert accepted.status_code == 201, accepted.text
    assert AapInstance.objects.count() == 1
    hits_before = len(server.hits)
    replay_key = new_key()
    first = provision_with(base, provisioner, expecting, server.url, key=replay_key)
    replay = provision_with(base, provisioner, expecting, server.url, key=replay_key)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json() == first.json()
    assert len(server.hits) == hits_before + 1  # the replay did not verify again
    assert "signing_secret" not in json.dumps(first.json())


def test_retries_keep_id_and_body_and_respect_retry_after(
    aap_web, base, provisioner, api_key, loop, receivers
) -> None:
    receiver = ready_receiver()
    server = serve(loop, receivers, receiver)
    body = provision_with(base, provisioner, receiver, server.url).json()
    token = body["credential"]["token"]
    created = raw(
        base, "POST", "/v1/requests", token, json=BODY, headers={"Idempotency-Key": new_key()}
    ).json()
    server.fail.append((503, {"Retry-After": "120"}))
    server.fail.append((500, {}))
    approve(aap_web.url, api_key, created["id"])
    before = timezone.now()
    assert deliver() == 0
    (row,) = events_of(created["id"])
    assert row.attempts == 1 and row.delivered_at is None and row.failed_at is None
    assert row.next_attempt_at >= before + timedelta(seconds=115)  # Retry-After, not 5 s
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert deliver() == 0  # 500: backed off again
    row.refresh_from_db()
    assert row.attempts == 2 and timedelta(0) < row.next_attempt_at - timezone.now() < timedelta(
        seconds=60
    )
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert deliver() == 1
    attempts = server.events()
    assert [a.status for a in attempts] == [503, 500, 204]
    assert len({a.body for a in attempts}) == 1
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    for attempt in attempts:
        verify(receiver.secret, attempt.headers, attempt.body)  # each attempt is signed


def test_a_replaced_receiver_gets_the_queued_events(
    aap_web, base, provisioner, api_key, loop, receivers
) -> None:
    old = ready_receiver()
    old_server = serve(loop, receivers, old)
    body = provision_with(base, provisioner, old, old_server.url).json()
    instance_id, token = body["instance"]["id"], body["credential"]["token"]
    created = raw(
        base, "POST", "/v1/requests", token, json=BODY, headers={"Idempotency-Key": new_key()}
    ).json()
    old_server.fail.append((500, {}))
    approve(aap_web.url, api_key, created["id"])
    assert deliver() == 0
    new = ready_receiver()
    new.instance_id = instance_id
    new_server = serve(loop, receivers, new)
    # A failed replacement changes nothing, the name included.
    new_server.fail.append((403, {}))
    failed = raw(
        base,
        "PATCH",
        f"/v1/instances/{instance_id}",
        provisioner,
        json={
            "instance_name": "moved",
            "delivery": {
                "type": "webhook",
                "url": new_server.url,
                "registration_id": new.registration_id,
                "signing_secret": new.secret,
            },
        },
        headers={"Idempotency-Key": new_key()},
    )
    assert_spec_error(failed, 422, "webhook_verification_failed")
    kept = AapInstance.objects.get(pk=instance_id)
    assert (kept.name, kept.delivery_url) == ("raw", old_server.url)
    patched = raw(
        base,
        "PATCH",
        f"/v1/instances/{instance_id}",
        provisioner,
        json={
            "delivery": {
                "type": "webhook",
                "url": new_server.url,
                "registration_id": new.registration_id,
                "signing_secret": new.secret,
            }
        },
        headers={"Idempotency-Key": new_key()},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["delivery"]["url"] == new_server.url
    OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT).update(
        next_attempt_at=timezone.now()
    )
    assert deliver() == 1
    (moved,) = new_server.events()
    (first,) = old_server.events()
    assert moved.status == 204 and moved.body == first.body
    assert moved.headers["webhook-id"] == first.headers["webhook-id"]


def test_removing_delivery_or_deleting_the_instance_ends_retries(
    aap_web, base, provisioner, api_key, loop, receivers
) -> None:
    receiver = ready_receiver()
    server = serve(loop, receivers, receiver)
    outcome = {}
    for how in ("remove", "delete"):
        body = provision_with(base, provisioner, receiver, server.url).json()
        instance_id, token = body["instance"]["id"], body["credential"]["token"]
        decided = raw(
            base, "POST", "/v1/requests", token, json=BODY, headers={"Idempotency-Key": new_key()}
        ).json()
        waiting = raw(
            base,
            "POST",
            "/v1/requests",
            token,
            json={**BODY, "tool": "t2"},
            headers={"Idempotency-Key": new_key()},
        ).json()
        server.fail.append((500, {}))
        approve(aap_web.url, api_key, decided["id"])
        assert deliver() == 0
        if how == "remove":
            answer = raw(
                base,
                "PATCH",
                f"/v1/instances/{instance_id}",
                provisioner,
                json={"delivery": None},
                headers={"Idempotency-Key": new_key()},
            )
            assert answer.status_code == 200 and "delivery" not in answer.json()
        else:
            assert (
                raw(base, "DELETE", f"/v1/instances/{instance_id}", provisioner).status_code == 204
            )
            assert not events_of(waiting["id"])  # its cancellation notifies nobody
        OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT).update(
            next_attempt_at=timezone.now()
        )
        deliver()
        (row,) = events_of(decided["id"])
        assert row.failed_at is not None and row.delivered_at is None
        outcome[how] = row.last_error
    assert len(server.events()) == 2  # one failed attempt each, nothing after
    assert "no receiver" in outcome["remove"] and "deleted" in outcome["delete"]


def test_an_expiry_found_by_the_sweep_is_notified_too(base, provisioner, loop, receivers) -> None:
    from tokens.domain import lifecycle

    receiver = ready_receiver()
    server = serve(loop, receivers, receiver)
    token = provision_with(base, provisioner, receiver, server.url).json()["credential"]["token"]
    created = raw(
        base,
        "POST",
        "/v1/requests",
        token,
        json={**BODY, "timeout": "1s"},
        headers={"Idempotency-Key": new_key()},
    ).json()
    request = AapRequest.objects.select_related("token").get(pk=created["id"])
    assert lifecycle.token_expire_due(now=request.token.timeout_at + timedelta(seconds=1)) == 1
    assert deliver() == 1
    (event,) = server.events()
    read = raw(base, "GET", f"/v1/requests/{created['id']}", token).json()
    assert read["status"] == "expired"
    assert json.loads(event.body)["created_at"] == read["decision"]["decided_at"]
