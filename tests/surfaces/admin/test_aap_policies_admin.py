"""Support staff keep AAP policies in Django admin: the same checks as the dashboard (the
domain's), the same saving (positions kept 1 … n), nothing saved on bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from tokens.domain.aap import policies
from tokens.models import AapPolicy, AapPolicyRule

pytestmark = pytest.mark.django_db
RULES = "/admin/tokens/aappolicyrule"


@pytest.fixture
def support(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    client = Client()
    client.force_login(user)
    return client


def form(environment, **fields: object) -> dict[str, object]:
    return {
        "environment": environment.pk,
        "name": "Deploys",
        "tool_pattern": "deploy_*",
        "server_pattern": "",
        "instance": "",
        "action": "route",
        "approvers_text": "lead@example.com",
        "required_approvals": "1",
        "deadline_text": "1h",
        **fields,
    }


def test_support_adds_a_rule_and_sets_the_window(support, environment) -> None:
    response = support.post(f"{RULES}/add/", form(environment))
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AapPolicyRule.objects.get()
    assert (rule.approvers, rule.deadline, rule.position) == (
        ["lead@example.com"],
        timedelta(hours=1),
        1,
    )
    assert support.post(f"{RULES}/add/", form(environment, name="Two")).status_code == 302
    assert AapPolicyRule.objects.get(name="Two").position == 2
    policy = AapPolicy.objects.get()
    changed = support.post(f"/admin/tokens/aappolicy/{policy.pk}/change/", {"window": "2m"})
    assert changed.status_code == 302, changed.content.decode()[:3000]
    policy.refresh_from_db()
    assert policy.approval_valid_for == timedelta(minutes=2)
    page = support.get(f"/admin/tokens/aappolicy/{policy.pk}/change/").content.decode()
    assert "1. <a" in page and "Deploys" in page
    assert support.get(f"{RULES}/{rule.pk}/change/").status_code == 200
    support.post(f"{RULES}/{rule.pk}/delete/", {"post": "yes"})
    assert list(AapPolicyRule.objects.values_list("name", "position")) == [("Two", 1)]


def test_bad_input_is_refused_as_on_the_dashboard(support, environment) -> None:
    response = support.post(
        f"{RULES}/add/", form(environment, tool_pattern="x[", approvers_text="")
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "a [ opens a set of characters" in html and "A route names at least one" in html
    assert not AapPolicyRule.objects.exists()
    policies.window_set(environment=environment, value="")
    policy = AapPolicy.objects.get()
    bad = support.post(f"/admin/tokens/aappolicy/{policy.pk}/change/", {"window": "2d"})
    assert bad.status_code == 200 and "A duration from 10s to 1d" in bad.content.decode()
    policy.refresh_from_db()
    assert policy.approval_valid_for is None
