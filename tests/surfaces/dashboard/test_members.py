"""The Members page: project admins invite people by e-mail and set their roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member, messages_of
from tokens.models import Membership

pytestmark = pytest.mark.django_db

PAGE = "/projects/alice/members"


def test_an_admin_invites_someone_by_email(admin_member):
    client = client_for(admin_member)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert b"Members of alice" in page.content and b"adam" in page.content
    response = csrf_post(
        client, f"{PAGE}/invite", {"email": "ann@example.com", "role": "approver"}, follow=True
    )
    assert response.redirect_chain[-1][0] == PAGE
    assert messages_of(response) == [
        "ann@example.com is now an approver. We e-mailed them a link to choose their password."
    ]
    ann = User.objects.get(email="ann@example.com")
    assert Membership.objects.get(user=ann).role == "approver"
    assert b"Invited, no password yet" in response.content
    [message] = mail.outbox
    assert "adam added you to the project alice" in message.body.lower()
    assert "/accounts/reset/" in message.body


def test_an_admin_changes_a_role_resends_and_removes(admin_member, viewer):
    client = client_for(admin_member)
    membership = Membership.objects.get(user=viewer)
    response = csrf_post(client, f"{PAGE}/{membership.pk}/role", {"role": "admin"}, follow=True)
    assert messages_of(response) == ["vera@example.com is now admin."]
    assert Membership.objects.get(pk=membership.pk).role == "admin"
    response = csrf_post(client, f"{PAGE}/{membership.pk}/resend", follow=True)
    assert messages_of(response) == [
        "vera@example.com is now an admin. We e-mailed them; they log in with their password."
    ]
    assert len(mail.outbox) == 1
    response = csrf_post(client, f"{PAGE}/{membership.pk}/remove", follow=True)
    assert messages_of(response) == ["vera@example.com is no longer a member of alice."]
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(pk=viewer.pk).exists()  # the account stays


def test_the_last_admin_cannot_step_down(admin_member):
    client = client_for(admin_member)
    membership = Membership.objects.get(user=admin_member)
    response = csrf_post(client, f"{PAGE}/{membership.pk}/role", {"role": "viewer"}, follow=True)
    assert messages_of(response) == [
        "adam is the only admin of alice; make someone else an admin first. Nothing was changed."
    ]
    assert Membership.objects.get(pk=membership.pk).role == "admin"


def test_a_bad_address_is_shown_on_the_form(admin_member):
    response = csrf_post(
        client_for(admin_member), f"{PAGE}/invite", {"email": "ann", "role": "approver"}
    )
    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content
    assert b'value="ann"' in response.content
    assert not User.objects.filter(username="ann").exists()


def test_only_admins_of_the_project_see_or_change_members(
    viewer, approver, outsider, admin_member, other_environment
):
    bob_admin = member(other_environment, "bea", Membership.Role.ADMIN)
    target = Membership.objects.get(user=viewer)
    for user in (viewer, approver, outsider, bob_admin):
        client = client_for(user)
        assert client.get(PAGE).status_code == 404
        invite = csrf_post(client, f"{PAGE}/invite", {"email": "x@example.com", "role": "admin"})
        assert invite.status_code == 404
        forged = csrf_post(client, f"{PAGE}/{target.pk}/role", {"role": "admin"})
        assert forged.status_code == 404
    assert client_for(None).get(PAGE).status_code == 302  # to the login
    assert Membership.objects.get(pk=target.pk).role == "viewer"
    assert not User.objects.filter(email="x@example.com").exists()
    # Another project's membership id cannot be reached through this project's page.
    other = Membership.objects.get(user=bob_admin)
    response = csrf_post(client_for(admin_member), f"{PAGE}/{other.pk}/remove")
    assert response.status_code == 404


def test_admins_find_the_page_from_home_and_the_token_list(admin_member, approver, environment):
    assert PAGE.encode() in client_for(admin_member).get("/").content
    assert PAGE.encode() in client_for(admin_member).get("/projects/alice/dev/tokens").content
    assert PAGE.encode() not in client_for(approver).get("/").content
