"""The duration grammar shared by ``timeout``, ``idempotencyKeyTTL`` and list periods."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_DURATION

# Upstream's grammar: one or more <number><unit> with units w, d, hr, h, m, s ("1h30m").
_DURATION = re.compile(r"^(?:\d+(?:w|d|hr|h|m|s))+$")
_PART = re.compile(r"(\d+)(w|d|hr|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "hr": 3600, "h": 3600, "m": 60, "s": 1}
DURATION_HELP = (
    "a duration such as 30s, 10m, 2h, 1hr, 3d, 4w or 1h30m, or an ISO-8601 date-time in the "
    "future, at most 365 days ahead"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TTL_HELP = "a duration such as 30s, 10m, 2h, 1hr, 3d, 4w or 1h30m, at most 365 days"


def parse_duration(value: str) -> timedelta | None:
    """Parse the duration grammar; None if the string is not a duration."""
    value = value.strip()
    if len(value) > 100 or not _DURATION.match(value):
        return None
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # "99999999999w": far past any cap, so callers reject it (not a 500)
        return timedelta.max


def format_duration(duration: timedelta) -> str:
    """A whole number of seconds in the grammar ``parse_duration`` reads: ``1h30m``, ``15m``."""
    remaining = max(0, int(duration.total_seconds()))
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _parse_iso(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def resolve_timeout(value: object, *, now: datetime, field: str = "timeout") -> datetime:
    """A duration, an ISO date-time or (as upstream's ``z.coerce.date()``) a JSON number of
    epoch milliseconds → the moment the token times out. Unlike upstream, a moment in the past
    is a 400, not a token that times out at once."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_milliseconds(value, now=now, field=field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"Invalid {field}: expected {DURATION_HELP}, or epoch milliseconds.")
    duration = parse_duration(value)
    if duration is not None:
        if duration > MAX_DURATION:
            raise InvalidInput(f"Invalid {field} {value!r}: it is more than 365 days.")
        return now + duration
    moment = _parse_iso(value)
    if moment is None:
        raise InvalidInput(f"Invalid {field} {value!r}: expected {DURATION_HELP}.")
    if moment <= now:
        raise InvalidInput(f"Invalid {field} {value!r}: the date is in the past.")
    if moment - now > MAX_DURATION:
        raise InvalidInput(f"Invalid {field} {value!r}: it is more than 365 days ahead.")
    return moment


def _epoch_milliseconds(value: float, *, now: datetime, field: str) -> datetime:
    try:
        moment = _EPOCH + timedelta(milliseconds=value)
    except OverflowError:  # beyond year 9999 (or before year 1)
        moment = None
    if moment is None and value > 0:
        raise InvalidInput(f"Invalid {field} {value!r}: it is more than 365 days ahead.")
    if moment is None or moment <= now:
        when = f", here {moment.isoformat(timespec='milliseconds')}" if moment else ""
        raise InvalidInput(
            f"Invalid {field} {value!r}: the date is in the past (a number is epoch "
            f"milliseconds{when}); send a duration such as 10m, or a future date."
        )
    if moment - now > MAX_DURATION:
        raise InvalidInput(f"Invalid {field} {value!r}: it is more than 365 days ahead.")
    return moment


def resolve_ttl(value: object, *, now: datetime, field: str = "idempotencyKeyTTL") -> datetime:
    if not isinstance(value, str) or parse_duration(value) is None:
        raise InvalidInput(f"Invalid {field} {value!r}: expected {TTL_HELP}.")
    duration = parse_duration(value)
    assert duration is not None
    if duration > MAX_DURATION:
        raise InvalidInput(f"Invalid {field} {value!r}: it is more than 365 days.")
    return now + duration


# List periods follow the npm "parse-duration" words the SDK users type: 1h, 24h, 7d, 1w, 1mo, 1y,
# "2 days", "30 minutes".
_PERIOD_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_PERIOD_UNITS = {
    **dict.fromkeys(["ms", "millisecond", "milliseconds"], 0.001),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], 60),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], 3600),
    **dict.fromkeys(["d", "day", "days"], 86400),
    **dict.fromkeys(["w", "wk", "wks", "week", "weeks"], 604800),
    **dict.fromkeys(["mo", "month", "months"], 2629800),
    **dict.fromkeys(["y", "yr", "yrs", "year", "years"], 31557600),
}


def parse_period(value: str) -> timedelta | None:
    text = value.strip().lower()
    if re.fullmatch(r"\d+", text):
        try:
            return timedelta(milliseconds=int(text))
        except (OverflowError, ValueError):  # more days than timedelta holds, or > 4300 digits
            return None
    parts = _PERIOD_PART.findall(text)
    if not parts or _PERIOD_PART.sub("", text).strip(" ,") != "":
        return None
    seconds = 0.0
    for number, unit in parts:
        if unit not in _PERIOD_UNITS:
            return None
        seconds += float(number) * _PERIOD_UNITS[unit]
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return None
