"""Concurrent writers to one token's trail, each on its own PostgreSQL connection: the chain
stays linear (one event per place, each linking to the one before)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.domain.test_races import run_together
from tokens.domain import actors, chain, lifecycle
from tokens.models import Token

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = actors.Actor.system()


def test_concurrent_writers_keep_one_linear_chain(environment):
    token = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token
    jobs: list[Callable[[], object]] = []
    for n in range(12):
        jobs.append(
            lambda n=n: lifecycle.token_action_denied(token=token, actor=SYSTEM, action=f"a{n}")
        )
        jobs.append(lambda n=n: lifecycle.token_complete(token=token, actor=SYSTEM, data={"n": n}))
    jobs.append(lambda: lifecycle.token_extend(token=token, actor=SYSTEM, timeout="2h"))
    try:
        run_together(jobs)
    except Exception as error:  # noqa: BLE001 - the extension may meet a resolved token
        assert "already completed" in str(error), error
    stored = Token.objects.get(pk=token.pk)
    seqs = list(stored.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 25
    assert chain.verify(stored) is None


def test_a_sweep_racing_writers_keeps_the_chains(environment):
    now = timezone.now()
    tokens = [
        lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token
        for _ in range(5)
    ]
    later = now + timedelta(hours=2)
    jobs: list[Callable[[], object]] = [lambda: lifecycle.token_expire_due(now=later)] * 2
    for token in tokens:
        jobs.append(
            lambda t=token: lifecycle.token_action_denied(token=t, actor=SYSTEM, action="x")
        )
        jobs.append(lambda t=token: lifecycle.token_cancel(token=t, actor=SYSTEM, now=later))
    run_together(jobs)
    for token in tokens:
        stored = Token.objects.get(pk=token.pk)
        assert stored.status != Token.Status.WAITING
        assert stored.audit_seq == stored.events.count() >= 4
        assert chain.verify(stored) is None
