"""The token page lists the e-mailed approvers; an admin revokes one recipient's personal link
there (audited), and the other links and the plain callback URL keep working."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of
from tokens.domain import actors, approvals
from tokens.domain.links import callback_url, personal_url
from tokens.models import Recipient, Token, TokenEvent

pytestmark = pytest.mark.django_db

APPROVERS = ["alice@example.com", "bob@example.com"]


@pytest.fixture
def token(make_token) -> Token:
    return make_token(timeout="1h", approvers=APPROVERS, title="Deploy 4.2")


def recipient(token: Token, email: str) -> Recipient:
    return Recipient.objects.get(token=token, email=email)


def revoke_path(token: Token, email: str) -> str:
    return f"/tokens/{token.friendly_id}/recipients/{recipient(token, email).pk}/revoke"


def test_the_service_records_who_revoked_through_the_dashboard(token, admin_member) -> None:
    alice = recipient(token, "alice@example.com")
    actor = actors.Actor(channel=TokenEvent.Channel.DASHBOARD, user=admin_member)
    assert approvals.recipient_revoke(recipient=alice, actor=actor)
    assert not approvals.recipient_revoke(recipient=alice, actor=actor)  # once only
    [event] = token.events.filter(kind=TokenEvent.Kind.LINK_REVOKED)
    assert (event.channel, event.user, event.detail) == (
        "dashboard",
        admin_member,
        {"to": "alice@example.com"},
    )
    assert recipient(token, "bob@example.com").revoked_at is None


def test_an_admin_revokes_one_link_and_the_others_keep_working(token, admin_member) -> None:
    response = csrf_post(client_for(admin_member), revoke_path(token, "alice@example.com"))
    assert response.status_code == 302
    assert response["Location"] == f"/tokens/{token.friendly_id}"
    assert messages_of(response) == [
        "Revoked the personal link of alice@example.com. The other links and the callback URL "
        "still work."
    ]
    alice, bob = recipient(token, "alice@example.com"), recipient(token, "bob@example.com")
    assert alice.revoked_at is not None and bob.revoked_at is None
    event = token.events.get(kind=TokenEvent.Kind.LINK_REVOKED)
    assert (event.channel, event.user, event.credential) == ("dashboard", admin_member, "session")

    anyone = Client()
    page = anyone.get(personal_url(token, alice, base=""))
    assert page.status_code == 403
    assert "This link was revoked" in page.content.decode()
    assert (
        "is recorded as bob@example.com"
        in anyone.get(personal_url(token, bob, base="")).content.decode()
    )
    plain = anyone.get(callback_url(token, base=""))
    assert plain.status_code == 200 and 'name="decision"' in plain.content.decode()

    again = csrf_post(client_for(admin_member), revoke_path(token, "alice@example.com"))
    assert messages_of(again) == ["The personal link of alice@example.com was already revoked."]
    assert token.events.filter(kind=TokenEvent.Kind.LINK_REVOKED).count() == 1


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_other_roles_are_refused_and_audited(token, viewer, approver, role) -> None:
    user = {"viewer": viewer, "approver": approver}[role]
    response = csrf_post(client_for(user), revoke_path(token, "alice@example.com"))
    assert response["Location"] == f"/tokens/{token.friendly_id}"
    [message] = messages_of(response)
    assert message == (
        f"Not allowed: as {role} in alice you cannot revoke personal links of tokens. "
        "Nothing was changed."
    )
    assert recipient(token, "alice@example.com").revoked_at is None
    denied = token.events.get(kind=TokenEvent.Kind.DENIED)
    assert (denied.user, denied.detail) == (user, {"action": "revoke_link"})


def test_unknown_recipients_and_other_projects_answer_404(
    token, admin_member, outsider, make_token
) -> None:
    other = make_token(approvers=["carol@example.com"])
    carol = recipient(other, "carol@example.com")
    client = client_for(admin_member)
    # Another token's recipient through this token's URL, and a made-up id.
    for pk in (carol.pk, 999_999):
        path = f"/tokens/{token.friendly_id}/recipients/{pk}/revoke"
        assert csrf_post(client, path).status_code == 404
    assert carol.revoked_at is None
    # A member of another project learns nothing (and nothing is audited on the token).
    assert csrf_post(client_for(outsider), revoke_path(token, "bob@example.com")).status_code == 404
    assert not token.events.filter(kind=TokenEvent.Kind.DENIED).exists()


def test_revoking_is_a_csrf_protected_post(token, admin_member) -> None:
    client = client_for(admin_member)
    path = revoke_path(token, "alice@example.com")
    assert client.get(path).status_code == 405
    assert client.post(path).status_code == 403  # no CSRF token
    assert recipient(token, "alice@example.com").revoked_at is None


def test_the_token_page_lists_recipients_with_a_revoke_button_for_admins(
    token, admin_member, approver
) -> None:
    approvals.recipient_revoke(
        recipient=recipient(token, "bob@example.com"), actor=actors.Actor.system()
    )
    html = client_for(admin_member).get(f"/tokens/{token.friendly_id}").content.decode()
    assert "<h2>Personal links</h2>" in html
    alice = recipient(token, "alice@example.com")
    assert f'action="/tokens/{token.friendly_id}/recipients/{alice.pk}/revoke"' in html
    assert html.count(">Revoke link</button>") == 1  # bob's is revoked already
    assert '<span class="link-revoked">Revoked</span>' in html

    html = client_for(approver).get(f"/tokens/{token.friendly_id}").content.decode()
    assert "alice@example.com" in html and "Link active" in html
    assert "Revoke link" not in html and "/revoke" not in html


def test_a_token_without_approvers_has_no_recipients_card(make_token, admin_member) -> None:
    token = make_token()
    html = client_for(admin_member).get(f"/tokens/{token.friendly_id}").content.decode()
    assert "Personal links" not in html
