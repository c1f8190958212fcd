"""Clicks at the same moment, on real concurrent PostgreSQL connections (one thread and one
connection per click, released together), and two copies of one post sent at once."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.domain.test_races import run_together
from tests.fake_slack import click, signed_post
from tokens.delivery.slack import handlers
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, SlackMessage, Token, TokenEvent

pytestmark = pytest.mark.django_db(transaction=True)


def ask(environment, **extra) -> Token:
    values = {
        "timeout": "1h",
        "approvers": ["alice@example.com", "bob@example.com"],
        "requested_by": "rita@example.com",
        **extra,
    }
    return lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), **values
    ).token


def post(payload: dict) -> int:
    return signed_post(Client(), payload).status_code


def stored(token: Token) -> tuple[Token, dict]:
    token.refresh_from_db()
    return token, json.loads(token.output)["json"] if token.output else {}


def test_a_double_click_decides_once(environment, slack_connection, fake_slack):
    token = ask(environment)
    statuses = run_together([lambda: post(click(token, user="UALICE")) for _ in range(2)])
    assert statuses == [200, 200]
    token, output = stored(token)
    assert token.status == Token.Status.COMPLETED
    assert output == {"status": "approved", "by": "alice@example.com"}
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 1
    notices = OutboxMessage.objects.filter(token=token, kind=OutboxMessage.Kind.SLACK_NOTICE)
    assert [n.payload["text"][:16] for n in notices] == ["Already decided:"]


def test_two_approvers_clicking_at_once_one_decision_wins(
    environment, slack_connection, fake_slack
):
    token = ask(environment)
    statuses = run_together(
        [
            lambda: post(click(token, user="UALICE", action="approve")),
            lambda: post(click(token, user="UBOB", action="reject")),
        ]
    )
    assert statuses == [200, 200]
    token, output = stored(token)
    assert token.status == Token.Status.COMPLETED
    winner = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert output["by"] == winner.email
    assert output["status"] == ("approved" if winner.email == "alice@example.com" else "rejected")
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 1


def test_two_approvers_at_once_both_count_towards_a_quorum(
    environment, slack_connection, fake_slack
):
    token = ask(environment, required_approvals=2)
    statuses = run_together(
        [lambda: post(click(token, user="UALICE")), lambda: post(click(token, user="UBOB"))]
    )
    assert statuses == [200, 200]
    token, output = stored(token)
    assert token.status == Token.Status.COMPLETED
    assert sorted(vote["by"] for vote in output["votes"]) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert token.events.filter(kind=TokenEvent.Kind.VOTED).count() == 2
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1


def test_two_copies_of_one_post_leave_one_message(environment, slack_connection, fake_slack):
    from tokens.delivery.slack import connections

    connections.slack_update(connection=slack_connection, direct_messages=False)
    token = ask(environment)
    (row,) = OutboxMessage.objects.filter(token=token, kind=OutboxMessage.Kind.SLACK_POST)
    # Both copies read the message row before either records its ts (Slack answers slowly).
    fake_slack.fail("chat.postMessage", ("slow", 0.5), ("slow", 0.5))
    run_together([lambda: handlers.post_request(OutboxMessage.objects.get(pk=row.pk))] * 2)
    assert len(fake_slack.called("chat.postMessage")) == 2
    assert len(fake_slack.called("chat.delete")) == 1
    (message,) = fake_slack.posted()
    assert SlackMessage.objects.get(token=token).ts == message["ts"]
