"""The dashboard's deadline rules page: project admins set the default onTimeout by tag."""

from __future__ import annotations

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of
from tokens.models import DeadlineRule

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/deadline-rules"


def test_an_admin_adds_and_removes_rules_and_creates_follow_them(
    admin_member, environment, make_token
):
    def create(**kwargs):
        environment.refresh_from_db()  # as a create's request loads it, with the key
        return make_token(environment, **kwargs)

    client = client_for(admin_member)
    assert client.get(PAGE).status_code == 200
    response = csrf_post(client, f"{PAGE}/new", {"tag": "payments", "action": "reject"})
    assert response.status_code == 302
    assert messages_of(response) == ["Requests tagged payments now: reject."]
    escalate = {
        "tag": "",
        "action": "escalate",
        "escalate_to": "lead@example.com, boss@example.com",
        "second_timeout": "2h",
        "then": "approve",
    }
    assert csrf_post(client, f"{PAGE}/new", escalate).status_code == 302
    page = client.get(PAGE).content.decode()
    assert 'data-rule="payments"' in page and "ask lead@example.com, boss@example.com" in page

    assert create(timeout="1h", tags=["payments"]).on_timeout == {
        "action": "reject",
        "rule": "payments",
    }
    other = create(timeout="1h", tags=["misc"])
    assert other.on_timeout["escalateTo"] == ["lead@example.com", "boss@example.com"]
    assert other.timeout_outcome == "approved"

    rule = DeadlineRule.objects.get(tag="payments")
    assert csrf_post(client, f"{PAGE}/{rule.pk}/delete").status_code == 302
    assert create(timeout="1h", tags=["payments"]).on_timeout["action"] == "escalate"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "escalate", "second_timeout": "2h"}, "escalateTo"),
        ({"action": "escalate", "escalate_to": "a@b.co", "second_timeout": "soon"}, "second"),
        ({"action": "reject", "escalate_to": "a@b.co"}, "Only an escalation"),
        ({"action": "never"}, "Select a valid choice"),
    ],
)
def test_bad_rules_are_refused_with_a_message(admin_member, data, message):
    response = csrf_post(client_for(admin_member), f"{PAGE}/new", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not DeadlineRule.objects.exists()


def test_one_rule_per_tag(admin_member):
    client = client_for(admin_member)
    csrf_post(client, f"{PAGE}/new", {"tag": "x", "action": "reject"})
    response = csrf_post(client, f"{PAGE}/new", {"tag": "x", "action": "approve"})
    assert response.status_code == 400 and "already" in response.content.decode()
    assert DeadlineRule.objects.get().action == "reject"


def test_only_admins_of_the_project(approver, outsider, admin_member):
    assert client_for(approver).get(PAGE).status_code == 404
    assert client_for(outsider).get(PAGE).status_code == 404
    response = csrf_post(client_for(approver), f"{PAGE}/new", {"tag": "", "action": "reject"})
    assert response.status_code == 404 and not DeadlineRule.objects.exists()
