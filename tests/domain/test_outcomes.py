"""What happens at the deadline (``onTimeout``, tokens.domain.outcomes), on real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.domain.test_races import run_together
from tokens.delivery import outbox
from tokens.domain import actors, consumption, deadline, decide, lifecycle, outcomes
from tokens.domain.exceptions import InvalidInput
from tokens.models import DeadlineRule, OutboxMessage, Recipient, Token, TokenEvent

SYSTEM = actors.Actor.system()


def overdue(token: Token, by: timedelta = timedelta(seconds=1)) -> Token:
    """Move the deadline into the past on the database's own clock (the deadline trigger
    checks the real clock, so an injected ``now`` would not exercise it)."""
    Token.objects.filter(pk=token.pk).update(timeout_at=timezone.now() - by)
    return Token.objects.get(pk=token.pk)


def output_of(token: Token) -> dict:
    state = deadline.effective(token, timezone.now())
    return json.loads(state.output)["json"]


@pytest.mark.django_db
@pytest.mark.parametrize(("asked", "decision"), [("reject", "rejected"), ("approve", "approved")])
def test_the_deadline_rule_decides_and_readers_agree_before_and_after_the_sweep(
    make_token, asked, decision
):
    token = overdue(make_token(timeout="1h", on_timeout=asked))
    assert token.on_timeout == {"action": asked}
    before = deadline.effective(token, timezone.now())
    assert before.status == Token.Status.COMPLETED and not before.output_is_error
    assert Token.objects.filter(deadline.reads_as_q(Token.Status.COMPLETED)).count() == 1
    assert not Token.objects.filter(deadline.reads_as_q(Token.Status.TIMED_OUT)).exists()

    assert lifecycle.token_expire_due() == 1
    stored = Token.objects.get(pk=token.pk)
    after = deadline.effective(stored, timezone.now())
    assert (stored.status, stored.decision, stored.decided_by_deadline) == (
        Token.Status.COMPLETED,
        decision,
        True,
    )
    assert stored.completed_at == stored.timeout_at == before.completed_at
    assert after.output == before.output and after.output_type == "application/super+json"
    # The shape every human surface writes, so wait.forToken's callers read it alike.
    assert output_of(stored) == {
        "status": decision,
        "by": "deadline rule",
        "decidedBy": "deadline",
        "comment": (
            f"Nobody decided before the deadline; the request's onTimeout rule {decision} it."
        ),
    }
    event = stored.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert event.credential == TokenEvent.Credential.DEADLINE_RULE
    assert event.user_id is None and event.email == "" and event.api_key_id is None
    assert event.actor_label == "deadline rule"
    assert event.detail == {"decision": decision, "rule": "onTimeout"}
    assert lifecycle.token_expire_due() == 0


@pytest.mark.django_db
def test_the_default_still_times_out(make_token):
    token = overdue(make_token(timeout="1h"))
    assert token.on_timeout is None and token.timeout_outcome == ""
    assert lifecycle.token_expire_due() == 1
    assert Token.objects.get(pk=token.pk).status == Token.Status.TIMED_OUT
    explicit = overdue(make_token(timeout="1h", on_timeout="timeout"))
    assert explicit.on_timeout is None
    assert lifecycle.token_expire_due() == 1
    assert Token.objects.get(pk=explicit.pk).status == Token.Status.TIMED_OUT


@pytest.mark.django_db
def test_a_late_completion_meets_the_rules_decision(make_token):
    token = overdue(make_token(timeout="1h", on_timeout="reject"))
    result = lifecycle.token_complete(token=token, actor=SYSTEM, data={"status": "approved"})
    assert not result.applied
    assert result.token.status == Token.Status.COMPLETED and result.token.decision == "rejected"


@pytest.mark.django_db
def test_an_approval_by_the_deadline_gets_its_window_and_can_be_consumed(make_token):
    token = overdue(make_token(timeout="1h", on_timeout="approve", decision_valid_for="10m"))
    # Before any sweep: consume stores the rule's approval first.
    used = consumption.token_consume(token=token, actor=SYSTEM, consumer="worker")
    stored = used.token
    assert stored.decided_by_deadline and stored.decision == "approved"
    assert stored.decision_expires_at == stored.timeout_at + timedelta(minutes=10)
    assert stored.consumed_by == "worker"


@pytest.mark.django_db
def test_a_rejection_by_the_deadline_cannot_be_consumed(make_token):
    token = overdue(make_token(timeout="1h", on_timeout="reject"))
    with pytest.raises(consumption.ConsumptionRefused) as refused:
        consumption.token_consume(token=token, actor=SYSTEM)
    assert refused.value.code == "not_approved"


ESCALATE = {
    "action": "escalate",
    "escalateTo": ["lead@example.com"],
    "timeout": "2h",
    "then": "reject",
}


@pytest.mark.django_db
def test_an_escalation_asks_more_people_at_the_deadline_then_applies_its_then(make_token, settings):
    settings.WAITPOINTS_OUTBOX_SENDERS = 1  # send inline, inside this test's transaction
    now = timezone.now()
    token = make_token(timeout="1h", approvers=["ann@example.com"], on_timeout=ESCALATE, now=now)
    assert token.timeout_at == now + timedelta(hours=3)  # the second deadline
    assert outcomes.shown(token.on_timeout) == ESCALATE and token.timeout_outcome == "rejected"
    assert outcomes.escalates_at(token.on_timeout) == now + timedelta(hours=1)
    row = OutboxMessage.objects.get(token=token, kind=OutboxMessage.Kind.ESCALATION)
    assert row.next_attempt_at == now + timedelta(hours=1)
    assert row.payload == {"to": ["lead@example.com"], "rule": "onTimeout"}

    # The first deadline falls: the outbox asks the lead (as the deadline rule).
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    outbox.deliver_due()
    token.refresh_from_db()
    assert token.approvers == ["ann@example.com", "lead@example.com"]
    assert Recipient.objects.filter(token=token, email="lead@example.com").exists()
    escalated = token.events.get(kind=TokenEvent.Kind.ESCALATED)
    assert escalated.credential == TokenEvent.Credential.DEADLINE_RULE
    assert escalated.detail == {"to": ["lead@example.com"], "rule": "onTimeout"}
    assert deadline.is_waiting(token, timezone.now())  # the lead has until the second one

    overdue(token)
    assert lifecycle.token_expire_due() == 1
    stored = Token.objects.get(pk=token.pk)
    assert stored.decision == "rejected" and stored.decided_by_deadline


@pytest.mark.django_db
def test_extending_an_escalating_token_moves_only_its_second_deadline(make_token):
    now = timezone.now()
    token = make_token(timeout="1h", approvers=["ann@example.com"], on_timeout=ESCALATE, now=now)
    lifecycle.token_extend(token=token, actor=SYSTEM, timeout="5h")
    token.refresh_from_db()
    assert outcomes.escalates_at(token.on_timeout) == now + timedelta(hours=1)
    row = OutboxMessage.objects.get(token=token, kind=OutboxMessage.Kind.ESCALATION)
    assert row.next_attempt_at == now + timedelta(hours=1)
    assert token.timeout_outcome == "rejected"  # the extended deadline still brings its then


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ("later", "Invalid onTimeout: expected"),
        (7, "Invalid onTimeout: expected"),
        ("escalate", 'Invalid onTimeout: "escalate" needs whom and how long'),
        ({"action": "reject", "then": "approve"}, "Invalid onTimeout: only an escalation"),
        ({"action": "escalate", "timeout": "1h"}, "Invalid onTimeout.escalateTo"),
        ({"action": "escalate", "escalateTo": [], "timeout": "1h"}, "Invalid onTimeout.escalateTo"),
        (
            {"action": "escalate", "escalateTo": ["nope"], "timeout": "1h"},
            "Invalid onTimeout.escalateTo",
        ),
        ({"action": "escalate", "escalateTo": ["a@b.co"]}, "Invalid onTimeout.timeout"),
        (
            {"action": "escalate", "escalateTo": ["a@b.co"], "timeout": "0s"},
            "Invalid onTimeout.timeout",
        ),
        (
            {"action": "escalate", "escalateTo": ["a@b.co"], "timeout": "1h", "then": "escalate"},
            "Invalid onTimeout.then",
        ),
        (
            {"action": "escalate", "escalateTo": ["a@b.co"], "timeout": "1h", "after": "1h"},
            "Invalid onTimeout: unknown field 'after'",
        ),
    ],
)
def test_bad_outcomes_are_refused_and_nothing_is_created(make_token, asked, message):
    with pytest.raises(InvalidInput) as invalid:
        make_token(timeout="1h", on_timeout=asked)
    assert invalid.value.message.startswith(message), invalid.value.message
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_an_outcome_needs_a_deadline(make_token, settings):
    settings.WAITPOINTS_DEFAULT_TIMEOUT = "none"
    with pytest.raises(InvalidInput, match="no timeout"):
        make_token(on_timeout="reject")


@pytest.mark.django_db
def test_environment_rules_set_the_default_by_tag(make_token, environment, other_environment):
    for rule in (
        DeadlineRule(environment=environment, tag="payments", action="reject"),
        DeadlineRule(environment=environment, tag="", action="approve"),
        DeadlineRule(
            environment=environment,
            tag="deploy",
            action="escalate",
            escalate_to=["oncall@example.com"],
            second_timeout=timedelta(minutes=30),
        ),
    ):
        outcomes.deadline_rule_save(rule=rule)
    environment.refresh_from_db()
    tagged = make_token(timeout="1h", tags=["misc", "payments", "deploy"])
    assert tagged.on_timeout == {"action": "reject", "rule": "payments"}  # its first ruled tag
    assert tagged.timeout_outcome == "rejected"
    deploy = make_token(timeout="1h", tags=["deploy"])
    assert outcomes.shown(deploy.on_timeout) == {
        "action": "escalate",
        "escalateTo": ["oncall@example.com"],
        "timeout": "30m",
        "then": "timeout",
        "rule": "deploy",
    }
    assert deploy.timeout_outcome == ""
    other = make_token(timeout="1h", tags=["misc"])
    assert other.on_timeout == {"action": "approve", "rule": "*"}
    asked = make_token(timeout="1h", tags=["payments"], on_timeout="timeout")
    assert asked.on_timeout is None and asked.timeout_outcome == ""  # the request wins
    elsewhere = make_token(other_environment, timeout="1h", tags=["payments"])
    assert elsewhere.on_timeout is None

    overdue(tagged)
    lifecycle.token_expire_due()
    event = tagged.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert event.detail["environmentRule"] == "payments"

    outcomes.deadline_rules_delete(rules=DeadlineRule.objects.filter(environment=environment))
    environment.refresh_from_db()
    assert not environment.has_deadline_rules
    assert make_token(timeout="1h", tags=["payments"]).on_timeout is None


@pytest.mark.django_db
def test_rules_are_checked_as_a_create_would_be(environment):
    bad = DeadlineRule(environment=environment, tag="x", action="escalate", escalate_to=["no"])
    with pytest.raises(InvalidInput):
        outcomes.deadline_rule_save(rule=bad)
    odd = DeadlineRule(environment=environment, tag="x", action="reject", escalate_to=["a@b.co"])
    with pytest.raises(InvalidInput, match="Only an escalation"):
        outcomes.deadline_rule_save(rule=odd)
    assert not DeadlineRule.objects.exists()


# ------------------------------------------------------------------------------------------------
# Races on real concurrent PostgreSQL connections
# ------------------------------------------------------------------------------------------------


def person_approves(token: Token):
    def run() -> str:
        result = decide.decide(
            token=Token.objects.get(pk=token.pk),
            actor=actors.Actor(channel=TokenEvent.Channel.DASHBOARD, email="ann@example.com"),
            authority=decide.Authority.recipient(),
            voter=decide.Voter.for_email("ann@example.com"),
            decision="approved",
        )
        return "decided" if result.applied else "late"

    return run


@pytest.mark.django_db(transaction=True)
def test_an_escalation_at_the_deadline_racing_a_late_decision(make_token):
    """At the first deadline the escalation and the person's decision meet: the decision
    always resolves the token (it still waits for its second deadline); the escalation either
    came first (then the lead was asked, before the decision) or found it resolved and asked
    nobody."""
    seen = set()
    for _ in range(8):
        token = make_token(timeout="1h", approvers=["ann@example.com"], on_timeout=ESCALATE)
        results = run_together(
            [
                lambda t=token: outcomes_escalate(t),
                person_approves(token),
            ]
        )
        stored = Token.objects.get(pk=token.pk)
        assert results[1] == "decided"
        assert (stored.status, stored.decision, stored.decided_by_deadline) == (
            Token.Status.COMPLETED,
            "approved",
            False,
        )
        kinds = list(stored.events.order_by("id").values_list("kind", flat=True))
        assert kinds.count(TokenEvent.Kind.COMPLETED) == 1
        asked_lead = OutboxMessage.objects.filter(
            token=token, kind=OutboxMessage.Kind.APPROVAL_EMAIL, payload__to="lead@example.com"
        ).exists()
        if TokenEvent.Kind.ESCALATED in kinds:
            assert kinds.index(TokenEvent.Kind.ESCALATED) < kinds.index(TokenEvent.Kind.COMPLETED)
            assert asked_lead and results[0] == 1
            seen.add("escalated first")
        else:
            assert not asked_lead and results[0] == 0
            assert stored.approvers == ["ann@example.com"]
            seen.add("decided first")
    assert seen  # each iteration checked one of the two orders


def outcomes_escalate(token: Token) -> int:
    from tokens.domain import approvals

    return approvals.token_escalate(
        token=Token.objects.get(pk=token.pk), addresses=["lead@example.com"], by_rule=True
    )


@pytest.mark.django_db(transaction=True)
def test_the_deadline_rule_racing_a_late_decision_resolves_once(environment):
    """The rule's rejection at the (second) deadline against a person's approval arriving
    around it: exactly one wins; the person's only if it committed before the deadline."""
    results = []
    offsets_ms = [-40, -20, -10, 0, 10, 20, 40, 80, 160, 320, 640, 1000]
    for offset_ms in offsets_ms:
        start = timezone.now()
        token = lifecycle.token_create(
            environment=environment,
            actor=SYSTEM,
            timeout="60s",
            approvers=["ann@example.com"],
            on_timeout="reject",
            now=start + timedelta(milliseconds=offset_ms) - timedelta(seconds=60),
        ).token
        outcome = run_together([lambda: lifecycle.token_expire_due(), person_approves(token)])
        stored = Token.objects.get(pk=token.pk)
        completions = stored.events.filter(kind=TokenEvent.Kind.COMPLETED)
        assert completions.count() == 1
        assert stored.status == Token.Status.COMPLETED
        if stored.decided_by_deadline:
            assert stored.decision == "rejected" and outcome[1] == "late"
            assert stored.completed_at == stored.timeout_at
            assert completions.get().credential == TokenEvent.Credential.DEADLINE_RULE
        else:
            assert stored.decision == "approved" and outcome[1] == "decided"
            assert stored.completed_at < stored.timeout_at
            assert outcome[0] == 0
        results.append((offset_ms, stored.decided_by_deadline))
    assert results[0][1] is True  # already past: the rule decided
    assert results[-1][1] is False  # a second ahead: the person did
