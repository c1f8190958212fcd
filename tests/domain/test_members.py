"""Project admins invite people by e-mail and set their roles (tokens.domain.tenancy)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail

from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput
from tokens.models import Membership

LINK = re.compile(r"http://testserver/accounts/reset/[^/\s]+/[^/\s]+/")


@pytest.fixture
def project(environment):
    return environment.project


def test_it_creates_an_account_without_a_password_and_emails_a_one_time_link(project):
    invitation = tenancy.member_invite(
        project=project, email="Ann@Example.com", role="approver", invited_by="Adam"
    )
    user = invitation.membership.user
    assert (user.username, user.email) == ("ann@example.com", "Ann@example.com")  # normalised
    assert not user.has_usable_password()
    assert invitation.created_user and invitation.created_membership and invitation.emailed
    assert invitation.membership.role == Membership.Role.APPROVER
    [message] = mail.outbox
    assert message.to == ["Ann@example.com"]
    assert message.subject == "You are invited to alice on waitpoints"
    assert "Adam added you to the project alice on waitpoints as an approver" in message.body
    assert "Your username: ann@example.com" in message.body
    assert LINK.search(message.body)


def test_the_link_sets_the_password_once(project, client):
    tenancy.member_invite(project=project, email="ann@example.com", role="viewer")
    link = LINK.search(mail.outbox[0].body).group(0).removeprefix("http://testserver")
    page = client.get(link, follow=True)
    assert b"Welcome to waitpoints" in page.content
    form_url = page.redirect_chain[-1][0]
    new = {"new_password1": "a-long-new-pass-phrase", "new_password2": "a-long-new-pass-phrase"}
    done = client.post(form_url, new, follow=True)
    assert b"Your password is set" in done.content
    assert User.objects.get(username="ann@example.com").check_password("a-long-new-pass-phrase")
    assert client.login(username="ann@example.com", password="a-long-new-pass-phrase")
    client.logout()
    # Used once: the same link no longer works.
    again = client.get(link, follow=True)
    assert b"This link no longer works" in again.content


def test_an_existing_account_is_added_and_told_so(project, django_user_model):
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "bobs-password-1")
    invitation = tenancy.member_invite(project=project, email="BOB@example.com", role="admin")
    assert invitation.membership.user == bob and not invitation.created_user
    assert not invitation.needs_password
    [message] = mail.outbox
    assert message.subject == "You were added to alice on waitpoints"
    assert "Log in with your existing password" in message.body
    assert not LINK.search(message.body)
    bob.refresh_from_db()
    assert bob.check_password("bobs-password-1")


def test_inviting_a_member_again_changes_their_role(project):
    first = tenancy.member_invite(project=project, email="ann@example.com", role="viewer")
    second = tenancy.member_invite(project=project, email="ann@example.com", role="admin")
    assert second.membership.pk == first.membership.pk and not second.created_membership
    assert Membership.objects.get(pk=first.membership.pk).role == "admin"
    assert User.objects.filter(email__iexact="ann@example.com").count() == 1


@pytest.mark.parametrize(
    ("email", "role", "says"),
    [
        ("not-an-address", "viewer", "is not an e-mail address"),
        ("", "viewer", "is not an e-mail address"),
        ("ann@example.com", "owner", "Unknown role 'owner'"),
        ("a" * 140 + "@example.com", "viewer", "at most 150 characters"),
    ],
)
def test_it_refuses_what_it_cannot_use(project, email, role, says):
    with pytest.raises(InvalidInput, match=says):
        tenancy.member_invite(project=project, email=email, role=role)
    assert not Membership.objects.exists() and not mail.outbox


def test_a_project_keeps_an_admin(project):
    only = tenancy.member_invite(project=project, email="adam@example.com", role="admin")
    with pytest.raises(InvalidInput, match="only admin of alice"):
        tenancy.member_set_role(membership=only.membership, role="viewer")
    with pytest.raises(InvalidInput, match="only admin of alice"):
        tenancy.member_remove(membership=only.membership)
    with pytest.raises(InvalidInput, match="only admin"):
        tenancy.member_invite(project=project, email="adam@example.com", role="approver")
    tenancy.member_invite(project=project, email="eve@example.com", role="admin")
    tenancy.member_set_role(membership=only.membership, role="viewer")
    assert Membership.objects.get(pk=only.membership.pk).role == "viewer"


def test_an_email_failure_keeps_the_membership_and_says_why(project, settings):
    settings.EMAIL_BACKEND = "tests.domain.test_members.FailingBackend"
    invitation = tenancy.member_invite(project=project, email="ann@example.com", role="viewer")
    assert not invitation.emailed
    assert invitation.email_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert Membership.objects.filter(pk=invitation.membership.pk).exists()


class FailingBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")
