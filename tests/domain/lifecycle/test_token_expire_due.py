"""lifecycle.token_expire_due: the beat sweep, in batches, with ``now`` injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tokens.domain import actors, deadline, lifecycle
from tokens.models import Token, TokenEvent, iso

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SYSTEM = actors.Actor.system()


def create(environment, timeout, now=NOW):
    return lifecycle.token_create(
        environment=environment, actor=SYSTEM, timeout=timeout, now=now
    ).token


def test_it_expires_due_tokens_in_batches(environment, other_environment):
    due = [create(environment, f"{i + 1}m") for i in range(7)]
    due.append(create(other_environment, "1m"))
    future = [create(environment, "2h"), create(environment, "1d")]
    sweep_at = NOW + timedelta(minutes=30)

    assert lifecycle.token_expire_due(now=sweep_at, batch_size=2) == 8

    for token in due:
        stored = Token.objects.get(pk=token.pk)
        assert stored.status == Token.Status.TIMED_OUT
        # Resolved at its timeout, not when the sweep ran: reads agree before and after.
        assert stored.completed_at == token.timeout_at
        assert stored.output_type == "application/json"
        assert stored.output_is_error is True
        assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
            "code": "TRIGGER_WAITPOINT_TIMEOUT",
            "message": f"Waitpoint timed out at {iso(token.timeout_at)}",
        }
        events = list(stored.events.values_list("kind", "channel", "created_at"))
        assert events[-1] == ("timed_out", "system", sweep_at)
        assert stored.events.filter(kind="timed_out").count() == 1
    for token in future:
        stored = Token.objects.get(pk=token.pk)
        assert stored.status == Token.Status.WAITING
        assert stored.completed_at is None
        assert stored.output is None
        assert not stored.events.filter(kind="timed_out").exists()


def test_it_changes_nothing_on_a_second_sweep(environment):
    tokens = [create(environment, "1m") for _ in range(5)]
    sweep_at = NOW + timedelta(minutes=2)
    assert lifecycle.token_expire_due(now=sweep_at, batch_size=3) == 5
    assert lifecycle.token_expire_due(now=sweep_at + timedelta(seconds=1), batch_size=3) == 0
    assert TokenEvent.objects.filter(kind="timed_out").count() == 5
    assert {Token.objects.get(pk=t.pk).completed_at for t in tokens} == {NOW + timedelta(minutes=1)}


def test_it_expires_a_token_exactly_at_its_timeout(environment):
    token = create(environment, "1m")
    assert lifecycle.token_expire_due(now=token.timeout_at - timedelta(microseconds=1)) == 0
    assert lifecycle.token_expire_due(now=token.timeout_at) == 1
    assert Token.objects.get(pk=token.pk).status == Token.Status.TIMED_OUT


def test_it_leaves_resolved_and_timeoutless_tokens_alone(environment, settings):
    completed = create(environment, "1m")
    lifecycle.token_complete(
        token=completed, actor=SYSTEM, data="x", now=NOW + timedelta(seconds=10)
    )
    cancelled = create(environment, "1m")
    lifecycle.token_cancel(token=cancelled, actor=SYSTEM, now=NOW + timedelta(seconds=10))
    settings.WAITPOINTS_DEFAULT_TIMEOUT = ""
    forever = lifecycle.token_create(environment=environment, actor=SYSTEM, now=NOW).token
    assert forever.timeout_at is None

    assert lifecycle.token_expire_due(now=NOW + timedelta(days=400), batch_size=1) == 0
    assert Token.objects.get(pk=completed.pk).status == Token.Status.COMPLETED
    assert Token.objects.get(pk=completed.pk).output == "x"
    assert Token.objects.get(pk=cancelled.pk).status == Token.Status.CANCELLED
    assert Token.objects.get(pk=forever.pk).status == Token.Status.WAITING
    assert not TokenEvent.objects.filter(kind="timed_out").exists()


def test_it_uses_the_batch_size_setting(environment, settings):
    settings.WAITPOINTS_SWEEP_BATCH_SIZE = 2
    for _ in range(5):
        create(environment, "1m")
    with CaptureQueriesContext(connection) as queries:
        assert lifecycle.token_expire_due(now=NOW + timedelta(minutes=5)) == 5
    assert not Token.objects.filter(status=Token.Status.WAITING).exists()
    # Batches of 2, 2 and 1, each its own UPDATE; another batch size gives another count.
    sweeps = [q for q in queries if "UPDATE tokens_token" in q["sql"]]
    assert [" LIMIT 2" in q["sql"] for q in sweeps] == [True, True, True]
