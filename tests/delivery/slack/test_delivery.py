"""Slack delivery through the outbox, against the local fake of Slack's Web API: what is
posted where, updated in place on every kind of resolution, replied in the thread, retried on
Slack's errors, rate limits, hangs and outages, and never sent twice."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET
from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tokens.delivery import outbox
from tokens.delivery.slack import connections, handlers
from tokens.domain import actors, approvals, decide, lifecycle
from tokens.models import (
    Membership,
    OutboxMessage,
    SlackConnection,
    SlackMessage,
    SlackUser,
    Token,
    TokenEvent,
)

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()
Kind = OutboxMessage.Kind


@pytest.fixture(autouse=True)
def _inline_senders(settings) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1  # send on this thread, inside the test transaction


def request(make_token, **extra) -> Token:
    values = {
        "timeout": "2d",
        "approvers": ["alice@example.com", "bob@example.com"],
        "title": "Refund order 4812",
        "description": "Refund **ACME** <!channel> [order](https://shop.example.com/4812)",
        "context": {"amount": "3,400 EUR", "order": 4812},
        "decision": {"approve": "Refund", "reject": "Decline"},
        "requested_by": "rita@example.com",
        **extra,
    }
    return make_token(**values)


def actions_of(blocks: list[dict]) -> list[str]:
    return [
        element.get("action_id")
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def text_of(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def slack_rows(token: Token, kind: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(token=token, kind=kind).order_by("id"))


def test_it_asks_each_approver_and_the_channel_without_calling_slack_on_create(
    make_token, slack_connection, fake_slack
):
    token = request(make_token)
    assert fake_slack.calls == []  # creating waits for nothing in Slack
    places = set(SlackMessage.objects.filter(token=token).values_list("target_kind", "target"))
    assert places == {
        ("direct", "alice@example.com"),
        ("direct", "bob@example.com"),
        ("channel", "approvals"),
    }
    # The e-mails go as before: Slack is one more channel, not a replacement.
    assert len(slack_rows(token, Kind.APPROVAL_EMAIL)) == 2

    assert outbox.deliver_due() >= 3
    posts = fake_slack.called("chat.postMessage")
    assert sorted(call.params["channel"] for call in posts) == ["#approvals", "UALICE", "UBOB"]
    assert len(fake_slack.called("users.lookupByEmail")) == 2
    blocks = posts[0].params["blocks"]
    assert actions_of(blocks) == ["approve", "reject", "open"]
    labels = [e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Refund", "Decline", "Open in waitpoints"]
    content = text_of(blocks)
    assert "*ACME*" in content and "<https://shop.example.com/4812|order>" in content
    assert "&lt;!channel&gt;" in content and "<!channel>" not in content
    assert "Requested by *rita@example.com*" in content
    for row in SlackMessage.objects.filter(token=token):
        assert row.ts and row.channel_id and row.rendered == "WAITING:0"
    assert token.events.filter(kind=TokenEvent.Kind.SLACK_POSTED).count() == 3
    assert all(call.headers["authorization"] == f"Bearer {BOT_TOKEN}" for call in posts)


def test_a_token_without_approvers_or_connection_posts_nothing(make_token, environment, fake_slack):
    make_token(approvers=["alice@example.com"])  # no connection yet
    connections.slack_connect(
        environment=environment, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET
    )
    make_token(title="nobody to ask")
    assert not SlackMessage.objects.exists()
    assert not OutboxMessage.objects.filter(kind=Kind.SLACK_POST).exists()


def test_routing_rules_and_the_requests_own_channel(make_token, slack_connection, fake_slack):
    fake_slack.add_channel("refunds", "C0REFUNDS")
    connections.slack_update(connection=slack_connection, direct_messages=False)
    connections.slack_route_add(connection=slack_connection, tag="refund", channel="#refunds")
    ruled = request(make_token, tags=["refund"])
    default = request(make_token, tags=["payout"])
    own = request(make_token, tags=["refund"], slack_channel="C0APPROVALS")

    def places(token):
        return list(SlackMessage.objects.filter(token=token).values_list("target", flat=True))

    assert places(ruled) == ["refunds"]
    assert places(default) == ["approvals"]
    assert places(own) == ["C0APPROVALS"]
    outbox.deliver_due()
    channels = sorted(c.params["channel"] for c in fake_slack.called("chat.postMessage"))
    assert channels == ["#approvals", "#refunds", "C0APPROVALS"]


def test_a_requested_channel_needs_a_connection_and_approvers(make_token, other_environment):
    from tokens.domain.exceptions import InvalidInput

    with pytest.raises(InvalidInput, match="not connected to Slack"):
        make_token(env=other_environment, approvers=["a@example.com"], slack_channel="ops")
    with pytest.raises(InvalidInput, match="name them in approvers"):
        make_token(env=other_environment, slack_channel="ops")
    with pytest.raises(InvalidInput, match="Slack channel id"):
        make_token(env=other_environment, approvers=["a@example.com"], slack_channel="No Way!")


def test_someone_without_a_slack_account_is_asked_by_email_only(
    make_token, slack_connection, fake_slack
):
    token = request(make_token, approvers=["carol@example.com", "alice@example.com"])
    outbox.deliver_due()
    row = slack_rows(token, Kind.SLACK_POST)[0]
    assert row.failed_at and "carol@example.com has no Slack account" in row.last_error
    notice = token.events.get(kind=TokenEvent.Kind.SLACK_NO_ACCOUNT)
    assert notice.detail == {"to": "carol@example.com"}
    assert SlackUser.objects.get(email="carol@example.com").user_id == ""
    assert {r.payload["to"] for r in slack_rows(token, Kind.APPROVAL_EMAIL)} == {
        "carol@example.com",
        "alice@example.com",
    }
    # A second request within the cache's lifetime does not ask Slack again.
    lookups = len(fake_slack.called("users.lookupByEmail"))
    request(make_token, approvers=["carol@example.com"])
    outbox.deliver_due()
    assert len(fake_slack.called("users.lookupByEmail")) == lookups


def resolve_by_api(token, api_client, **_):
    response = api_client.post(
        f"/api/v1/waitpoints/tokens/{token.friendly_id}/complete", {"data": {"ok": 1}}, "json"
    )
    assert response.status_code == 200
    return ":white_check_mark: *Completed*"


def resolve_by_dashboard(token, environment, **_):
    user = member(environment, "adam", Membership.Role.ADMIN)
    user.email = "bob@example.com"
    user.save()
    response = csrf_post(client_for(user), f"/tokens/{token.friendly_id}/approve", {})
    assert response.status_code == 302
    return "*Approved* (Refund) by adam"


def resolve_by_email_link(token, client, **_):
    recipient = token.recipients.get(email="bob@example.com")
    from tokens.domain.links import personal_url

    response = client.post(personal_url(token, recipient, base=""), {"decision": "rejected"})
    assert response.status_code == 302
    return "*Rejected* (Decline) by bob@example.com"


def resolve_by_cancel(token, **_):
    lifecycle.token_cancel(token=token, actor=SYSTEM, reason="duplicate")
    return "*Cancelled*"


def resolve_by_deadline(token, **_):
    lifecycle.token_expire_due(now=timezone.now() + timedelta(days=3))
    return "*Timed out*"


@pytest.mark.parametrize(
    "resolve",
    [
        resolve_by_api,
        resolve_by_dashboard,
        resolve_by_email_link,
        resolve_by_cancel,
        resolve_by_deadline,
    ],
)
def test_every_resolution_updates_the_messages_in_place(
    resolve, make_token, slack_connection, fake_slack, api_client, environment, client
):
    token = request(make_token)
    outbox.deliver_due()
    assert len(fake_slack.posted()) == 3
    expected = resolve(token, api_client=api_client, environment=environment, client=client)
    outbox.deliver_due()
    updates = fake_slack.called("chat.update")
    assert len(updates) == 3
    for message in fake_slack.posted():
        assert actions_of(message["blocks"]) == ["open"], "the buttons are gone"
        assert expected in text_of(message["blocks"])
    assert set(SlackMessage.objects.values_list("rendered", flat=True)) == {
        Token.objects.get(pk=token.pk).status
    }


def test_votes_show_on_the_message(make_token, slack_connection, fake_slack):
    token = request(make_token, required_approvals=2)
    outbox.deliver_due()
    decide.decide(
        token=token,
        actor=SYSTEM,
        authority=decide.Authority.recipient(),
        voter=decide.Voter.for_email("alice@example.com"),
        decision="approved",
    )
    outbox.deliver_due()
    for message in fake_slack.posted():
        assert "*1 of 2 approvals*" in text_of(message["blocks"])
        assert actions_of(message["blocks"])[:2] == ["approve", "reject"]


def test_a_repeated_post_updates_instead_of_posting_twice(make_token, slack_connection, fake_slack):
    connections.slack_update(connection=slack_connection, direct_messages=False)
    token = request(make_token)
    (post,) = slack_rows(token, Kind.SLACK_POST)
    outbox.deliver_due()
    assert len(fake_slack.called("chat.postMessage")) == 1
    lifecycle.token_cancel(token=token, actor=SYSTEM)
    # The worker died after sending and the claim lapsed: the same row is sent again.
    handlers.post_request(OutboxMessage.objects.get(pk=post.pk))
    assert len(fake_slack.called("chat.postMessage")) == 1
    assert len(fake_slack.posted()) == 1
    assert "*Cancelled*" in text_of(fake_slack.posted()[0]["blocks"])


def test_a_429_waits_as_long_as_slack_asks(make_token, slack_connection, fake_slack):
    connections.slack_update(connection=slack_connection, direct_messages=False)
    fake_slack.fail("chat.postMessage", ("429", 30))
    token = request(make_token)
    now = timezone.now()
    outbox.deliver_due(now=now)
    first, later = slack_rows(token, Kind.SLACK_POST)
    assert first.failed_at is not None and "asked to wait 30 s" in first.last_error
    assert f"continued as outbox message {later.pk}" in first.last_error
    assert later.next_attempt_at >= now + timedelta(seconds=29)
    assert later.attempts == 0
    outbox.deliver_due(now=now + timedelta(seconds=20))
    assert len(fake_slack.called("chat.postMessage")) == 1, "not before Retry-After"
    outbox.deliver_due(now=now + timedelta(seconds=35))
    assert len(fake_slack.called("chat.postMessage")) == 2
    assert len(fake_slack.posted()) == 1
    later.refresh_from_db()
    assert later.delivered_at is not None


def test_slack_errors_are_retried_and_shown_with_a_hint(make_token, slack_connection, fake_slack):
    connections.slack_update(connection=slack_connection, direct_messages=False)
    fake_slack.fail("chat.postMessage", "not_in_channel")
    token = request(make_token)
    now = timezone.now()
    outbox.deliver_due(now=now)
    (row,) = slack_rows(token, Kind.SLACK_POST)
    assert row.delivered_at is None and row.failed_at is None
    assert "Slack answered not_in_channel (invite the app" in row.last_error
    assert row.next_attempt_at == now + handlers.RETRY_DELAYS[0]
    slack_connection.refresh_from_db()
    assert "not_in_channel" in slack_connection.last_error
    outbox.deliver_due(now=now + timedelta(minutes=1))
    row.refresh_from_db()
    assert row.delivered_at is not None


def test_a_hanging_slack_costs_one_attempt(make_token, slack_connection, fake_slack, settings):
    settings.SLACK_TIMEOUT = 1
    connections.slack_update(connection=slack_connection, direct_messages=False)
    fake_slack.fail("chat.postMessage", "hang")
    token = request(make_token)
    outbox.deliver_due()
    (row,) = slack_rows(token, Kind.SLACK_POST)
    assert "Slack did not answer" in row.last_error and row.failed_at is None
    assert SlackMessage.objects.get(token=token).ts == ""


def test_slack_down_for_hours_then_back_loses_nothing(
    make_token, slack_connection, fake_slack, api_client
):
    connections.slack_update(connection=slack_connection, direct_messages=False)
    decided = request(make_token)
    outbox.deliver_due()
    assert len(fake_slack.posted()) == 1
    fake_slack.down = True
    calls = len(fake_slack.calls)
    resolve_by_api(decided, api_client)  # decided while Slack is down
    waiting = request(make_token)  # and another request asked meanwhile
    assert len(fake_slack.calls) == calls, "neither waited on Slack"
    start = timezone.now()
    for hours in (0, 0.01, 0.1, 1, 3, 6, 12):
        outbox.deliver_due(now=start + timedelta(hours=hours))
    slack = OutboxMessage.objects.filter(kind__startswith="slack_")
    assert not slack.filter(failed_at__isnull=False).exists(), "nothing given up"
    assert not slack.filter(delivered_at__isnull=False, created_at__gt=start).exists()
    fake_slack.down = False
    outbox.deliver_due(now=start + timedelta(hours=30))
    assert not slack.filter(delivered_at__isnull=True).exists()
    messages = {m["ts"]: m for m in fake_slack.posted()}
    assert len(messages) == 2
    decided_ts = SlackMessage.objects.get(token=decided).ts
    waiting_ts = SlackMessage.objects.get(token=waiting).ts
    assert actions_of(messages[decided_ts]["blocks"]) == ["open"]
    assert actions_of(messages[waiting_ts]["blocks"])[:2] == ["approve", "reject"]


def test_reminders_and_escalations_are_thread_replies(make_token, slack_connection, fake_slack):
    token = request(make_token)
    outbox.deliver_due()
    assert approvals.token_remind(token=token) == 2
    outbox.deliver_due()
    replies = [c for c in fake_slack.called("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 3  # the channel, and each undecided approver's direct message
    channel_reply = next(c for c in replies if c.params["channel"] == "C0APPROVALS")
    assert "still waiting for <@UALICE> and <@UBOB>" in channel_reply.params["text"]
    channel_message = SlackMessage.objects.get(token=token, target_kind="channel")
    assert channel_reply.params["thread_ts"] == channel_message.ts

    fake_slack.add_user("erin@example.com", "UERIN")
    approvals.token_escalate(token=token, addresses=["erin@example.com"])
    outbox.deliver_due()
    escalation = [
        c for c in fake_slack.called("chat.postMessage") if "Escalated" in c.params.get("text", "")
    ]
    assert len(escalation) == 1 and "<@UERIN>" not in escalation[0].params["text"]
    assert "erin@example.com" in escalation[0].params["text"]
    assert any(c.params["channel"] == "UERIN" for c in fake_slack.called("chat.postMessage"))


def test_a_reply_sent_twice_is_posted_once(make_token, slack_connection, fake_slack):
    connections.slack_update(connection=slack_connection, direct_messages=False)
    token = request(make_token)
    outbox.deliver_due()
    approvals.token_remind(token=token)
    (reply,) = slack_rows(token, Kind.SLACK_REPLY)
    outbox.deliver_due()
    handlers.reply_in_thread(OutboxMessage.objects.get(pk=reply.pk))
    replies = [c for c in fake_slack.called("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1


def test_secrets_are_encrypted_at_rest_and_shown_only_as_a_hint(slack_connection):
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM tokens_slackconnection")
        stored = json.dumps([str(v) for v in cursor.fetchone()])
    assert BOT_TOKEN not in stored and SIGNING_SECRET not in stored
    assert slack_connection.bot_token_hint == "xoxb-…ests"
    assert slack_connection.signing_secret_hint == "…85a5"
    assert connections.bot_token(slack_connection) == BOT_TOKEN
    assert connections.signing_secret(slack_connection) == SIGNING_SECRET


def test_a_disconnect_closes_what_was_queued(make_token, slack_connection, fake_slack):
    token = request(make_token)
    connections.slack_disconnect(connection=slack_connection)
    outbox.deliver_due()
    assert fake_slack.calls == []
    rows = slack_rows(token, Kind.SLACK_POST)
    assert rows and all("disconnected" in r.last_error for r in rows)
    assert not SlackConnection.objects.exists()


def test_the_bot_token_never_reaches_the_logs(make_token, slack_connection, fake_slack, caplog):
    from tokens.platform.logging import RedactSecretsFilter

    fake_slack.fail("chat.postMessage", "invalid_auth", "invalid_auth", "invalid_auth")
    request(make_token)
    with caplog.at_level("DEBUG"):
        outbox.deliver_due()
    records = "\n".join(r.getMessage() for r in caplog.records)
    assert "invalid_auth" in records
    assert BOT_TOKEN not in records
    import logging

    record = logging.LogRecord("x", logging.ERROR, "", 0, f"token={BOT_TOKEN}", None, None)
    RedactSecretsFilter().filter(record)
    assert BOT_TOKEN not in record.getMessage() and "xoxb-<redacted>" in record.getMessage()
