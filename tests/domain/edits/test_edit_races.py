"""Edits racing each other and the deadline, each side on its own PostgreSQL connection."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.domain.test_races import run_together
from tokens.domain import actors, chain, decide, lifecycle
from tokens.domain.exceptions import DecisionInvalid
from tokens.models import Token, TokenEvent, Vote

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = actors.Actor.system()
PROPOSAL = {"amount": 100, "note": "refund"}
SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}}}
PEOPLE = ["ann@example.com", "bob@example.com", "cat@example.com"]


def create(environment, **kwargs) -> Token:
    kwargs.setdefault("timeout", "1h")
    return lifecycle.token_create(
        environment=environment,
        actor=SYSTEM,
        approvers=PEOPLE,
        proposal=PROPOSAL,
        proposal_schema=SCHEMA,
        **kwargs,
    ).token


def edit_job(token: Token, who: str, amount: int) -> Callable[[], object]:
    def job() -> object:
        try:
            return decide.decide(
                token=Token.objects.get(pk=token.pk),  # as a request reads it
                actor=SYSTEM,
                authority=decide.Authority.recipient(),
                voter=decide.Voter.for_email(who),
                decision="approved",
                proposal={**PROPOSAL, "amount": amount},
                proposal_version=1,
            )
        except DecisionInvalid as invalid:
            return invalid

    return job


def test_two_approvers_editing_a_quorum_request_at_once(environment):
    for _round in range(5):
        token = create(environment, required_approvals=2)
        results = run_together([edit_job(token, PEOPLE[0], 50), edit_job(token, PEOPLE[1], 70)])
        won = [r for r in results if isinstance(r, decide.DecideResult)]
        lost = [r for r in results if isinstance(r, DecisionInvalid)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].problem == "proposal_stale"
        stored = Token.objects.get(pk=token.pk)
        assert stored.status == Token.Status.WAITING and stored.proposal_version == 2
        (winner,) = Vote.objects.filter(token=token)  # the loser recorded nothing
        assert stored.proposal["amount"] == (50 if winner.voter == PEOPLE[0] else 70)
        assert stored.events.filter(kind=TokenEvent.Kind.PROPOSAL_EDITED).count() == 1
        assert chain.verify(stored) is None


def test_two_approvers_editing_a_one_approval_request_at_once(environment):
    token = create(environment)
    results = run_together([edit_job(token, PEOPLE[0], 50), edit_job(token, PEOPLE[1], 70)])
    assert sorted(r.applied for r in results) == [False, True], results
    stored = Token.objects.get(pk=token.pk)
    output = json.loads(stored.output)["json"]
    assert output["by"] in PEOPLE[:2]
    assert output["proposal"] == stored.proposal and output["edited"] is True
    assert stored.proposal["amount"] in (50, 70) and stored.proposal_version == 2
    assert stored.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1
    assert chain.verify(stored) is None


def test_an_edit_racing_the_deadline(environment):
    offsets_ms = [-50 + index * 1050 / 11 for index in range(12)]
    random.Random(20261207).shuffle(offsets_ms)
    outcomes = []
    for offset_ms in offsets_ms:
        start = timezone.now()
        token = create(
            environment,
            timeout="60s",
            now=start + timedelta(milliseconds=offset_ms) - timedelta(seconds=60),
        )
        results = run_together([lifecycle.token_expire_due, edit_job(token, PEOPLE[0], 5)])
        decided = results[1]
        stored = Token.objects.get(pk=token.pk)
        if stored.status == Token.Status.COMPLETED:
            assert decided.applied and decided.edited
            assert stored.completed_at < stored.timeout_at
            assert json.loads(stored.output)["json"]["proposal"] == {**PROPOSAL, "amount": 5}
            assert stored.proposal_version == 2
        else:
            assert stored.status == Token.Status.TIMED_OUT
            assert not decided.applied and not decided.edited
            assert stored.proposal == PROPOSAL and stored.proposal_version == 1  # unchanged
            assert not stored.events.filter(kind=TokenEvent.Kind.COMPLETED).exists()
        assert chain.verify(stored) is None
        outcomes.append((offset_ms, stored.status))
    by_offset = sorted(outcomes)
    assert by_offset[0][1] == Token.Status.TIMED_OUT, by_offset
    assert by_offset[-1][1] == Token.Status.COMPLETED, by_offset
