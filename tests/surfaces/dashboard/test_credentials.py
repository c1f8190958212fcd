"""The callback URL is a credential: whoever holds it completes the token, anonymously. Only the
admin role (which may complete with any output anyway) is shown it; viewers and approvers never
receive its hash on any dashboard page or JSON endpoint."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.surfaces.dashboard.conftest import client_for, csrf_post
from tokens.delivery import outbox
from tokens.domain import actors, keys, lifecycle, links
from tokens.models import Token

pytestmark = pytest.mark.django_db


def digest_of(token: Token) -> str:
    return keys.callback_hash(
        callback_secret=token.environment.callback_secret, internal_id=token.id
    )


def every_page(environment, token: Token) -> list[str]:
    env = f"/projects/{environment.project.slug}/{environment.slug}"
    return [
        "/",
        f"{env}/tokens",
        f"{env}/tokens?tag=refund&status=WAITING",
        f"{env}/tags?q=re",
        f"/tokens/{token.friendly_id}",
        f"/tokens/{token.pk}",
    ]


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_a_non_admins_pages_carry_no_callback_hash(request, role, environment, waiting) -> None:
    client = client_for(request.getfixturevalue(role))
    resolved = lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), tags=["refund"]
    ).token
    lifecycle.token_complete(token=resolved, actor=actors.Actor.system(), data={"ok": True})
    for token in (waiting, resolved):
        for path in every_page(environment, token):
            response = client.get(path)
            assert response.status_code == 200, path
            body = response.content.decode()
            assert digest_of(token) not in body, path
            assert digest_of(waiting) not in body, path
            assert "/callback/" not in body, path


def test_an_admins_detail_page_shows_the_callback_url(admin_member, waiting) -> None:
    html = client_for(admin_member).get(f"/tokens/{waiting.friendly_id}").content.decode()
    assert f"/api/v1/waitpoints/tokens/{waiting.friendly_id}/callback/{digest_of(waiting)}" in html
    assert 'data-copy="#callback-url"' in html


def test_only_the_approval_email_carries_the_hash(environment, viewer) -> None:
    """Approvers are sent their personal link by design (not the shared callback hash); a
    password reset (any member) carries neither."""
    token = lifecycle.token_create(
        environment=environment,
        actor=actors.Actor.system(),
        approvers=["boss@example.com"],
    ).token
    outbox.deliver_due()
    csrf_post(client_for(None), "/accounts/password_reset/", {"email": viewer.email})
    to_approver = [m for m in mail.outbox if m.to == ["boss@example.com"]]
    others = [m for m in mail.outbox if m.to != ["boss@example.com"]]
    recipient = token.recipients.get(email="boss@example.com")
    personal = links.personal_url(token, recipient, base="http://testserver")
    assert len(to_approver) == 1 and personal in to_approver[0].body
    assert digest_of(token) not in to_approver[0].body  # the shared credential is not sent
    assert others, "the password-reset e-mail was sent"
    for message in others:
        assert digest_of(token) not in message.body
        assert personal not in message.body
        assert "/callback/" not in message.body
