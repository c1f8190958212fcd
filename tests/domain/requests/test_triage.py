"""Requests approvers can decide (7): "Waiting for me" as a triage queue (sent to me first, then
the soonest deadline; filters by project and environment, shown as removable chips), and the
markup the dashboard script needs for its confirmations and closed deadlines."""

from __future__ import annotations

import re

from tests.surfaces.dashboard.conftest import client_for, member
from tokens.domain import tenancy
from tokens.models import Membership


def ids_on(html: str) -> list[str]:
    return re.findall(r'<tr data-token="([^"]+)"', html)


def test_requests_sent_to_me_come_first_then_the_soonest_deadline(environment, make_token):
    april = member(environment, "april", Membership.Role.APPROVER)
    later = make_token(timeout="3h")
    soon = make_token(timeout="20m")
    none = make_token(timeout="364d")
    mine_late = make_token(timeout="5h", approvers=["april@example.com"])
    mine_soon = make_token(timeout="2h", approvers=["april@example.com"])
    html = client_for(april).get("/").content.decode()
    assert ids_on(html) == [t.friendly_id for t in (mine_soon, mine_late, soon, later, none)]
    assert html.count('class="assigned-badge">Sent to you') == 2


def test_the_queue_filters_by_project_and_environment(environment, make_token):
    april = member(environment, "april", Membership.Role.APPROVER)
    prod = tenancy.environment_get_or_create(project_slug="alice", slug="prod")
    other = tenancy.environment_get_or_create(project_slug="zeta", slug="dev")
    Membership.objects.create(user=april, project=other.project, role="approver")
    dev_token = make_token(timeout="1h")
    prod_token = make_token(prod, timeout="1h")
    zeta_token = make_token(other, timeout="1h")
    client = client_for(april)
    assert set(ids_on(client.get("/").content.decode())) == {
        dev_token.friendly_id,
        prod_token.friendly_id,
        zeta_token.friendly_id,
    }
    html = client.get("/?project=alice&env=prod").content.decode()
    assert ids_on(html) == [prod_token.friendly_id]
    assert 'href="/?env=prod" aria-label="Remove the project filter alice"' in html
    assert 'href="/?project=alice" aria-label="Remove the environment filter prod"' in html
    # Unknown values filter nothing (and show no chip).
    html = client.get("/?project=nope&env=moon").content.decode()
    assert len(ids_on(html)) == 3 and "Remove the" not in html


def test_quick_approve_in_production_asks_once_more_and_forms_know_the_deadline(
    environment, make_token
):
    april = member(environment, "april", Membership.Role.APPROVER)
    prod = tenancy.environment_get_or_create(project_slug="alice", slug="prod")
    token = make_token(prod, timeout="1h", title="Refund 3,400 EUR")
    dev = make_token(timeout="1h")
    html = client_for(april).get("/").content.decode()
    assert 'data-confirm="Approve &quot;Refund 3,400 EUR&quot; in production (alice)?"' in html
    assert html.count("data-confirm=") == 1  # not for dev
    assert f'data-deadline="{token.timeout_at.isoformat()}"' in html
    assert 'data-title="Refund 3,400 EUR" data-env="alice/prod"' in html
    assert f'data-title="{dev.friendly_id}" data-env="alice/dev"' in html
    detail = client_for(april).get(f"/tokens/{token.friendly_id}").content.decode()
    assert 'class="decide-form" data-deadline="' in detail


def test_after_a_decision_from_the_queue_the_next_request_opens(environment, make_token):
    from tests.surfaces.dashboard.conftest import csrf_post

    april = member(environment, "april", Membership.Role.APPROVER)
    first = make_token(timeout="10m")
    voted = make_token(timeout="15m", required_approvals=2)
    second = make_token(timeout="20m")
    client = client_for(april)
    home = client.get("/").content.decode()
    assert f'href="/tokens/{first.friendly_id}?queue=1"' in home
    page = client.get(f"/tokens/{first.friendly_id}?queue=1").content.decode()
    assert '<input type="hidden" name="queue" value="1">' in page

    response = csrf_post(client, f"/tokens/{voted.friendly_id}/approve", {"queue": "1"})
    assert response["Location"] == f"/tokens/{first.friendly_id}?queue=1"
    response = csrf_post(client, f"/tokens/{first.friendly_id}/approve", {"queue": "1"})
    # The token april already voted on is not offered again.
    assert response["Location"] == f"/tokens/{second.friendly_id}?queue=1"
    response = csrf_post(client, f"/tokens/{second.friendly_id}/reject", {"queue": "1"})
    assert response["Location"] == "/"
    assert "Nothing else is waiting for you." in client.get("/").content.decode()
    # Without the queue marker (a token opened from a list or a link) it stays on the token.
    other = make_token(timeout="1h")
    response = csrf_post(client, f"/tokens/{other.friendly_id}/approve", {})
    assert response["Location"] == f"/tokens/{other.friendly_id}"
