"""The dashboard's Slack page: admins connect, route and pause; nobody sees a secret again."""

from __future__ import annotations

import pytest

from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET
from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of
from tokens.domain import tenancy
from tokens.models import Membership, SlackConnection, SlackRoute

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/slack"


def connect(client, **extra):
    data = {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "default_channel": "#approvals",
        "direct_messages": "on",
        **extra,
    }
    return csrf_post(client, f"{PAGE}/connect", data)


def test_the_role_allows_only_admins_to_manage_integrations():
    assert tenancy.role_allows(Membership.Role.ADMIN, "manage_integrations")
    assert not tenancy.role_allows(Membership.Role.APPROVER, "manage_integrations")
    assert not tenancy.role_allows(Membership.Role.VIEWER, "manage_integrations")


def test_only_admins_see_or_change_it(viewer, approver, outsider, admin_member):
    for user in (viewer, approver, outsider):
        client = client_for(user)
        assert client.get(PAGE).status_code == 404
        assert connect(client).status_code == 404
    assert not SlackConnection.objects.exists()
    assert client_for(None).get(PAGE).status_code == 302  # to the login page


def test_an_admin_connects_and_the_secrets_are_never_shown_again(admin_member, environment):
    client = client_for(admin_member)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert b"Not connected" in page.content
    assert b"http://testserver/integrations/slack/interactivity" in page.content
    response = connect(client)
    assert response.status_code == 302
    assert messages_of(response) == ["Slack connected for alice/dev."]
    connection = SlackConnection.objects.get(environment=environment)
    assert connection.default_channel == "approvals" and connection.direct_messages
    page = client.get(PAGE)
    assert page["Cache-Control"].startswith("no-store") or "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert BOT_TOKEN not in html and SIGNING_SECRET not in html
    assert "xoxb-…ests" in html and "…85a5" in html


def test_bad_secrets_are_refused_with_a_message_beside_the_field(admin_member):
    client = client_for(admin_member)
    response = connect(client, bot_token="xoxp-user-token-not-a-bot")
    assert response.status_code == 400
    assert "starts with &quot;xoxb-&quot;" in response.content.decode()
    response = connect(client, signing_secret="not a secret!")
    assert response.status_code == 400
    assert "Invalid signing secret" in response.content.decode()
    response = connect(client, default_channel="Général")
    assert "Invalid channel" in response.content.decode()
    assert not SlackConnection.objects.exists()
    # What was typed is not echoed back either.
    assert "xoxp-user-token-not-a-bot" not in connect(client, bot_token="xoxp-x").content.decode()


def test_settings_rules_and_disconnect(admin_member, environment):
    client = client_for(admin_member)
    connect(client)
    response = csrf_post(client, f"{PAGE}/settings", {"default_channel": "C0OPS12345"})
    assert response.status_code == 302
    connection = SlackConnection.objects.get()
    assert connection.default_channel == "C0OPS12345"
    assert not connection.direct_messages and not connection.enabled  # unticked boxes

    assert (
        csrf_post(client, f"{PAGE}/routes", {"tag": "refund", "channel": "#refunds"}).status_code
        == 302
    )
    again = csrf_post(client, f"{PAGE}/routes", {"tag": "refund", "channel": "refunds"})
    assert again.status_code == 400 and "already go to refunds" in again.content.decode()
    bad = csrf_post(client, f"{PAGE}/routes", {"tag": "a,b", "channel": "x"})
    assert bad.status_code == 400 and "Invalid tag" in bad.content.decode()
    route = SlackRoute.objects.get()
    assert b"refunds" in client.get(PAGE).content
    assert csrf_post(client, f"{PAGE}/routes/{route.pk}/delete").status_code == 302
    assert not SlackRoute.objects.exists()

    assert csrf_post(client, f"{PAGE}/disconnect").status_code == 302
    assert not SlackConnection.objects.exists()
    assert csrf_post(client, f"{PAGE}/disconnect").status_code == 404


def test_the_token_list_links_admins_to_the_page(admin_member, approver):
    assert (
        b'href="/projects/alice/dev/slack"'
        in client_for(admin_member).get("/projects/alice/dev/tokens").content
    )
    assert b"/slack" not in client_for(approver).get("/projects/alice/dev/tokens").content
