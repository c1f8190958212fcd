"""lifecycle.token_create against the database, with ``now`` injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokens.domain import actors, lifecycle
from tokens.domain.exceptions import InvalidInput, TooManyTags
from tokens.models import Token, TokenEvent, TokenTag

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def create(environment, **kwargs):
    kwargs.setdefault("now", NOW)
    return lifecycle.token_create(environment=environment, actor=actors.Actor.system(), **kwargs)


def test_it_defaults_to_a_ten_minute_timeout(environment):
    result = create(environment)
    token = Token.objects.get(pk=result.token.pk)
    assert result.is_cached is False
    assert token.status == Token.Status.WAITING
    assert token.timeout_at == NOW + timedelta(minutes=10)
    assert token.created_at == NOW
    assert token.completed_at is None
    assert token.environment == environment
    assert token.idempotency_key is None
    assert token.idempotency_key_expires_at is None
    assert token.tags == []


def test_it_defaults_to_a_one_hour_idempotency_ttl(environment):
    token = create(environment, idempotency_key="k1").token
    token.refresh_from_db()
    assert token.idempotency_key == "k1"
    assert token.idempotency_key_expires_at == NOW + timedelta(hours=1)


def test_it_follows_the_default_timeout_setting(environment, settings):
    settings.WAITPOINTS_DEFAULT_TIMEOUT = "2h"
    assert create(environment).token.timeout_at == NOW + timedelta(hours=2)
    settings.WAITPOINTS_DEFAULT_TIMEOUT = ""
    assert create(environment).token.timeout_at is None


def test_it_records_a_created_event(environment):
    token = create(environment).token
    events = list(token.events.values_list("kind", "channel", "created_at"))
    assert events == [(TokenEvent.Kind.CREATED, TokenEvent.Channel.SYSTEM, NOW)]


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("2h", timedelta(hours=2)),
        ("1hr", timedelta(hours=1)),
        ("3d", timedelta(days=3)),
        ("4w", timedelta(weeks=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("365d", timedelta(days=365)),
        ("2030-01-02T00:00:00.000Z", timedelta(hours=12)),
        ("2030-01-02T02:00:00+02:00", timedelta(hours=12)),
    ],
)
def test_it_accepts_the_timeout_grammar(environment, timeout, expected):
    token = create(environment, timeout=timeout).token
    token.refresh_from_db()
    assert token.timeout_at == NOW + expected


@pytest.mark.parametrize(
    ("timeout", "fragment"),
    [
        ("10 minutes", "30s"),
        ("abc", "30s"),
        ("10ms", "30s"),
        ("1y", "30s"),
        ("-5s", "30s"),
        ("", "30s"),
        ("   ", "30s"),
        ("2030-01-02T00:00:00", "30s"),  # no offset: ambiguous
        ("2030-13-45T00:00:00Z", "30s"),
        ("2029-12-31T23:59:59Z", "in the past"),
        ("2030-01-01T12:00:00Z", "in the past"),  # exactly now is not in the future
        ("366d", "365 days"),
        ("53w", "365 days"),
        ("8761h", "365 days"),
        ("2031-01-02T00:00:00Z", "365 days"),
        ("99999999999999999999d", "365 days"),
        ("9999999999w", "365 days"),
        (30, "in the past"),  # a number is epoch milliseconds (upstream): 1970
        (True, "30s"),
        (["1h"], "30s"),
        ({"in": "1h"}, "30s"),
    ],
)
def test_it_rejects_bad_timeouts_and_creates_nothing(environment, timeout, fragment):
    with pytest.raises(InvalidInput) as caught:
        create(environment, timeout=timeout)
    assert caught.value.http_status == 400
    assert caught.value.message.startswith("Invalid timeout")
    assert fragment in caught.value.message
    assert not Token.objects.exists()


@pytest.mark.parametrize("ttl", ["1 hour", "-5s", "abc", "99999999d", "366d", "", 3600, "1y"])
def test_it_rejects_an_invalid_idempotency_ttl_and_creates_nothing(environment, ttl):
    with pytest.raises(InvalidInput) as caught:
        create(environment, idempotency_key="k", idempotency_key_ttl=ttl)
    assert caught.value.http_status == 400
    assert "idempotencyKeyTTL" in caught.value.message
    assert not Token.objects.exists()
    assert not TokenEvent.objects.exists()


def test_it_rejects_an_invalid_ttl_even_without_a_key(environment):
    with pytest.raises(InvalidInput):
        create(environment, idempotency_key_ttl="1 hour")
    assert not Token.objects.exists()


def test_it_accepts_a_ttl_in_the_duration_grammar(environment):
    token = create(environment, idempotency_key="k", idempotency_key_ttl="1h30m").token
    assert token.idempotency_key_expires_at == NOW + timedelta(minutes=90)


@pytest.mark.parametrize("key", ["", 12, ["k"], "x" * 2049])
def test_it_rejects_bad_idempotency_keys(environment, key):
    with pytest.raises(InvalidInput) as caught:
        create(environment, idempotency_key=key)
    assert "idempotencyKey" in caught.value.message
    assert not Token.objects.exists()


def test_it_accepts_a_2048_character_idempotency_key(environment):
    key = "k" * 2048
    first = create(environment, idempotency_key=key)
    again = create(environment, idempotency_key=key)
    assert again.is_cached is True
    assert again.token.pk == first.token.pk


def test_it_returns_the_original_token_for_the_same_key(environment):
    first = create(environment, idempotency_key="order-1")
    second = create(environment, idempotency_key="order-1", now=NOW + timedelta(minutes=59))
    assert first.is_cached is False
    assert second.is_cached is True
    assert second.token.pk == first.token.pk
    assert Token.objects.count() == 1


def test_it_returns_the_original_even_when_it_is_completed(environment):
    first = create(environment, idempotency_key="order-1").token
    lifecycle.token_complete(
        token=first, actor=actors.Actor.system(), data="done", now=NOW + timedelta(seconds=1)
    )
    again = create(environment, idempotency_key="order-1", now=NOW + timedelta(seconds=2))
    assert again.is_cached is True
    assert again.token.pk == first.pk
    assert again.token.status == Token.Status.COMPLETED
    assert Token.objects.count() == 1


def test_it_never_mutates_the_original_with_different_parameters(environment):
    first = create(environment, idempotency_key="K", timeout="1h", tags=["a"]).token
    again = create(
        environment,
        idempotency_key="K",
        timeout="5m",
        tags=["b"],
        idempotency_key_ttl="2h",
        now=NOW + timedelta(seconds=5),
    )
    assert again.is_cached is True
    assert again.token.pk == first.pk
    stored = Token.objects.get(pk=first.pk)
    assert stored.timeout_at == NOW + timedelta(hours=1)
    assert stored.tags == ["a"]
    assert stored.idempotency_key_expires_at == NOW + timedelta(hours=1)
    assert list(TokenTag.objects.values_list("name", flat=True)) == ["a"]
    assert Token.objects.count() == 1
    assert TokenEvent.objects.filter(kind=TokenEvent.Kind.CREATED).count() == 1


def test_it_creates_a_new_token_after_the_ttl(environment):
    old = create(environment, idempotency_key="K", idempotency_key_ttl="2s").token
    within = create(environment, idempotency_key="K", now=NOW + timedelta(seconds=1))
    assert within.is_cached is True
    assert within.token.pk == old.pk

    later = create(environment, idempotency_key="K", now=NOW + timedelta(seconds=3))
    assert later.is_cached is False
    assert later.token.pk != old.pk
    assert later.token.idempotency_key == "K"
    stored_old = Token.objects.get(pk=old.pk)
    assert stored_old.idempotency_key == "K"  # kept for display
    assert stored_old.status == Token.Status.WAITING
    assert stored_old.timeout_at == old.timeout_at
    assert stored_old.active_key_digest is None

    # The new one is now the active token for the key.
    again = create(environment, idempotency_key="K", now=NOW + timedelta(seconds=4))
    assert again.is_cached is True
    assert again.token.pk == later.token.pk
    assert Token.objects.filter(idempotency_key="K").count() == 2


def test_it_treats_the_expiry_moment_as_expired(environment):
    old = create(environment, idempotency_key="K", idempotency_key_ttl="10s").token
    at_expiry = create(environment, idempotency_key="K", now=NOW + timedelta(seconds=10))
    assert at_expiry.is_cached is False
    assert at_expiry.token.pk != old.pk


def test_it_scopes_idempotency_keys_to_the_environment(environment, other_environment):
    mine = create(environment, idempotency_key="shared")
    theirs = create(other_environment, idempotency_key="shared")
    assert theirs.is_cached is False
    assert theirs.token.pk != mine.token.pk
    assert theirs.token.environment == other_environment


def test_it_accepts_a_single_string_tag(environment):
    token = create(environment, tags="single-tag").token
    token.refresh_from_db()
    assert token.tags == ["single-tag"]
    assert list(token.tag_rows.values_list("name", flat=True)) == ["single-tag"]


def test_it_removes_duplicate_tags_keeping_order(environment):
    token = create(environment, tags=["b", "a", "b", "c", "a"]).token
    token.refresh_from_db()
    assert token.tags == ["b", "a", "c"]
    assert sorted(token.tag_rows.values_list("name", flat=True)) == ["a", "b", "c"]


def test_it_accepts_ten_tags(environment):
    tags = [f"t{i}" for i in range(10)]
    assert create(environment, tags=tags).token.tags == tags


def test_it_refuses_eleven_tags_with_upstreams_message(environment):
    with pytest.raises(TooManyTags) as caught:
        create(environment, tags=[f"t{i}" for i in range(11)])
    assert caught.value.http_status == 422
    assert caught.value.message == "Waitpoints can only have 10 tags, you're trying to set 11."
    assert not Token.objects.exists()


def test_it_accepts_a_128_character_tag(environment):
    tag = "t" * 128
    assert create(environment, tags=[tag]).token.tags == [tag]


@pytest.mark.parametrize(
    "tags",
    [["t" * 129], [""], ["   "], ["ok", "\t"], [1], [None], ["a", ["b"]], 5, {"a": "b"}],
)
def test_it_rejects_bad_tags(environment, tags):
    with pytest.raises(InvalidInput) as caught:
        create(environment, tags=tags)
    assert caught.value.http_status == 400
    assert "tag" in caught.value.message.lower()
    assert not Token.objects.exists()
    assert not TokenTag.objects.exists()
