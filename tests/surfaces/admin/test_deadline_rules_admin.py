"""Deadline rules in the admin: checked as a create's onTimeout, saved through the domain."""

from __future__ import annotations

import pytest
from django.test import Client

from tokens.models import DeadlineRule

pytestmark = pytest.mark.django_db
ADD = "/admin/tokens/deadlinerule/add/"


@pytest.fixture
def support(django_user_model) -> Client:
    client = Client()
    client.force_login(
        django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    )
    return client


def form(environment, **fields) -> dict:
    return {
        "environment": environment.pk,
        "tag": "",
        "action": "timeout",
        "escalate_to": "[]",
        "second_timeout": "",
        "then": "timeout",
        **fields,
    }


def test_it_adds_an_escalation_rule(support, environment):
    data = form(
        environment,
        tag="deploy",
        action="escalate",
        escalate_to='["oncall@example.com"]',
        second_timeout="0:30:00",
    )
    response = support.post(ADD, data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    rule = DeadlineRule.objects.get()
    assert (rule.tag, rule.action, rule.escalate_to) == (
        "deploy",
        "escalate",
        ["oncall@example.com"],
    )
    assert b"deploy" in support.get("/admin/tokens/deadlinerule/").content
    environment.refresh_from_db()
    assert environment.has_deadline_rules  # creates now read the rules
    deleted = support.post(f"/admin/tokens/deadlinerule/{rule.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not DeadlineRule.objects.exists()
    environment.refresh_from_db()
    assert not environment.has_deadline_rules


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "escalate", "escalate_to": '["nope"]', "second_timeout": "1:00:00"}, "e-mail"),
        ({"action": "escalate", "escalate_to": '["a@b.co"]'}, "second deadline"),
        ({"action": "reject", "escalate_to": '["a@b.co"]'}, "Only an escalation"),
    ],
)
def test_it_refuses_a_rule_a_create_would_refuse(support, environment, fields, message):
    response = support.post(ADD, form(environment, **fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DeadlineRule.objects.exists()
