"""Dashboard actions for every role: approve, reject, complete with JSON, force timeout and
cancel (bulk decisions: test_bulk_review.py). Refusals are audited, other projects answer 404,
resolved tokens stay as they are.
"""

from __future__ import annotations

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of, output_of
from tokens.domain import actors, lifecycle
from tokens.models import Token, TokenEvent

pytestmark = pytest.mark.django_db

# action → (URL suffix, form data, the status it leads to, the minimum role)
ACTIONS = {
    "approve": ("approve", {"comment": ""}, Token.Status.COMPLETED, "approver"),
    "reject": ("reject", {"comment": ""}, Token.Status.COMPLETED, "approver"),
    "complete_json": ("complete", {"data": '{"ok": true}'}, Token.Status.COMPLETED, "admin"),
    "force_timeout": ("force-timeout", {}, Token.Status.TIMED_OUT, "admin"),
    "cancel": ("cancel", {"reason": "withdrawn"}, Token.Status.CANCELLED, "admin"),
}
RANK = {"viewer": 1, "approver": 2, "admin": 3}


@pytest.fixture
def users(viewer, approver, admin_member):
    return {"viewer": viewer, "approver": approver, "admin": admin_member}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ["viewer", "approver", "admin"])
def test_every_role_and_action(users, waiting: Token, role: str, action: str) -> None:
    suffix, data, status, needed = ACTIONS[action]
    client = client_for(users[role])
    response = csrf_post(client, f"/tokens/{waiting.friendly_id}/{suffix}", data)

    assert response.status_code == 302
    assert response["Location"] == f"/tokens/{waiting.friendly_id}"
    waiting.refresh_from_db()
    if RANK[role] >= RANK[needed]:
        assert waiting.status == status
        assert not waiting.events.filter(kind=TokenEvent.Kind.DENIED).exists()
    else:
        assert waiting.status == Token.Status.WAITING
        denied = waiting.events.get(kind=TokenEvent.Kind.DENIED)
        assert denied.user == users[role]
        assert denied.channel == TokenEvent.Channel.DASHBOARD
        assert denied.detail == {"action": action}
        assert denied.user_agent == "pytest-browser/1.0"
        assert denied.ip == "127.0.0.1"
        [message] = messages_of(response)
        assert message.startswith(f"Not allowed: as {role} in alice")


@pytest.mark.parametrize("action", ACTIONS)
def test_members_of_other_projects_get_404_and_change_nothing(
    outsider, waiting: Token, action: str
) -> None:
    suffix, data, _status, _needed = ACTIONS[action]
    response = csrf_post(client_for(outsider), f"/tokens/{waiting.friendly_id}/{suffix}", data)
    assert response.status_code == 404
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING
    assert list(waiting.events.values_list("kind", flat=True)) == [TokenEvent.Kind.CREATED]


@pytest.mark.parametrize("action", ACTIONS)
def test_anonymous_posts_go_to_login_and_change_nothing(waiting: Token, action: str) -> None:
    suffix, data, _status, _needed = ACTIONS[action]
    response = csrf_post(client_for(None), f"/tokens/{waiting.friendly_id}/{suffix}", data)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_are_post_only(admin_member, waiting: Token, action: str) -> None:
    suffix = ACTIONS[action][0]
    response = client_for(admin_member).get(f"/tokens/{waiting.friendly_id}/{suffix}")
    assert response.status_code == 405
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING


def test_actions_need_the_csrf_token(admin_member, waiting: Token) -> None:
    response = client_for(admin_member).post(f"/tokens/{waiting.friendly_id}/approve", {})
    assert response.status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING


def test_approve_stores_the_decision_the_sdk_reads(approver, waiting: Token) -> None:
    response = csrf_post(
        client_for(approver),
        f"/tokens/{waiting.friendly_id}/approve",
        {"comment": "  looks fine  "},
        REMOTE_ADDR="203.0.113.7",
    )
    assert output_of(waiting) == {"status": "approved", "comment": "looks fine", "by": "april"}
    event = waiting.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.user, event.ip) == ("dashboard", approver, "203.0.113.7")
    assert (event.credential, event.actor_label) == ("session", approver.username)
    assert event.user_agent == "pytest-browser/1.0"
    assert messages_of(response) == [f"Approved {waiting.friendly_id}."]


def test_reject_without_a_comment_omits_it(approver, waiting: Token) -> None:
    csrf_post(client_for(approver), f"/tokens/{waiting.friendly_id}/reject", {"comment": " "})
    assert output_of(waiting) == {"status": "rejected", "by": "april"}


def test_a_too_long_comment_is_refused(approver, waiting: Token) -> None:
    response = csrf_post(
        client_for(approver), f"/tokens/{waiting.friendly_id}/approve", {"comment": "x" * 2001}
    )
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING
    assert messages_of(response) == ["Comments are at most 2000 characters."]


def test_acting_on_a_resolved_token_says_who_and_when_and_changes_nothing(
    approver, admin_member, waiting: Token
) -> None:
    csrf_post(client_for(admin_member), f"/tokens/{waiting.friendly_id}/approve", {})
    before = output_of(waiting)
    resolved = waiting.events.get(kind=TokenEvent.Kind.COMPLETED).created_at
    response = csrf_post(client_for(approver), f"/tokens/{waiting.friendly_id}/reject", {})
    assert output_of(waiting) == before == {"status": "approved", "by": "adam"}
    [message] = messages_of(response)
    assert message == (
        f"Nothing changed: {waiting.friendly_id} was already completed by adam (Dashboard) "
        f"on {resolved.day} {resolved:%b %Y, %H:%M} UTC."
    )
    ignored = waiting.events.get(kind=TokenEvent.Kind.COMPLETE_IGNORED)
    assert ignored.user == approver


def test_cancel_and_force_timeout_on_a_resolved_token_change_nothing(
    admin_member, waiting: Token
) -> None:
    lifecycle.token_cancel(token=waiting, actor=actors.Actor.system(), reason="first")
    client = client_for(admin_member)
    timeout = csrf_post(client, f"/tokens/{waiting.friendly_id}/force-timeout")
    cancel = csrf_post(client, f"/tokens/{waiting.friendly_id}/cancel", {"reason": "second"})
    waiting.refresh_from_db()
    assert (waiting.status, waiting.cancel_reason) == (Token.Status.CANCELLED, "first")
    assert messages_of(timeout)[0].startswith(
        f"Nothing changed: {waiting.friendly_id} was already cancelled by system (System)"
    )
    assert messages_of(cancel)[0].startswith("Nothing changed:")


def test_complete_with_json_stores_any_json(admin_member, waiting: Token) -> None:
    body = '{"status": "approved", "items": [1, 2], "note": null}'
    response = csrf_post(
        client_for(admin_member), f"/tokens/{waiting.friendly_id}/complete", {"data": body}
    )
    assert response.status_code == 302
    assert output_of(waiting) == {"status": "approved", "items": [1, 2], "note": None}
    assert messages_of(response) == [f"Completed {waiting.friendly_id}."]


def test_complete_with_invalid_json_shows_the_error_on_the_page(
    admin_member, waiting: Token
) -> None:
    response = csrf_post(
        client_for(admin_member),
        f"/tokens/{waiting.friendly_id}/complete",
        {"data": "{status: approved}"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "This is not valid JSON" in html
    assert 'role="alert"' in html
    assert "{status: approved}</textarea>" in html  # what they typed is kept for fixing
    assert '<details class="card admin-actions" open>' in html
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING


def test_cancel_records_the_reason(admin_member, waiting: Token) -> None:
    csrf_post(client_for(admin_member), f"/tokens/{waiting.friendly_id}/cancel", {"reason": "dup"})
    waiting.refresh_from_db()
    assert (waiting.status, waiting.cancel_reason) == (Token.Status.CANCELLED, "dup")
    event = waiting.events.get(kind=TokenEvent.Kind.CANCELLED)
    assert (event.user, event.channel, event.detail) == (
        admin_member,
        "dashboard",
        {"reason": "dup"},
    )


def test_force_timeout_records_the_admin(admin_member, waiting: Token) -> None:
    csrf_post(client_for(admin_member), f"/tokens/{waiting.friendly_id}/force-timeout")
    event = waiting.events.get(kind=TokenEvent.Kind.TIMED_OUT)
    assert (event.user, event.channel, event.detail) == (
        admin_member,
        "dashboard",
        {"forced": True},
    )


def test_a_list_action_returns_to_the_page_it_came_from(approver, waiting: Token) -> None:
    response = csrf_post(
        client_for(approver),
        f"/tokens/{waiting.friendly_id}/approve",
        {"next": "/?after=abc"},
    )
    assert response["Location"] == "/?after=abc"


def test_it_never_redirects_to_another_site(approver, waiting: Token) -> None:
    response = csrf_post(
        client_for(approver),
        f"/tokens/{waiting.friendly_id}/approve",
        {"next": "https://evil.example/"},
    )
    assert response["Location"] == f"/tokens/{waiting.friendly_id}"
