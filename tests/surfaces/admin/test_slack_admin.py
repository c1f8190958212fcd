"""Support staff see Slack connections and messages; secrets only as hints."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET
from tokens.delivery.slack import connections
from tokens.models import SlackConnection

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    client = Client()
    client.force_login(user)
    return client


def test_support_sees_the_connection_without_its_secrets(support, environment, make_token):
    connection = connections.slack_connect(
        environment=environment, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET
    )
    make_token(approvers=["alice@example.com"])
    for path in (
        "/admin/tokens/slackconnection/",
        f"/admin/tokens/slackconnection/{connection.pk}/change/",
        "/admin/tokens/slackmessage/",
    ):
        page = support.get(path)
        assert page.status_code == 200, path
        html = page.content.decode()
        assert BOT_TOKEN not in html and SIGNING_SECRET not in html
    assert "xoxb-…ests" in support.get("/admin/tokens/slackconnection/").content.decode()


def test_support_connects_through_the_service_and_pauses(support, environment):
    response = support.post(
        "/admin/tokens/slackconnection/add/",
        {
            "environment": environment.pk,
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "default_channel": "approvals",
            "direct_messages": "on",
            "routes-TOTAL_FORMS": "0",
            "routes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = SlackConnection.objects.get()
    assert connections.bot_token(connection) == BOT_TOKEN
    support.post(
        "/admin/tokens/slackconnection/",
        {"action": "pause", "_selected_action": [connection.pk]},
    )
    connection.refresh_from_db()
    assert connection.enabled is False


def test_connect_slack_command(environment, capsys):
    call_command(
        "connect_slack",
        "--project", "alice", "--env", "dev",
        "--bot-token", BOT_TOKEN, "--signing-secret", SIGNING_SECRET, "--channel", "#approvals",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "Slack connected for alice/dev: bot token xoxb-…ests" in out
    assert BOT_TOKEN not in out and SIGNING_SECRET not in out
    connection = SlackConnection.objects.get(environment=environment)
    assert connection.default_channel == "approvals"
    with pytest.raises(CommandError, match="Unknown project"):
        call_command(
            "connect_slack", "--project", "nope", "--env", "dev",
            "--bot-token", BOT_TOKEN, "--signing-secret", SIGNING_SECRET,
        )  # fmt: skip
    with pytest.raises(CommandError, match="Invalid bot token"):
        call_command(
            "connect_slack", "--project", "alice", "--env", "dev",
            "--bot-token", "nope", "--signing-secret", SIGNING_SECRET,
        )  # fmt: skip
