"""The interactivity endpoint, with payloads signed as Slack signs them and the local fake of
the Web API: a click decides through domain.decide as the clicker's confirmed Slack address."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.fake_slack import click, signed_post, submission
from tokens.delivery import outbox
from tokens.domain import actors
from tokens.domain.links import personal_url
from tokens.models import OutboxMessage, SlackUser, Token, TokenEvent

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()


@pytest.fixture(autouse=True)
def _inline_senders(settings) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1


@pytest.fixture
def slack_client() -> Client:
    return Client()


def ask(make_token, **extra) -> Token:
    values = {
        "timeout": "1h",
        "approvers": ["alice@example.com", "bob@example.com"],
        "title": "Deploy 1.4 to production",
        "requested_by": "rita@example.com",
        **extra,
    }
    return make_token(**values)


def notes(token: Token) -> list[str]:
    rows = OutboxMessage.objects.filter(token=token, kind=OutboxMessage.Kind.SLACK_NOTICE)
    return [row.payload["text"] for row in rows.order_by("id")]


def output(token: Token) -> dict:
    import json

    token.refresh_from_db()
    return json.loads(token.output)["json"]


def test_a_click_decides_as_the_approvers_slack_address(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token)
    outbox.deliver_due()
    response = signed_post(slack_client, click(token, user="UALICE"))
    assert response.status_code == 200
    assert output(token) == {"status": "approved", "by": "alice@example.com"}
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.credential, event.email) == (
        "slack",
        "slack_signature",
        "alice@example.com",
    )
    # Posting her direct message looked her up by address: the click needs no call to Slack.
    assert fake_slack.called("users.info") == []
    assert SlackUser.objects.get(user_id="UALICE").email == "alice@example.com"
    outbox.deliver_due()
    assert fake_slack.called("chat.update"), "the message shows the outcome"
    assert notes(token) == []


def test_a_rejection_by_button(make_token, slack_connection, fake_slack, slack_client):
    token = ask(make_token)  # not posted yet: nobody was looked up
    assert signed_post(slack_client, click(token, user="UBOB", action="reject")).status_code == 200
    assert output(token)["status"] == "rejected"
    (asked,) = fake_slack.called("users.info")  # who clicked: asked once, then cached
    assert asked.params["user"] == "UBOB"
    assert SlackUser.objects.get(user_id="UBOB").email == "bob@example.com"


def test_a_forged_signature_changes_nothing(make_token, slack_connection, fake_slack, slack_client):
    token = ask(make_token)
    response = signed_post(slack_client, click(token), tamper=True)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid Slack signature"}
    response = signed_post(slack_client, click(token), secret="0" * 32)
    assert response.status_code == 401
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert token.events.filter(kind=TokenEvent.Kind.AUTH_FAILED).count() == 1  # once a minute
    assert fake_slack.calls == []


def test_a_stale_timestamp_is_refused(make_token, slack_connection, fake_slack, slack_client):
    token = ask(make_token)
    old = int(time.time()) - 6 * 60
    assert signed_post(slack_client, click(token), timestamp=old).status_code == 401
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_requests_that_are_not_slacks_are_refused(slack_client, make_token, slack_connection):
    assert slack_client.get("/integrations/slack/interactivity").status_code == 405
    response = slack_client.post(
        "/integrations/slack/interactivity", "x=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    unknown = click(ask(make_token))
    unknown["actions"][0]["value"] = "waitpoint_nosuchtoken"
    assert signed_post(slack_client, unknown).status_code == 401


def test_an_unknown_slack_user_is_told_and_nothing_changes(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token)
    assert signed_post(slack_client, click(token, user="UNOBODY")).status_code == 200
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert "could not tell who you are" in notes(token)[0]
    outbox.deliver_due()
    (ephemeral,) = fake_slack.called("chat.postEphemeral")
    assert ephemeral.params["user"] == "UNOBODY"


def test_an_unconfirmed_slack_address_does_not_count(
    make_token, slack_connection, fake_slack, slack_client
):
    fake_slack.add_user("bob@example.com", "UBOB2", confirmed=False)
    token = ask(make_token)
    signed_post(slack_client, click(token, user="UBOB2"))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert "could not tell who you are" in notes(token)[0]


def test_someone_who_is_not_an_approver_is_refused(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token)
    signed_post(slack_client, click(token, user="UMALLORY"))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert "mallory@example.com) is not one of them" in notes(token)[0]
    denied = token.events.get(kind=TokenEvent.Kind.DENIED)
    assert denied.email == "mallory@example.com" and denied.channel == "slack"


def test_the_requester_cannot_approve_their_own_request(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token, approvers=["rita@example.com", "bob@example.com"])
    signed_post(slack_client, click(token, user="URITA"))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert "You requested this (rita@example.com)" in notes(token)[0]


def test_a_second_click_is_told_who_decided_and_when(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token)
    signed_post(slack_client, click(token, user="UALICE"))
    signed_post(slack_client, click(token, user="UBOB", action="reject"))
    assert output(token)["status"] == "approved"
    (note,) = notes(token)
    assert note.startswith("Already decided: :white_check_mark: *Approved* by alice@example.com")
    assert "<!date^" in note
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 1


def test_a_click_after_the_deadline(make_token, slack_connection, fake_slack, slack_client):
    token = ask(make_token, timeout="1m", now=timezone.now() - timedelta(minutes=2))
    signed_post(slack_client, click(token, user="UALICE"))
    token.refresh_from_db()
    assert token.status == Token.Status.TIMED_OUT
    assert "Already decided: :hourglass: *Timed out*" in notes(token)[0]


def test_a_quorum_reached_across_slack_and_email(
    make_token, slack_connection, fake_slack, slack_client, client
):
    token = ask(make_token, required_approvals=2)
    outbox.deliver_due()
    bob = token.recipients.get(email="bob@example.com")
    response = client.post(personal_url(token, bob, base=""), {"decision": "approved"})
    assert response.status_code == 302
    signed_post(slack_client, click(token, user="UALICE"))
    result = output(token)
    assert [vote["by"] for vote in result["votes"]] == ["bob@example.com", "alice@example.com"]
    assert token.events.get(kind=TokenEvent.Kind.COMPLETED).channel == "slack"
    outbox.deliver_due()
    final = fake_slack.called("chat.update")[-1].params
    assert "*2 of 2 approvals*" in str(final["blocks"])


def test_a_vote_that_does_not_decide_yet_is_acknowledged(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token, required_approvals=2)
    signed_post(slack_client, click(token, user="UALICE"))
    signed_post(slack_client, click(token, user="UALICE"))
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    first, second = notes(token)
    assert first.startswith("Your approval counts: 1 of 2")
    assert second.startswith("You already decided on this request")


FIELDS = {
    "approve": "Refund",
    "reject": "Decline",
    "fields": {
        "properties": {
            "amount": {"type": "number", "title": "Amount to refund (EUR)"},
            "reason": {"type": "string", "enum": ["damaged", "late"]},
            "notify": {"type": "boolean", "title": "E-mail the customer"},
        },
        "required": ["amount"],
    },
}


def test_a_request_with_fields_opens_a_form(make_token, slack_connection, fake_slack, slack_client):
    token = ask(make_token, decision=FIELDS)
    assert signed_post(slack_client, click(token, user="UALICE")).status_code == 200
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING  # nothing decided by opening the form
    (opened,) = fake_slack.called("views.open")
    assert opened.params["trigger_id"] == "1234.5678.trigger"
    view = opened.params["view"]
    assert view["title"]["text"] == "Refund"
    inputs = {block["block_id"]: block for block in view["blocks"] if block["type"] == "input"}
    assert set(inputs) == {"field:amount", "field:reason", "field:notify", "comment"}
    assert inputs["field:amount"]["optional"] is False
    assert inputs["field:reason"]["element"]["type"] == "static_select"

    missing = submission(token, decision="approved", values={})
    response = signed_post(slack_client, missing)
    assert response.json() == {
        "response_action": "errors",
        "errors": {"field:amount": "Amount to refund (EUR) is required."},
    }
    values = {
        "field:amount": {"value": {"type": "number_input", "value": "120.5"}},
        "field:reason": {"value": {"type": "static_select", "selected_option": {"value": "late"}}},
        "field:notify": {"value": {"type": "checkboxes", "selected_options": [{"value": "on"}]}},
        "comment": {"value": {"type": "plain_text_input", "value": "Late twice"}},
    }
    response = signed_post(slack_client, submission(token, decision="approved", values=values))
    assert response.json() == {"response_action": "clear"}
    assert output(token) == {
        "status": "approved",
        "comment": "Late twice",
        "by": "alice@example.com",
        "fields": {"amount": 120.5, "reason": "late", "notify": True},
    }


def test_a_form_is_not_opened_for_someone_who_may_not_decide(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token, decision=FIELDS)
    signed_post(slack_client, click(token, user="UMALLORY"))
    assert fake_slack.called("views.open") == []
    assert "is not one of them" in notes(token)[0]
    values = {"field:amount": {"value": {"type": "number_input", "value": "5"}}}
    submitted = submission(token, decision="approved", values=values, user="UMALLORY")
    response = signed_post(slack_client, submitted).json()
    assert response["response_action"] == "update"
    assert "is not one of them" in str(response["view"])


def test_a_form_that_slack_cannot_open_points_to_the_token_page(
    make_token, slack_connection, fake_slack, slack_client
):
    fake_slack.fail("views.open", "expired_trigger_id")
    token = ask(make_token, decision=FIELDS)
    signed_post(slack_client, click(token, user="UALICE"))
    assert f"/tokens/{token.friendly_id}" in notes(token)[0]


def test_the_link_button_and_closed_forms_are_acknowledged(
    make_token, slack_connection, fake_slack, slack_client
):
    token = ask(make_token)
    assert signed_post(slack_client, click(token, action="open")).status_code == 200
    closed = submission(token, decision="approved", values={})
    closed["type"] = "view_closed"
    assert signed_post(slack_client, closed).status_code == 200
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert fake_slack.calls == []


def test_a_paused_connection_refuses_clicks(make_token, slack_connection, fake_slack, slack_client):
    from tokens.delivery.slack import connections

    token = ask(make_token)
    connections.slack_update(connection=slack_connection, enabled=False)
    assert signed_post(slack_client, click(token)).status_code == 401
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
