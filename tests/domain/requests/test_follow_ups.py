"""Requests approvers can decide (6): remindAfter sends one reminder to approvers who have not
decided; escalateAfter + escalateTo asks more people; both through scheduled outbox rows, skipped
once the token is resolved."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error
from tokens.delivery import outbox
from tokens.domain import actors, decide, lifecycle
from tokens.models import OutboxMessage, Recipient, Token, TokenEvent

SYSTEM = actors.Actor.system()


@pytest.fixture(autouse=True)
def _inline_sender(settings) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1


def create(api_client, **body) -> Token:
    response = api_client.post(TOKENS, {"timeout": "1d", **body}, format="json")
    assert response.status_code == 200, response.content
    return Token.objects.get(pk=response.json()["id"].removeprefix("waitpoint_"))


def sent(now=None) -> list:
    mail.outbox.clear()
    outbox.deliver_due(now=now)
    return sorted(mail.outbox, key=lambda m: m.to[0])


def test_follow_ups_are_scheduled_outbox_rows(api_client):
    before = timezone.now()
    token = create(
        api_client,
        approvers=["alice@example.com"],
        remindAfter="2h",
        escalateAfter="6h",
        escalateTo=["boss@example.com"],
    )
    reminder = OutboxMessage.objects.get(token=token, kind=OutboxMessage.Kind.REMINDER)
    escalation = OutboxMessage.objects.get(token=token, kind=OutboxMessage.Kind.ESCALATION)
    assert (
        before + timedelta(hours=2)
        <= reminder.next_attempt_at
        <= timezone.now() + timedelta(hours=2)
    )
    assert escalation.next_attempt_at - reminder.next_attempt_at == timedelta(hours=4)
    assert escalation.payload == {"to": ["boss@example.com"]}
    # Not before their time.
    assert [m.to for m in sent()] == [["alice@example.com"]]
    assert not mail.outbox[0].subject.startswith("Reminder")


def test_one_reminder_goes_to_those_who_have_not_decided(api_client, make_token):
    token = create(
        api_client,
        approvers=["alice@example.com", "bob@example.com", "carol@example.com"],
        requiredApprovals=2,
        remindAfter="2h",
    )
    sent()
    decide.decide(
        authority=decide.Authority.link(),
        token=token, actor=SYSTEM, voter=decide.Voter.for_email("alice@example.com"),
        decision="approved",
    )  # fmt: skip
    later = timezone.now() + timedelta(hours=2, seconds=1)
    reminders = sent(now=later)  # the reminder row queues the e-mails, the next round sends them
    assert [m.to[0] for m in reminders] == ["bob@example.com", "carol@example.com"]
    assert all(m.subject.startswith("Reminder: ") for m in reminders)
    assert "This is a reminder: you have not decided yet." in reminders[0].body
    assert re.search(r"/decide/\d+/", reminders[0].body)  # still their personal link
    assert token.events.get(kind=TokenEvent.Kind.REMINDED).detail == {
        "to": ["bob@example.com", "carol@example.com"]
    }
    assert sent(now=later + timedelta(days=1)) == []  # one reminder, not more


def test_escalation_asks_more_people_with_links_of_their_own(api_client):
    token = create(
        api_client,
        approvers=["alice@example.com"],
        escalateAfter="6h",
        escalateTo=["boss@example.com", "alice@example.com"],
    )
    sent()
    later = timezone.now() + timedelta(hours=6, seconds=1)
    escalated = sent(now=later)
    assert [m.to for m in escalated] == [["boss@example.com"]]  # alice was asked already
    assert escalated[0].subject.startswith("Escalated: ")
    token.refresh_from_db()
    assert token.approvers == ["alice@example.com", "boss@example.com"]
    assert Recipient.objects.filter(token=token, email="boss@example.com").exists()


def test_follow_ups_of_a_resolved_token_are_skipped(api_client):
    token = create(
        api_client,
        approvers=["alice@example.com"],
        remindAfter="1h",
        escalateAfter="2h",
        escalateTo=["boss@example.com"],
    )
    sent()
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"ok": True})
    assert sent(now=timezone.now() + timedelta(hours=3)) == []
    for row in OutboxMessage.objects.filter(token=token).exclude(
        kind=OutboxMessage.Kind.APPROVAL_EMAIL
    ):
        assert row.failed_at and row.last_error == "Not sent: the token was already resolved."
    assert not token.events.filter(kind__in=["reminded", "escalated"]).exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"remindAfter": "soon"}, "Invalid remindAfter: expected a duration from creation"),
        ({"remindAfter": "2d"}, "Invalid remindAfter: it must come before the timeout."),
        ({"escalateAfter": "1h"}, "Invalid escalation: escalateAfter and escalateTo go together."),
        ({"escalateTo": ["a@example.com"]}, "Invalid escalation: escalateAfter and escalateTo"),
        (
            {"escalateAfter": "1h", "escalateTo": ["nope"]},
            "Invalid approvers: 'nope' is not an e-mail address.",
        ),
        (
            {"escalateAfter": "1h", "escalateTo": []},
            "Invalid escalateTo: expected at least one e-mail address.",
        ),
    ],
)
def test_bad_follow_ups_are_refused(api_client, body, message):
    error = assert_error(api_client.post(TOKENS, {"timeout": "1d", **body}, format="json"), 400)
    assert error["error"].startswith(message), error["error"]
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("body", "after", "event"),
    [
        ({"remindAfter": "2h"}, timedelta(hours=2, seconds=1), "reminded"),
        (
            {"escalateAfter": "6h", "escalateTo": ["boss@example.com"]},
            timedelta(hours=6, seconds=1),
            "escalated",
        ),
    ],
)
def test_follow_up_emails_queued_before_the_decision_are_not_sent_after_it(
    api_client, body, after, event
):
    token = create(api_client, approvers=["alice@example.com"], **body)
    sent()
    later = timezone.now() + after
    outbox.deliver_due(now=later, rounds=1)  # the follow-up row queues its e-mails only
    assert token.events.filter(kind=event).exists()
    queued = OutboxMessage.objects.filter(
        token=token, kind=OutboxMessage.Kind.APPROVAL_EMAIL, delivered_at__isnull=True
    )
    assert queued.count() == 1
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"status": "approved"})

    assert sent(now=later) == []
    (skipped,) = queued.all()
    assert skipped.failed_at and skipped.last_error == "Not sent: the token was already resolved."
