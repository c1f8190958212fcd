"""Per-environment AAP policies over real HTTP with the official SDK (its Gate and Client,
unchanged): a rule approves or denies without anyone deciding (the rule in the audit trail
and the note), routes to named approvers with a quorum and a deadline (a personal e-mail link
each), or no rule matches and a member decides as before."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from agentapprovalprotocol import Allow, Call, Client, Deny, Gate
from django.core import mail
from django.test import Client as PageClient

from tests.surfaces.aap.conftest import complete, new_key
from tokens.delivery import outbox
from tokens.domain.aap import instances, policies
from tokens.domain.links import personal_url
from tokens.models import AapRequest, Environment, OutboxMessage, Recipient, Token, TokenEvent

pytestmark = pytest.mark.django_db(transaction=True)


def rule(environment: Environment, name: str, tool: str, action: str, **fields: object) -> int:
    data = policies.RuleInput(name=name, tool_pattern=tool, action=action, **fields)  # type: ignore[arg-type]
    return policies.rule_save(environment=environment, data=data).pk


def call(tool: str, **arguments: object) -> Call:
    return Call(key=str(uuid.uuid4()), tool=tool, arguments=arguments or {"n": 1})


def ask(base: str, credential: str, tool: str, timeout: str = "1h"):
    """One request through the SDK's client, as the gate makes it (no waiting)."""
    return Client(base, credential).create(
        {"tool": tool, "arguments": {"to": "all"}, "timeout": timeout}, new_key()
    )


def token_of(request_id: str) -> Token:
    return AapRequest.objects.select_related("token").get(pk=request_id).token


def test_an_approve_rule_lets_the_gate_run_the_call_without_anyone_deciding(
    aap_web, base, credential, environment
) -> None:
    rule(environment, "Reads are safe", "read_*", "approve")
    gate = Gate(Client(base, credential), wait_limit=5)
    with gate.guard(call("read_file", path="/etc/motd")) as verdict:
        assert isinstance(verdict, Allow), verdict  # consumed, within expires_at
        ran = True
    assert ran
    request = Client(base, credential).get(verdict.request_id)
    assert request.status == "approved"
    assert request.decision is not None
    assert request.decision.note == 'Approved by the AAP policy rule "Reads are safe".'
    assert request.consumption is not None and request.consumption.outcome is not None
    token = token_of(verdict.request_id)
    assert token.decision == "approved" and token.approvers == []
    decided = TokenEvent.objects.get(token=token, kind=TokenEvent.Kind.COMPLETED)
    assert decided.credential == TokenEvent.Credential.AAP_POLICY and decided.user_id is None
    assert decided.detail["rule"] == "Reads are safe"
    assert decided.actor_label == "policy: Reads are safe"
    assert not OutboxMessage.objects.filter(kind=OutboxMessage.Kind.APPROVAL_EMAIL).exists()
    # Consumable once, as a person's approval: a second consume is refused.
    again = httpx.post(
        f"{base}/v1/requests/{verdict.request_id}/consume",
        headers={"Authorization": f"Bearer {credential}", "Idempotency-Key": new_key()},
        timeout=10,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_consumed"


def test_a_deny_rule_denies_with_the_rule_as_the_note(
    aap_web, base, credential, environment
) -> None:
    rule(environment, "No mass mail", "send_*", "deny")
    verdict = Gate(Client(base, credential), wait_limit=5).check(call("send_newsletter"))
    assert isinstance(verdict, Deny) and verdict.status == "denied", verdict
    assert "No mass mail" in verdict.reason
    request = Client(base, credential).get(verdict.request_id)
    assert request.decision is not None and request.decision.expires_at is None
    assert request.decision.note == 'Denied by the AAP policy rule "No mass mail".'
    assert token_of(verdict.request_id).decision == "rejected"


def test_a_route_rule_asks_its_approvers_by_personal_link_and_needs_its_quorum(
    aap_web, base, credential, environment, settings
) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1  # send on this thread
    rule(
        environment,
        "Deploys",
        "deploy_*",
        "route",
        approvers="lead@example.com, oncall@example.com",
        required_approvals="2",
        deadline="30m",
        remind_after="10m",
        escalate_after="20m",
        escalate_to="cto@example.com",
    )
    asked = ask(base, credential, "deploy_api", timeout="2h")
    assert asked.status == "pending"
    # The rule's deadline is shorter than the agent's 2 h: it wins.
    assert timedelta(minutes=29) < asked.deadline_at - asked.created_at <= timedelta(minutes=30)
    token = token_of(asked.id)
    assert token.approvers == ["lead@example.com", "oncall@example.com"]
    assert token.required_approvals == 2
    follow_ups = {
        row.kind: (row.next_attempt_at - token.created_at, row.payload)
        for row in OutboxMessage.objects.filter(token=token).exclude(
            kind=OutboxMessage.Kind.APPROVAL_EMAIL
        )
    }
    assert follow_ups == {
        OutboxMessage.Kind.REMINDER: (timedelta(minutes=10), {}),
        OutboxMessage.Kind.ESCALATION: (timedelta(minutes=20), {"to": ["cto@example.com"]}),
    }
    outbox.deliver_due()
    links = {}
    for message in mail.outbox:  # one e-mail each, carrying that approver's own link
        recipient = Recipient.objects.get(token=token, email=message.to[0])
        url = personal_url(token, recipient, base="http://testserver")
        assert url in message.body
        links[message.to[0]] = url.removeprefix("http://testserver")
    assert set(links) == {"lead@example.com", "oncall@example.com"}
    for number, address in enumerate(sorted(links), start=1):
        page = PageClient(enforce_csrf_checks=True)
        path = links[address]
        html = page.get(path).content.decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert csrf, html[:500]
        page.post(path, {"csrfmiddlewaretoken": csrf.group(1), "decision": "approved"})
        status = Client(base, credential).get(asked.id).status
        assert status == ("pending" if number == 1 else "approved"), (number, status)


def test_an_instance_rule_matches_only_that_instance(
    aap_web, base, credential, environment
) -> None:
    other, other_secret = instances.instance_create_for_environment(
        environment=environment, name="ci-runner"
    )
    rule(environment, "CI may deploy", "*", "approve", instance=str(other.pk))
    assert ask(base, other_secret, "deploy_api").status == "approved"
    assert ask(base, credential, "deploy_api").status == "pending"


def test_the_first_matching_rule_wins_and_order_can_change(
    aap_web, base, credential, environment
) -> None:
    rule(environment, "Not prod", "deploy_prod", "deny")
    second = rule(environment, "Other deploys", "deploy_*", "approve")
    assert ask(base, credential, "deploy_prod").status == "denied"
    assert ask(base, credential, "deploy_staging").status == "approved"
    assert policies.rule_move(environment=environment, rule_id=second, offset=-1)
    assert ask(base, credential, "deploy_prod").status == "approved"


def test_without_a_matching_rule_a_member_decides_as_before(
    aap_web, base, credential, environment, api_key
) -> None:
    rule(environment, "Reads are safe", "read_*", "approve")
    asked = ask(base, credential, "issue_refund")
    assert asked.status == "pending"
    token = token_of(asked.id)
    assert token.approvers == [] and token.required_approvals == 1
    request = AapRequest.objects.select_related("token").get(pk=asked.id)
    response = complete(aap_web.url, api_key, request, {"status": "approved", "comment": "ok"})
    assert response.status_code == 200
    decided = Client(base, credential).get(asked.id)
    assert decided.status == "approved" and decided.decision is not None
    assert decided.decision.note == "ok"


def test_the_environments_window_sets_expires_at(aap_web, base, credential, environment) -> None:
    rule(environment, "All", "*", "approve")
    default = ask(base, credential, "a")
    assert default.decision is not None and default.decision.expires_at is not None
    assert default.decision.expires_at - default.decision.decided_at == timedelta(seconds=600)
    policies.window_set(environment=environment, value="90s")
    short = ask(base, credential, "b")
    assert short.decision is not None and short.decision.expires_at is not None
    assert short.decision.expires_at - short.decision.decided_at <= timedelta(seconds=90)
    assert short.decision.expires_at - short.decision.decided_at > timedelta(seconds=85)


def test_another_environments_policy_never_applies(
    aap_web, base, credential, other_credential, environment, other_environment
) -> None:
    rule(other_environment, "Anything goes", "*", "approve")
    assert ask(base, credential, "deploy_api").status == "pending"
    assert ask(base, other_credential, "deploy_api").status == "approved"


def test_a_retry_of_a_decided_create_returns_the_same_request(
    aap_web, base, credential, environment
) -> None:
    rule(environment, "All", "*", "deny")
    key = new_key()
    body = {"tool": "x", "arguments": {}, "timeout": "1h"}
    headers = {"Authorization": f"Bearer {credential}", "Idempotency-Key": key}
    first = httpx.post(f"{base}/v1/requests", json=body, headers=headers, timeout=10)
    # The policy changes between the two: the retry is the same request, not a new decision.
    policies.rule_save(
        environment=environment,
        data=policies.RuleInput(name="All", tool_pattern="*", action="approve"),
        rule_id=policies.rule_list(environment=environment)[0].pk,
    )
    second = httpx.post(f"{base}/v1/requests", json=body, headers=headers, timeout=10)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["status"] == "denied"
    assert AapRequest.objects.count() == 1
