"""The AAP policy's rules, unit by unit: what a glob matches, which deadline wins, the order
kept 1 … n under concurrent changes, and a rule's decision as the rest of the service sees it
(the token's audit trail, the instance's receiver event)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from tokens.domain import actors
from tokens.domain.aap import instances, policies
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapInstance, AapPolicyRule, OutboxMessage, Token, TokenEvent

BODY = {"tool": "deploy_api", "arguments": {"env": "prod"}, "timeout": "1h"}


def rule_of(**fields: object) -> AapPolicyRule:
    return AapPolicyRule(**{"name": "r", "tool_pattern": "*", "action": "approve", **fields})


def save(environment, name: str, tool: str = "*", action: str = "approve", **fields) -> int:
    data = policies.RuleInput(name=name, tool_pattern=tool, action=action, **fields)
    return policies.rule_save(environment=environment, data=data).pk


@pytest.mark.parametrize(
    ("pattern", "server_pattern", "tool", "server", "expected"),
    [
        ("send_*", "", "send_email", None, True),
        ("send_*", "", "resend_email", None, False),
        ("send_*", "", "Send_email", None, False),  # tool names are case-sensitive
        ("deploy_?", "", "deploy_a", None, True),
        ("deploy_?", "", "deploy_ab", None, False),
        ("deploy_[ab]", "", "deploy_b", None, True),
        ("deploy_[!ab]", "", "deploy_b", None, False),
        ("*", "git*", "push", "github", True),
        ("*", "git*", "push", "slack", False),
        ("*", "git*", "push", None, False),  # a server glob needs a server
        ("*", "", "push", "anything", True),
    ],
)
def test_what_a_rule_matches(pattern, server_pattern, tool, server, expected) -> None:
    rule = rule_of(tool_pattern=pattern, server_pattern=server_pattern)
    assert policies.matches(rule, tool=tool, server=server, instance_id=None) is expected


@pytest.mark.django_db
def test_the_shortest_of_the_agents_the_rules_and_the_services_deadline_wins(settings) -> None:
    settings.WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS = 3600
    route = rule_of(action="route", deadline=timedelta(minutes=30))
    verdict = policies.Verdict(rule=route, window=timedelta(minutes=10))
    assert policies.deadline_for(verdict, timedelta(hours=2)) == timedelta(minutes=30)
    assert policies.deadline_for(verdict, timedelta(minutes=5)) == timedelta(minutes=5)
    unrouted = policies.Verdict(rule=None, window=timedelta(minutes=10))
    assert policies.deadline_for(unrouted, timedelta(hours=5)) == timedelta(hours=1)


@pytest.mark.django_db
def test_a_rule_decision_is_audited_with_the_rule_and_notifies_the_receiver(environment) -> None:
    instance, _ = instances.instance_create_for_environment(environment=environment, name="a")
    AapInstance.objects.filter(pk=instance.pk).update(delivery_url="https://receiver.example")
    instance.refresh_from_db()
    save(environment, "Deploys are fine", "deploy_*")
    request, created = aap_requests.request_create(
        instance=instance, key="k", body=BODY, actor=actors.Actor.system()
    )
    assert created
    token = Token.objects.get(pk=request.token_id)
    assert token.status == Token.Status.COMPLETED and token.decision == "approved"
    assert token.decision_expires_at is not None and token.completed_at is not None
    assert token.decision_expires_at - token.completed_at == timedelta(seconds=600)
    kinds = list(token.events.order_by("seq").values_list("kind", "credential"))
    assert kinds == [
        (TokenEvent.Kind.CREATED, TokenEvent.Credential.SYSTEM),
        (TokenEvent.Kind.COMPLETED, TokenEvent.Credential.AAP_POLICY),
    ]
    completed = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert completed.detail["comment"] == 'Approved by the AAP policy rule "Deploys are fine".'
    assert OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT, token=token).exists()
    # The retry finds the request; nothing is decided twice.
    again, created = aap_requests.request_create(
        instance=instance, key="k", body=BODY, actor=actors.Actor.system()
    )
    assert (again.pk, created) == (request.pk, False)
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1


@pytest.mark.django_db
def test_deleting_and_moving_keep_positions_one_to_n(environment) -> None:
    first, second, third = (save(environment, name) for name in ("a", "b", "c"))
    assert policies.rule_delete(environment=environment, rule_id=second)
    assert not policies.rule_delete(environment=environment, rule_id=second)
    assert policies.rule_move(environment=environment, rule_id=third, offset=-1)
    assert not policies.rule_move(environment=environment, rule_id=third, offset=-1)
    assert not policies.rule_move(environment=environment, rule_id=first, offset=1 + 5)
    rows = policies.rule_list(environment=environment)
    assert [(rule.name, rule.position) for rule in rows] == [("c", 1), ("a", 2)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_additions_get_distinct_positions(environment) -> None:
    """Each change holds the policy's row lock: rules added at once on separate connections
    still number 1 … n, also when the first of them creates the policy's row."""
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def add(index: int) -> None:
        try:
            start.wait()
            save(environment, f"rule {index}")
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    positions = sorted(rule.position for rule in policies.rule_list(environment=environment))
    assert positions == [1, 2, 3, 4, 5, 6]


@pytest.mark.django_db
def test_an_instance_rule_of_another_environment_is_refused(environment, other_environment):
    theirs, _ = instances.instance_create_for_environment(environment=other_environment, name="x")
    with pytest.raises(policies.PolicyInvalid) as refused:
        save(environment, "r", instance=str(theirs.pk))
    assert "instance" in refused.value.field_errors
    assert not AapPolicyRule.objects.exists()


def test_follow_ups_after_the_requests_deadline_are_left_out() -> None:
    route = rule_of(
        action="route",
        remind_after=timedelta(minutes=10),
        escalate_after=timedelta(minutes=20),
        escalate_to=["cto@example.com"],
    )
    verdict = policies.Verdict(rule=route, window=timedelta(minutes=10))
    assert policies.follow_ups(verdict, timedelta(hours=1)) == {
        "remind_after": "600s",
        "escalate_after": "1200s",
        "escalate_to": ["cto@example.com"],
    }
    assert policies.follow_ups(verdict, timedelta(minutes=15)) == {"remind_after": "600s"}
    assert policies.follow_ups(verdict, timedelta(minutes=5)) == {}
    assert policies.follow_ups(policies.Verdict(rule=None, window=timedelta(0)), timedelta(1)) == {}
