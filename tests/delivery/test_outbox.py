"""The outbox delivers outside transactions, under a lease, through one handler per kind."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.domain.test_races import run_together
from tokens.delivery import outbox
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, Token, TokenEvent

SYSTEM = actors.Actor.system()


@contextmanager
def silent_smtp_server() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server that accepts connections and never says a word (a hung SMTP server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            held.append(client)
            accepted.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()
        for client in held:
            client.close()


def smtp_settings(settings, port: int, timeout: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = timeout


@pytest.mark.django_db(transaction=True)
def test_a_hung_smtp_server_holds_no_lock_and_delays_no_request(settings, environment, secret_key):
    """While the worker waits on an SMTP server that never answers, creates (with approvers)
    and completions in the same environment answer; the e-mail is retried later."""
    with silent_smtp_server() as (port, accepted):
        smtp_settings(settings, port, timeout=30)
        first = lifecycle.token_create(
            environment=environment, actor=SYSTEM, approvers=["ann@example.com"]
        ).token
        sending = threading.Thread(target=lambda: (outbox.deliver_due(), connection.close()))
        sending.start()
        assert accepted.wait(timeout=10)  # the worker is now stuck talking to the server

        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
        other = lifecycle.token_create(environment=environment, actor=SYSTEM).token

        def create_and_complete() -> tuple[int, int]:
            created = api.post(
                "/api/v1/waitpoints/tokens", {"approvers": ["bob@example.com"]}, format="json"
            )
            completed = api.post(
                f"/api/v1/waitpoints/tokens/{other.friendly_id}/complete", {}, format="json"
            )
            return created.status_code, completed.status_code

        assert run_together([create_and_complete]) == [(200, 200)]
        assert sending.is_alive(), "the requests must have answered while SMTP still hung"
    sending.join(timeout=60)  # the server closed: the attempt fails

    message = OutboxMessage.objects.get(token=first)
    assert message.delivered_at is None and message.failed_at is None
    assert message.attempts == 1 and message.claimed_until is None
    assert message.last_error
    assert message.next_attempt_at > timezone.now()  # retried later, with back-off


@pytest.mark.django_db(transaction=True)
def test_a_send_that_times_out_is_retried_later(settings, environment):
    with silent_smtp_server() as (port, _accepted):
        smtp_settings(settings, port, timeout=1)
        token = lifecycle.token_create(
            environment=environment, actor=SYSTEM, approvers=["ann@example.com"]
        ).token
        assert outbox.deliver_due() == 0
    message = OutboxMessage.objects.get(token=token)
    assert "timed out" in message.last_error.lower()
    assert message.attempts == 1 and message.failed_at is None


@pytest.mark.django_db
def test_a_crashed_workers_claim_lapses(environment):
    now = timezone.now()
    token = lifecycle.token_create(
        environment=environment, actor=SYSTEM, approvers=["ann@example.com"], now=now
    ).token
    claimed = outbox.claim(now=now)  # ... and the worker dies before sending
    assert [m.token_id for m in claimed] == [token.pk]

    assert outbox.deliver_due(now=now + outbox.LEASE - timedelta(seconds=1)) == 0
    assert mail.outbox == []
    assert outbox.deliver_due(now=now + outbox.LEASE + timedelta(seconds=1)) == 1
    assert len(mail.outbox) == 1
    message = OutboxMessage.objects.get(token=token)
    assert message.attempts == 2 and message.delivered_at is not None


@pytest.mark.django_db
def test_a_claimed_message_is_not_claimed_twice(environment):
    lifecycle.token_create(
        environment=environment, actor=SYSTEM, approvers=["a@example.com", "b@example.com"]
    )
    now = timezone.now()
    assert len(outbox.claim(now=now)) == 2
    assert outbox.claim(now=now) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_send_each_message_once(environment):
    addresses = [f"user{i}@example.com" for i in range(30)]
    for chunk in (addresses[:15], addresses[15:]):
        lifecycle.token_create(environment=environment, actor=SYSTEM, approvers=chunk)

    counts = run_together([outbox.deliver_due] * 3)

    assert sum(counts) == 30
    assert sorted(m.to[0] for m in mail.outbox) == sorted(addresses)
    assert TokenEvent.objects.filter(kind=TokenEvent.Kind.EMAIL_SENT).count() == 30


@pytest.mark.django_db
def test_each_kind_has_its_handler(environment):
    assert set(outbox.HANDLERS) == set(OutboxMessage.Kind.values)
    token = lifecycle.token_create(environment=environment, actor=SYSTEM).token
    row = outbox.enqueue(kind="unknown", token=token, payload={}, now=timezone.now())
    outbox.deliver_due()
    row.refresh_from_db()
    assert row.failed_at is not None and "no outbox handler" in row.last_error
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING
