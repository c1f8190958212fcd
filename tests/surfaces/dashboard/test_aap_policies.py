"""The dashboard's AAP policies page: only the project's admins see or change it; rules are
added, edited, moved and deleted there, the execution window set; every bad field gets its
own message on the page and nothing is saved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member, messages_of
from tokens.domain.aap import instances, policies
from tokens.models import AapPolicy, AapPolicyRule, Membership

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/aap/policies"
GOOD = {
    "name": "Deploys",
    "tool_pattern": "deploy_*",
    "server_pattern": "",
    "instance": "",
    "action": "route",
    "approvers": "lead@example.com, april",
    "required_approvals": "2",
    "deadline": "30m",
}


def names() -> list[str]:
    return list(AapPolicyRule.objects.order_by("position").values_list("name", flat=True))


def test_only_admins_see_or_change_it(viewer, approver, outsider, admin_member, environment):
    policies.rule_save(
        environment=environment,
        data=policies.RuleInput(name="r", tool_pattern="*", action="deny"),
    )
    rule = AapPolicyRule.objects.get()
    for user in (viewer, approver, outsider):
        client = client_for(user)
        assert client.get(PAGE).status_code == 404
        assert csrf_post(client, f"{PAGE}/rules", GOOD).status_code == 404
        assert csrf_post(client, f"{PAGE}/rules/{rule.pk}/delete").status_code == 404
        assert csrf_post(client, f"{PAGE}/window", {"window": "1m"}).status_code == 404
    assert names() == ["r"]
    assert AapPolicy.objects.get().approval_valid_for is None
    assert client_for(None).get(PAGE).status_code == 302  # to the login page
    assert client_for(admin_member).get(PAGE).status_code == 200


def test_the_aap_page_links_to_it(admin_member):
    html = client_for(admin_member).get("/projects/alice/dev/aap").content.decode()
    assert f'href="{PAGE}"' in html


def test_an_admin_adds_edits_moves_and_deletes_rules(admin_member, approver, environment):
    client = client_for(admin_member)
    instance, _ = instances.instance_create_for_environment(environment=environment, name="ci")
    added = csrf_post(client, f"{PAGE}/rules", GOOD)
    assert added.status_code == 302, added.content.decode()[:2000]
    routed = AapPolicyRule.objects.get()
    # A member's username becomes their address.
    assert routed.approvers == ["lead@example.com", "april@example.com"]
    assert (routed.required_approvals, routed.deadline) == (2, timedelta(minutes=30))
    deny = {**GOOD, "name": "No prod", "tool_pattern": "deploy_prod", "action": "deny"}
    deny["instance"] = str(instance.pk)
    assert csrf_post(client, f"{PAGE}/rules", deny).status_code == 302
    assert names() == ["Deploys", "No prod"]
    denying = AapPolicyRule.objects.get(name="No prod")
    assert denying.instance_id == instance.pk and denying.approvers == []
    html = client.get(PAGE).content.decode()
    assert "deploy_prod" in html and "instance ci" in html and "within 30m" in html
    # Move the narrower rule first, edit it, then delete the other.
    moved = csrf_post(client, f"{PAGE}/rules/{denying.pk}/move", {"direction": "up"})
    assert moved.status_code == 302 and names() == ["No prod", "Deploys"]
    assert csrf_post(client, f"{PAGE}/rules/{denying.pk}/move", {"direction": "up"})
    assert names() == ["No prod", "Deploys"]  # already first
    form = client.get(f"{PAGE}?edit={denying.pk}").content.decode()
    assert 'value="No prod"' in form and "Edit the rule" in form
    edited = csrf_post(
        client, f"{PAGE}/rules/{denying.pk}", {**deny, "name": "Prod is closed", "instance": ""}
    )
    assert edited.status_code == 302
    denying.refresh_from_db()
    assert (denying.name, denying.instance_id, denying.position) == ("Prod is closed", None, 1)
    deleted = csrf_post(client, f"{PAGE}/rules/{routed.pk}/delete")
    assert deleted.status_code == 302
    assert names() == ["Prod is closed"]
    assert "removed" in " ".join(messages_of(deleted))


def test_the_window_is_set_and_cleared(admin_member, environment):
    client = client_for(admin_member)
    assert csrf_post(client, f"{PAGE}/window", {"window": "90s"}).status_code == 302
    assert AapPolicy.objects.get(environment=environment).approval_valid_for == timedelta(
        seconds=90
    )
    assert 'value="1m30s"' in client.get(PAGE).content.decode()
    assert csrf_post(client, f"{PAGE}/window", {"window": ""}).status_code == 302
    assert AapPolicy.objects.get(environment=environment).approval_valid_for is None


@pytest.mark.parametrize(
    ("window", "message"),
    [("5s", "A duration from 10s to 1d"), ("25h", "A duration from 10s to 1d"), ("soon", "10s")],
)
def test_a_bad_window_is_refused_on_the_page(admin_member, environment, window, message):
    response = csrf_post(client_for(admin_member), f"{PAGE}/window", {"window": window})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'id="aap-window-error"' in html
    assert f'value="{window}"' in html  # what was typed stays
    assert not AapPolicy.objects.filter(approval_valid_for__isnull=False).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Give the rule a name"),
        ("name", "x" * 101, "At most 100 characters."),
        ("name", "bad\x00name", "A name has no control characters."),
        ("tool_pattern", "a\x00b", "no spaces or control characters"),
        ("approvers", "a\x00@example.com", "Unknown approver"),
        ("tool_pattern", "", "Give a tool pattern"),
        ("tool_pattern", "deploy_[ab", "a [ opens a set of characters that must close"),
        ("tool_pattern", "send mail", "no spaces"),
        ("server_pattern", "git[", "a [ opens a set"),
        ("instance", "not-an-instance", "Unknown instance"),
        ("action", "maybe", "Choose route, approve or deny."),
        ("approvers", "nobody-here", "Unknown approver &#x27;nobody-here&#x27;"),
        ("approvers", "lead@", "Unknown approver &#x27;lead@&#x27;: not an e-mail address"),
        ("approvers", "", "A route names at least one approver."),
        ("required_approvals", "3", "3 approvals cannot come from 2 approvers."),
        ("required_approvals", "zero", "A whole number from 1 to 20."),
        ("deadline", "5s", "A duration from 10s to 1w"),
        ("deadline", "8d", "A duration from 10s to 1w"),
        ("deadline", "later", "A duration from 10s"),
    ],
)
def test_each_bad_field_is_named_on_the_page_and_nothing_is_saved(
    admin_member, approver, environment, field, value, message
):
    response = csrf_post(client_for(admin_member), f"{PAGE}/rules", {**GOOD, field: value})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Check the highlighted fields. Nothing was saved." in html
    assert message in html, html[html.find('class="error"') :][:1500]
    assert 'aria-invalid="true"' in html
    assert not AapPolicyRule.objects.exists()


def test_a_duplicate_name_or_a_bad_edit_changes_nothing(admin_member, approver, environment):
    client = client_for(admin_member)
    assert csrf_post(client, f"{PAGE}/rules", GOOD).status_code == 302
    twice = csrf_post(client, f"{PAGE}/rules", GOOD)
    assert twice.status_code == 400
    assert "Another rule of this environment has this name." in twice.content.decode()
    rule = AapPolicyRule.objects.get()
    bad = csrf_post(client, f"{PAGE}/rules/{rule.pk}", {**GOOD, "tool_pattern": "x["})
    assert bad.status_code == 400 and "Edit the rule" in bad.content.decode()
    rule.refresh_from_db()
    assert rule.tool_pattern == "deploy_*" and names() == ["Deploys"]


def test_another_environments_rules_are_not_found(admin_member, other_environment):
    policies.rule_save(
        environment=other_environment,
        data=policies.RuleInput(name="theirs", tool_pattern="*", action="deny"),
    )
    theirs = AapPolicyRule.objects.get()
    client = client_for(admin_member)
    assert "theirs" not in client.get(PAGE).content.decode()
    assert client.get(f"{PAGE}?edit={theirs.pk}").status_code == 404
    assert csrf_post(client, f"{PAGE}/rules/{theirs.pk}/delete").status_code == 404
    assert csrf_post(client, f"{PAGE}/rules/{theirs.pk}", GOOD).status_code == 404
    assert names() == ["theirs"]
    # An admin of bob's project elsewhere does not make one an admin here.
    bob_admin = member(other_environment, "bea", Membership.Role.ADMIN)
    assert client_for(bob_admin).get(PAGE).status_code == 404


def test_a_rule_for_a_deleted_instance_never_widens_to_any_instance(admin_member, environment):
    instance, _ = instances.instance_create_for_environment(environment=environment, name="old")
    client = client_for(admin_member)
    deny = {**GOOD, "action": "deny", "instance": str(instance.pk)}
    assert csrf_post(client, f"{PAGE}/rules", deny).status_code == 302
    instances.instance_retire(instance=instance)
    rule = AapPolicyRule.objects.get()
    form = client.get(f"{PAGE}?edit={rule.pk}").content.decode()
    assert f'value="{instance.pk}" selected>old (deleted)' in form
    # Saved as it stands, the deleted instance is refused: the admin must choose.
    again = csrf_post(client, f"{PAGE}/rules/{rule.pk}", deny)
    assert again.status_code == 400 and "Unknown instance" in again.content.decode()
    rule.refresh_from_db()
    assert rule.instance_id == instance.pk


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"remind_after": "2h"}, "remind", "It must come before the rule&#x27;s deadline."),
        ({"remind_after": "1s"}, "remind", "or empty for no reminder"),
        ({"escalate_after": "10m"}, "escalate-to", "An escalation asks someone"),
        ({"escalate_to": "cfo@example.com"}, "escalate-after", "Say when to ask them"),
        ({"escalate_after": "10m", "escalate_to": "ghost"}, "escalate-to", "Unknown approver"),
    ],
)
def test_bad_follow_ups_are_named_on_the_page(admin_member, approver, fields, field, message):
    response = csrf_post(client_for(admin_member), f"{PAGE}/rules", {**GOOD, **fields})
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="rule-{field}-error">' in html and message in html
    assert not AapPolicyRule.objects.exists()


def test_follow_ups_are_saved_and_shown(admin_member, approver):
    client = client_for(admin_member)
    fields = {"remind_after": "10m", "escalate_after": "20m", "escalate_to": "april, cfo@x.org"}
    assert csrf_post(client, f"{PAGE}/rules", {**GOOD, **fields}).status_code == 302
    rule = AapPolicyRule.objects.get()
    assert (rule.remind_after, rule.escalate_after) == (
        timedelta(minutes=10),
        timedelta(minutes=20),
    )
    assert rule.escalate_to == ["april@example.com", "cfo@x.org"]
    html = client.get(PAGE).content.decode()
    assert "reminded after 10m" in html and "after 20m also april@example.com, cfo@x.org" in html
