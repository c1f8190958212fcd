"""tokens.domain.durations: the duration grammar, timeouts, TTLs and list periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokens.domain.durations import parse_duration, parse_period, resolve_timeout, resolve_ttl
from tokens.domain.exceptions import InvalidInput

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("2h", timedelta(hours=2)),
        ("1hr", timedelta(hours=1)),
        ("3d", timedelta(days=3)),
        ("4w", timedelta(weeks=4)),
        ("1h30m", timedelta(minutes=90)),
        ("1w2d", timedelta(days=9)),
        ("0s", timedelta(0)),
        (" 10m ", timedelta(minutes=10)),
    ],
)
def test_it_parses_durations(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "10", "10ms", "1y", "2 days", "1 hour", "-5s", "abc", "1.5h", "h", "1" * 100 + "s"],
)
def test_it_refuses_non_durations(value):
    assert parse_duration(value) is None


def test_it_does_not_overflow_on_huge_durations():
    assert parse_duration("99999999999999999999w") == timedelta.max
    with pytest.raises(InvalidInput, match="365 days"):
        resolve_timeout("99999999999999999999w", now=NOW)
    with pytest.raises(InvalidInput, match="365 days"):
        resolve_ttl("99999999999999999999d", now=NOW)


def test_it_resolves_timeouts_from_durations_and_dates():
    assert resolve_timeout("1h", now=NOW) == NOW + timedelta(hours=1)
    assert resolve_timeout("2030-01-01T13:00:00Z", now=NOW) == NOW + timedelta(hours=1)
    assert resolve_timeout("2030-01-01T13:00:00.000z", now=NOW) == NOW + timedelta(hours=1)
    assert resolve_timeout("2030-01-01T14:00:00+01:00", now=NOW) == NOW + timedelta(hours=1)
    assert resolve_timeout("365d", now=NOW) == NOW + timedelta(days=365)


@pytest.mark.parametrize(
    "value",
    [
        "366d",
        "2031-01-02T00:00:00Z",
        "2030-01-01T11:59:59Z",
        "2030-01-01T13:00:00",
        "soon",
        None,
        5,
    ],
)
def test_it_refuses_bad_timeouts(value):
    with pytest.raises(InvalidInput):
        resolve_timeout(value, now=NOW)


def test_it_names_the_field_in_messages():
    with pytest.raises(InvalidInput, match="^Invalid idempotencyKeyTTL"):
        resolve_ttl("1 hour", now=NOW)
    with pytest.raises(InvalidInput, match="^Invalid timeout"):
        resolve_timeout("1 hour", now=NOW)


@pytest.mark.parametrize("value", ["2030-06-01T00:00:00Z", "1 hour", "366d", "", None])
def test_it_refuses_bad_ttls(value):
    with pytest.raises(InvalidInput):
        resolve_ttl(value, now=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("30m", timedelta(minutes=30)),
        ("1w", timedelta(weeks=1)),
        ("2 days", timedelta(days=2)),
        ("30 minutes", timedelta(minutes=30)),
        ("1mo", timedelta(seconds=2629800)),
        ("1y", timedelta(seconds=31557600)),
        ("60000", timedelta(minutes=1)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_it_parses_list_periods(value, expected):
    assert parse_period(value) == expected


@pytest.mark.parametrize("value", ["", "forever", "1 fortnight", "h", "1h garbage", "9" * 30 + "y"])
def test_it_refuses_bad_list_periods(value):
    assert parse_period(value) is None
