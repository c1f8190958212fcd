""" "Not now" (tokens.domain.snoozes): aside for one person until a time, never a decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import actors, approvals, decide, snoozes
from tokens.domain.exceptions import DecisionRefused, InvalidInput, NotWaiting
from tokens.models import OutboxMessage, Snooze, Token, TokenEvent

pytestmark = pytest.mark.django_db
ANN = decide.Voter.for_email("ann@example.com")
BOB = decide.Voter.for_email("bob@example.com")
RECIPIENT = decide.Authority.recipient()


def actor_for(voter: decide.Voter) -> actors.Actor:
    return actors.Actor(channel=TokenEvent.Channel.CALLBACK, email=voter.label)


def aside(token: Token, voter: decide.Voter = ANN, until: str = "4h", **kwargs) -> Snooze:
    return snoozes.token_snooze(
        token=token,
        actor=actor_for(voter),
        authority=kwargs.pop("authority", RECIPIENT),
        voter=voter,
        until=until,
        **kwargs,
    )


@pytest.fixture
def asked(make_token) -> Token:
    return make_token(
        timeout="1d", approvers=["ann@example.com", "bob@example.com"], remind_after="1h"
    )


def test_it_puts_a_request_aside_for_one_person_and_decides_nothing(asked):
    now = timezone.now()
    snooze = aside(asked, now=now)
    assert snooze.until == now + timedelta(hours=4) and snooze.person == "ann@example.com"
    asked.refresh_from_db()
    assert asked.status == Token.Status.WAITING and not asked.votes.exists()
    event = asked.events.get(kind=TokenEvent.Kind.SNOOZED)
    assert event.email == "ann@example.com" and event.detail["by"] == "ann@example.com"
    assert set(snoozes.aside_for(asked, timezone.now())) == {"ann@example.com"}
    again = aside(asked, until="1d", now=now)  # moving the time, not a second row
    assert again.pk == snooze.pk and Snooze.objects.count() == 1


def test_reminders_skip_whoever_has_it_aside(asked):
    aside(asked, until="2h")
    assert approvals.token_remind(token=asked) == 1  # bob only
    reminders = OutboxMessage.objects.filter(
        token=asked, kind=OutboxMessage.Kind.APPROVAL_EMAIL, payload__purpose="reminder"
    )
    assert [m.payload["to"] for m in reminders] == ["bob@example.com"]
    # Its time has passed: ann is reminded again like everybody.
    Snooze.objects.filter(token=asked).update(until=timezone.now() - timedelta(seconds=1))
    assert approvals.token_remind(token=asked) == 2


def test_a_reminder_for_a_time_since_moved_is_not_sent(asked):
    first = aside(asked, until="1h")
    stale = OutboxMessage.objects.get(token=asked, payload__aside_until__isnull=False)
    aside(asked, until="3h")  # moved: the reminder of the first time is stale
    Snooze.objects.filter(pk=first.pk).update(until=timezone.now() - timedelta(seconds=1))
    assert (
        approvals.token_remind(
            token=asked, only=["ann@example.com"], aside_until=stale.payload["aside_until"]
        )
        == 0
    )


def test_the_reminder_when_it_comes_back_goes_to_that_person_alone(asked, settings):
    settings.WAITPOINTS_OUTBOX_SENDERS = 1
    # Put aside two hours ago for one hour: its time has come.
    snooze = aside(asked, until="1h", now=timezone.now() - timedelta(hours=2))
    row = OutboxMessage.objects.get(token=asked, payload__aside_until__isnull=False)
    assert row.next_attempt_at == snooze.until
    outbox.deliver_due()
    sent = OutboxMessage.objects.filter(
        token=asked, kind=OutboxMessage.Kind.APPROVAL_EMAIL, payload__purpose="reminder"
    )
    assert [m.payload["to"] for m in sent] == ["ann@example.com"]


def test_back_now_brings_it_back_and_cancels_that_reminder(asked):
    aside(asked, until="1h")
    assert snoozes.token_unsnooze(token=asked, actor=actor_for(ANN), voter=ANN)
    assert not snoozes.token_unsnooze(token=asked, actor=actor_for(ANN), voter=ANN)
    assert not Snooze.objects.exists()
    row = OutboxMessage.objects.get(token=asked, payload__aside_until__isnull=False)
    assert (
        approvals.token_remind(
            token=asked, only=["ann@example.com"], aside_until=row.payload["aside_until"]
        )
        == 0
    )
    assert asked.events.filter(kind=TokenEvent.Kind.UNSNOOZED).count() == 1


def test_who_may_put_it_aside(asked, make_token):
    stranger = decide.Voter.for_email("eve@example.com")
    with pytest.raises(DecisionRefused) as refused:
        aside(asked, stranger)
    assert refused.value.problem == "not_approver"
    with pytest.raises(DecisionRefused) as anonymous:
        aside(asked, authority=decide.Authority.link())
    assert anonymous.value.problem == "anonymous"
    with pytest.raises(DecisionRefused) as viewer:
        aside(asked, authority=decide.Authority.member("viewer"))
    assert viewer.value.problem == "role"
    assert not Snooze.objects.exists()
    assert asked.events.filter(kind=TokenEvent.Kind.DENIED).count() == 3
    member = decide.Voter.for_user(username="april", email="")
    aside(asked, member, authority=decide.Authority.member("approver"))
    assert Snooze.objects.get().person == "user:april"


@pytest.mark.parametrize("until", ["soon", "", "-1h", "2020-01-01T00:00:00Z", "400d"])
def test_a_bad_time_is_refused(asked, until):
    with pytest.raises(InvalidInput, match="Invalid until"):
        aside(asked, until=until)
    assert not Snooze.objects.exists()


def test_a_resolved_request_cannot_be_put_aside(asked):
    from tokens.domain import lifecycle

    lifecycle.token_cancel(token=asked, actor=actors.Actor.system())
    with pytest.raises(NotWaiting):
        aside(asked)
    assert not Snooze.objects.exists()


def test_the_pages_form_reads_its_date_as_utc():
    assert snoozes.form_until("1d", "") == "1d"
    assert snoozes.form_until("1d", "2026-12-08T09:00") == "2026-12-08T09:00Z"
    assert snoozes.form_until("1d", "2026-12-08T09:00+01:00") == "2026-12-08T09:00+01:00"
