"""Approvals valid for a while, used once (tokens.domain.consumption), on real PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.domain.test_races import run_together
from tokens.domain import actors, consumption, decide, lifecycle
from tokens.domain.exceptions import InvalidInput
from tokens.models import Token, TokenEvent

SYSTEM = actors.Actor.system()


def approve(token: Token, decision: str = "approved") -> Token:
    decide.decide(
        token=token,
        actor=SYSTEM,
        authority=decide.Authority.link(),
        voter=None,
        decision=decision,
    )
    token.refresh_from_db()
    return token


def consume(token: Token, **kwargs) -> consumption.ConsumeResult:
    return consumption.token_consume(token=Token.objects.get(pk=token.pk), actor=SYSTEM, **kwargs)


def refusal_code(token: Token, **kwargs) -> str:
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consume(token, **kwargs)
    return refused.value.code


@pytest.mark.django_db
def test_an_approval_gets_its_window_when_it_is_recorded(make_token):
    token = approve(make_token(timeout="1h"))
    assert token.decision == "approved" and token.decision_expires_at is None  # no window asked
    windowed = make_token(timeout="1h")
    Token.objects.filter(pk=windowed.pk).update(decision_valid_for=timedelta(minutes=5))
    windowed = approve(Token.objects.get(pk=windowed.pk))
    assert windowed.decision_expires_at == windowed.completed_at + timedelta(minutes=5)
    rejected = make_token(timeout="1h")
    Token.objects.filter(pk=rejected.pk).update(decision_valid_for=timedelta(minutes=5))
    rejected = approve(Token.objects.get(pk=rejected.pk), "rejected")
    assert rejected.decision == "rejected" and rejected.decision_expires_at is None


@pytest.mark.django_db
def test_the_first_consumption_wins_and_later_ones_name_it(make_token):
    token = approve(make_token(timeout="1h"))
    first = consume(token, consumer="billing-worker")
    assert not first.replayed and first.token.consumed_by == "billing-worker"
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consume(token, consumer="someone-else")
    assert refused.value.code == "already_consumed"
    assert "by billing-worker" in refused.value.message
    kinds = list(token.events.values_list("kind", flat=True))
    assert kinds.count(TokenEvent.Kind.CONSUMED) == 1
    assert kinds.count(TokenEvent.Kind.CONSUME_REFUSED) == 1


@pytest.mark.django_db
def test_the_same_key_replays_and_another_key_is_refused(make_token):
    token = approve(make_token(timeout="1h"))
    first = consume(token, key="k-1")
    again = consume(token, key="k-1")
    assert again.replayed and again.token.consumed_at == first.token.consumed_at
    assert refusal_code(token, key="k-2") == "already_consumed"


@pytest.mark.django_db
def test_only_an_approval_can_be_consumed(make_token):
    waiting = make_token(timeout="1h")
    rejected = approve(make_token(timeout="1h"), "rejected")
    cancelled = make_token(timeout="1h")
    lifecycle.token_cancel(token=cancelled, actor=SYSTEM)
    timed_out = make_token(timeout="1h")
    lifecycle.token_force_timeout(token=timed_out, actor=SYSTEM)
    plain = make_token(timeout="1h")
    lifecycle.token_complete(token=plain, actor=SYSTEM, data={"anything": 1})
    for token in (waiting, rejected, cancelled, timed_out, plain):
        assert refusal_code(token) == "not_approved", token
        assert Token.objects.get(pk=token.pk).consumed_at is None


@pytest.mark.django_db
def test_an_approval_past_its_window_is_refused(make_token):
    token = make_token(timeout="1h")
    Token.objects.filter(pk=token.pk).update(decision_valid_for=timedelta(minutes=5))
    token = approve(Token.objects.get(pk=token.pk))
    assert token.decision_expires_at is not None
    later = token.decision_expires_at + timedelta(seconds=1)
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consumption.token_consume(token=token, actor=SYSTEM, now=later)
    assert refused.value.code == "approval_expired"
    assert Token.objects.get(pk=token.pk).consumed_at is None
    assert consume(token).token.consumed_at is not None  # still inside the window now


@pytest.mark.django_db
def test_the_database_refuses_a_consumed_token_that_is_not_an_approval(make_token):
    token = make_token(timeout="1h")
    with pytest.raises(IntegrityError), transaction.atomic():
        Token.objects.filter(pk=token.pk).update(consumed_at=timezone.now())


@pytest.mark.django_db
def test_outcomes_are_recorded_once(make_token):
    token = approve(make_token(timeout="1h"))
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consumption.token_report_outcome(token=token, actor=SYSTEM, status="succeeded")
    assert refused.value.code == "not_consumed"
    consume(token)
    with pytest.raises(InvalidInput):
        consumption.token_report_outcome(token=token, actor=SYSTEM, status="done")
    with pytest.raises(InvalidInput):
        consumption.token_report_outcome(token=token, actor=SYSTEM, status="failed", note=" ")
    first = consumption.token_report_outcome(
        token=token, actor=SYSTEM, status="failed", note="card declined"
    )
    assert not first.replayed and first.token.outcome_status == "failed"
    again = consumption.token_report_outcome(
        token=token, actor=SYSTEM, status="failed", note="card declined"
    )
    assert again.replayed and again.token.outcome_reported_at == first.token.outcome_reported_at
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consumption.token_report_outcome(token=token, actor=SYSTEM, status="succeeded")
    assert refused.value.code == "outcome_conflict"


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_many_concurrent_consumers_wins(make_token):
    assert connection.vendor == "postgresql"
    token = approve(make_token(timeout="1h"))

    def attempt(index: int):
        def run() -> str:
            try:
                consume(token, consumer=f"worker-{index}", key=f"key-{index}")
            except consumption.ConsumptionRefused as refused:
                return refused.code
            return "consumed"

        return run

    outcomes = run_together([attempt(i) for i in range(16)])
    assert outcomes.count("consumed") == 1
    assert set(outcomes) == {"consumed", "already_consumed"}
    stored = Token.objects.get(pk=token.pk)
    assert stored.consumed_by == f"worker-{outcomes.index('consumed')}"
    assert token.events.filter(kind=TokenEvent.Kind.CONSUMED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_consumers_racing_the_end_of_the_window_never_both_win(make_token):
    token = make_token(timeout="1h")
    Token.objects.filter(pk=token.pk).update(decision_valid_for=timedelta(milliseconds=300))
    token = approve(Token.objects.get(pk=token.pk))
    assert token.decision_expires_at is not None

    def attempt() -> str:
        # Start close to the end of the window, on the database's clock.
        while timezone.now() < token.decision_expires_at - timedelta(milliseconds=20):
            time.sleep(0.002)
        try:
            consume(token)
        except consumption.ConsumptionRefused as refused:
            return refused.code
        return "consumed"

    outcomes = run_together([attempt for _ in range(8)])
    assert outcomes.count("consumed") <= 1
    assert set(outcomes) <= {"consumed", "already_consumed", "approval_expired"}
    stored = Token.objects.get(pk=token.pk)
    if stored.consumed_at is not None:
        assert stored.consumed_at < stored.decision_expires_at
