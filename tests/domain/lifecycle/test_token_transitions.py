"""token_complete, token_cancel, token_force_timeout and the audit trail, with ``now`` injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from tokens.domain import actors, deadline, lifecycle
from tokens.domain.exceptions import InvalidInput
from tokens.domain.representation import TokenOutputSerializer
from tokens.models import ApiKey, Token, TokenEvent

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
SYSTEM = actors.Actor.system()


@pytest.fixture
def token(environment):
    return lifecycle.token_create(
        environment=environment, actor=SYSTEM, timeout="10m", now=NOW
    ).token


def complete(token, data=lifecycle.NO_OUTPUT, now=LATER, actor=SYSTEM):
    return lifecycle.token_complete(token=token, actor=actor, data=data, now=now)


def kinds(token):
    return list(token.events.order_by("id").values_list("kind", flat=True))


def v1(token, now=LATER, detail=True):
    token = Token.objects.get(pk=token.pk)
    return TokenOutputSerializer(
        now=now, base="http://testserver", detail=detail
    ).to_representation(token)


@pytest.mark.parametrize(
    ("data", "output", "output_type"),
    [
        ("approved", "approved", "text/plain"),
        ({"status": "approved"}, '{"json":{"status":"approved"}}', "application/super+json"),
        ([1, "two"], '{"json":[1,"two"]}', "application/super+json"),
        (42, '{"json":42}', "application/super+json"),
        (1.5, '{"json":1.5}', "application/super+json"),
        (0, '{"json":0}', "application/super+json"),
        (False, '{"json":false}', "application/super+json"),
        (None, '{"json":null}', "application/super+json"),
        ({"é": "ü"}, '{"json":{"é":"ü"}}', "application/super+json"),
    ],
)
def test_it_encodes_output_as_the_sdk_decodes_it(token, data, output, output_type):
    result = complete(token, data)
    assert result.applied is True
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.COMPLETED
    assert stored.output == output
    assert stored.output_type == output_type
    assert stored.output_is_error is False
    assert stored.completed_at == LATER


@pytest.mark.parametrize("data", [lifecycle.NO_OUTPUT, ""])
def test_it_completes_without_output(token, data):
    assert complete(token, data).applied is True
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.COMPLETED
    assert stored.output is None
    assert stored.output_type == "application/json"
    body = v1(stored)
    assert "output" not in body
    assert body["outputIsError"] is False


def test_it_records_the_completion_with_its_actor(token, environment, secret_key):
    api_key = ApiKey.objects.get(environment=environment)
    actor = actors.Actor(
        channel=TokenEvent.Channel.API,
        api_key=api_key,
        ip="203.0.113.7",
        user_agent="node " + "x" * 600,
    )
    result = complete(token, {"ok": True}, actor=actor)
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert result.resolution == event
    assert event.channel == TokenEvent.Channel.API
    assert event.api_key == api_key
    assert event.user is None
    assert event.ip == "203.0.113.7"
    assert event.user_agent == ("node " + "x" * 600)[:512]
    assert event.created_at == LATER


def test_it_records_the_dashboard_user(token):
    user = get_user_model().objects.create_user("carol", password="pw-carol-123")
    actor = actors.Actor(channel=TokenEvent.Channel.DASHBOARD, user=user, ip="::1")
    complete(token, {"status": "approved"}, actor=actor)
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.user, event.api_key, event.ip) == ("dashboard", user, None, "::1")


def test_it_records_the_callback_channel(token):
    actor = actors.Actor(channel=TokenEvent.Channel.CALLBACK, ip="198.51.100.1", user_agent="curl")
    complete(token, {}, actor=actor)
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.channel, event.ip, event.user_agent) == ("callback", "198.51.100.1", "curl")


def test_it_ignores_a_second_completion(token):
    complete(token, "first")
    actor = actors.Actor(channel=TokenEvent.Channel.CALLBACK, ip="198.51.100.9")
    second = complete(token, "second", now=LATER + timedelta(seconds=5), actor=actor)
    assert second.applied is False
    assert second.token.status == Token.Status.COMPLETED
    assert second.resolution is not None
    assert second.resolution.kind == TokenEvent.Kind.COMPLETED
    stored = Token.objects.get(pk=token.pk)
    assert stored.output == "first"
    assert stored.completed_at == LATER
    assert kinds(token) == ["created", "completed", "complete_ignored"]
    ignored = token.events.get(kind=TokenEvent.Kind.COMPLETE_IGNORED)
    assert ignored.channel == TokenEvent.Channel.CALLBACK
    assert ignored.ip == "198.51.100.9"
    assert ignored.detail == {"status": "COMPLETED"}


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=2)])
def test_it_refuses_a_completion_after_the_timeout_before_any_sweep(token, late):
    timeout_at = token.timeout_at
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING
    assert deadline.effective(token, timeout_at).status == Token.Status.TIMED_OUT

    result = complete(token, "too late", now=timeout_at + late)
    assert result.applied is False
    assert result.token.status == Token.Status.TIMED_OUT
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.TIMED_OUT
    assert stored.output_is_error is True
    assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
        "code": "TRIGGER_WAITPOINT_TIMEOUT",
        "message": "Waitpoint timed out at 2030-01-01T12:10:00.000Z",
    }
    assert kinds(token) == ["created", "timed_out", "complete_ignored"]
    assert token.events.get(kind="complete_ignored").detail == {"status": "TIMED_OUT"}


def test_it_completes_just_before_the_timeout(token):
    result = complete(token, "in time", now=token.timeout_at - timedelta(microseconds=1))
    assert result.applied is True
    assert Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED


def test_it_reads_an_overdue_token_as_timed_out(token):
    body = v1(token, now=token.timeout_at + timedelta(seconds=1))
    assert body["status"] == "TIMED_OUT"
    assert body["completedAt"] == "2030-01-01T12:10:00.000Z"
    assert body["outputIsError"] is True
    assert json.loads(body["output"])["code"] == "TRIGGER_WAITPOINT_TIMEOUT"
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING  # reads never write


def test_it_cancels_and_shows_timed_out_in_v1(token):
    result = lifecycle.token_cancel(
        token=token, actor=SYSTEM, reason="  no longer needed ", now=LATER
    )
    assert result.applied is True
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.CANCELLED
    assert stored.cancelled_at == LATER
    assert stored.completed_at == LATER
    assert stored.cancel_reason == "no longer needed"
    body = v1(stored)
    assert body["status"] == "TIMED_OUT"
    assert body["statusDetail"] == "CANCELLED"
    assert body["cancelledAt"] == "2030-01-01T12:01:00.000Z"
    assert body["outputIsError"] is True
    assert json.loads(body["output"]) == {
        "code": "WAITPOINT_CANCELLED",
        "message": "Cancelled: no longer needed",
    }
    event = token.events.get(kind=TokenEvent.Kind.CANCELLED)
    assert event.detail == {"reason": "no longer needed"}


def test_it_cancels_without_a_reason(token):
    lifecycle.token_cancel(token=token, actor=SYSTEM, now=LATER)
    stored = Token.objects.get(pk=token.pk)
    assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
        "code": "WAITPOINT_CANCELLED",
        "message": "Cancelled",
    }


@pytest.mark.parametrize("reason", [5, None, ["x"], "r" * 1001])
def test_it_rejects_a_bad_cancel_reason(token, reason):
    with pytest.raises(InvalidInput):
        lifecycle.token_cancel(token=token, actor=SYSTEM, reason=reason, now=LATER)
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING
    assert kinds(token) == ["created"]


def test_it_refuses_to_cancel_an_overdue_token(token):
    result = lifecycle.token_cancel(
        token=token, actor=SYSTEM, reason="late", now=token.timeout_at + timedelta(seconds=1)
    )
    assert result.applied is False
    assert Token.objects.get(pk=token.pk).status == Token.Status.TIMED_OUT
    assert kinds(token) == ["created", "timed_out", "cancel_ignored"]


def test_it_forces_a_timeout(token):
    admin = actors.Actor(channel=TokenEvent.Channel.ADMIN, ip="10.0.0.1")
    result = lifecycle.token_force_timeout(token=token, actor=admin, now=LATER)
    assert result.applied is True
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.TIMED_OUT
    assert stored.completed_at == LATER
    assert stored.output_is_error is True
    assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
        "code": "TRIGGER_WAITPOINT_TIMEOUT",
        "message": "Waitpoint timed out at 2030-01-01T12:01:00.000Z",
    }
    event = token.events.get(kind=TokenEvent.Kind.TIMED_OUT)
    assert (event.channel, event.ip, event.detail) == ("admin", "10.0.0.1", {"forced": True})
    assert v1(stored)["status"] == "TIMED_OUT"


def _resolve(token, how):
    if how == "completed":
        complete(token, {"n": 1})
    elif how == "timed_out":
        lifecycle.token_expire_due(now=token.timeout_at + timedelta(seconds=1))
    else:
        lifecycle.token_cancel(token=token, actor=SYSTEM, reason="stop", now=LATER)


@pytest.mark.parametrize("how", ["completed", "timed_out", "cancelled"])
def test_it_keeps_terminal_states_unchanged(token, how):
    _resolve(token, how)
    before = Token.objects.values().get(pk=token.pk)
    assert before["status"] != Token.Status.WAITING
    much_later = token.timeout_at + timedelta(days=1)

    assert complete(token, "again", now=LATER + timedelta(seconds=30)).applied is False
    assert complete(token, "again", now=much_later).applied is False
    assert lifecycle.token_cancel(token=token, actor=SYSTEM, now=much_later).applied is False
    assert lifecycle.token_force_timeout(token=token, actor=SYSTEM, now=much_later).applied is False
    assert lifecycle.token_expire_due(now=much_later) == 0

    after = Token.objects.values().get(pk=token.pk)
    # Only the audit chain's head moves: the four refused attempts are its newest links.
    assert after.pop("audit_seq") == before.pop("audit_seq") + 4
    after.pop("audit_head"), before.pop("audit_head")
    assert after == before
    assert kinds(token)[-4:] == [
        "complete_ignored",
        "complete_ignored",
        "cancel_ignored",
        "timeout_ignored",
    ]
    transitions = token.events.filter(kind__in=["completed", "timed_out", "cancelled"])
    assert transitions.count() == 1


def test_it_keeps_another_environment_apart(token, other_environment):
    other = lifecycle.token_create(environment=other_environment, actor=SYSTEM, now=NOW).token
    complete(token, "mine")
    assert Token.objects.get(pk=other.pk).status == Token.Status.WAITING
