"""Rate limits: windowed counters in Django's cache (Redis, or the database table on the
embedded default), answered with 429, ``Retry-After`` and the ``x-ratelimit-*`` headers.

Why the cache framework and not django-ratelimit: we count *failures* (a wrong password, key or
callback hash) as well as calls, decide inside DRF authentication and the callback view rather
than per view, and must answer the reset time the official SDK reads (``x-ratelimit-reset``, unix
milliseconds: ``packages/core/src/v3/apiClient/core.ts`` waits until then before retrying a 429).
Redis's INCR is atomic; the database cache's increment is read-then-write, so on the embedded
default (one host, SQLite) concurrent failures may be undercounted by a few, never overcounted.

When the counter store is down the limiter fails open: requests pass, one warning is logged, and
the store is not asked again for ``_RETRY_STORE_AFTER`` seconds (a hanging Redis would otherwise
cost every request its socket timeout).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

LOGIN = "login"
API_KEY_FAILURES = "api_key_failures"
CALLBACK_FAILURES = "callback_failures"
API_CALLS = "api_calls"

_SETTINGS = {
    LOGIN: "WAITPOINTS_RATELIMIT_LOGIN",
    API_KEY_FAILURES: "WAITPOINTS_RATELIMIT_API_KEY_FAILURES",
    CALLBACK_FAILURES: "WAITPOINTS_RATELIMIT_CALLBACK_FAILURES",
    API_CALLS: "WAITPOINTS_RATELIMIT_API_CALLS",
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
_RETRY_STORE_AFTER = 10.0


def client_ip(request: HttpRequest) -> str:
    """Who the limiter counts: the address the audit trail records (tokens.http.client_ip)."""
    from tokens import http

    return http.client_ip(request) or "unknown"


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds


def parse_rate(value: str) -> Rate | None:
    """``"10/5m"`` → 10 per 300 s; ``""`` or ``"off"`` → no limit. Raises ValueError otherwise."""
    if value.strip().lower() in ("", "off", "none"):
        return None
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a rate such as 10/5m (count/period, period in s, m, h)")
    count, amount, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count < 1 or amount < 1:
        raise ValueError(f"{value!r}: count and period must be at least 1")
    return Rate(limit=count, period=amount * _UNIT_SECONDS[unit])


def rate_for(scope: str) -> Rate | None:
    return parse_rate(str(getattr(settings, _SETTINGS[scope], "") or ""))


@dataclass(frozen=True)
class Decision:
    """Where a client stands in its current window; ``allowed`` False means answer 429."""

    limit: int
    remaining: int
    reset_at: float  # unix seconds, end of the window
    allowed: bool
    scope: str

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.remaining)),
            # Unix milliseconds, as upstream and the SDK's retry logic use it.
            "x-ratelimit-reset": str(int(self.reset_at * 1000)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class _StoreState:
    """Fail open, warn once: remembers that the store is down and when to ask it again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.warned = False

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, error: Exception) -> None:
        with self.lock:
            self.down_until = time.monotonic() + _RETRY_STORE_AFTER
            if not self.warned:
                self.warned = True
                logger.warning(
                    "rate limits are off: the counter store is unavailable (%s: %s); "
                    "requests are allowed until it answers again",
                    type(error).__name__,
                    error,
                )

    def succeeded(self) -> None:
        if self.warned:
            with self.lock:
                if self.warned:
                    self.warned = False
                    logger.warning("rate limits are back on: the counter store answers again")


_store = _StoreState()


def _keys(scope: str, subject: str) -> tuple[str, str]:
    namespace = getattr(settings, "WAITPOINTS_RATELIMIT_NAMESPACE", "rl")
    base = f"{namespace}:{scope}:{subject}"
    return f"{base}:count", f"{base}:start"


def _guarded(operation: Callable[[], tuple[int, float]]) -> tuple[int, float] | None:
    if not _store.available():
        return None
    try:
        value = operation()
    except Exception as error:  # noqa: BLE001 - any store failure means "fail open"
        _store.failed(error)
        return None
    _store.succeeded()
    return value


def _decide(scope: str, rate: Rate, count: int, start: float, *, hit: bool) -> Decision:
    # A hit is allowed while it stays within the limit; a peek asks whether one more would be.
    allowed = count <= rate.limit if hit else count < rate.limit
    remaining = rate.limit - count if hit else rate.limit - count - 1
    return Decision(rate.limit, max(0, remaining), start + rate.period, allowed, scope)


# A window starts with the first event counted in it and lasts the rate's period (so a burst is
# never split across two calendar windows, and the reset time is exact). Its start time is kept
# beside the count; the count is only trusted while its start is less than a period old.


def hit(scope: str, subject: str) -> Decision | None:
    """Count one event for ``subject``; None when the scope is off or the store is down."""
    rate = rate_for(scope)
    if rate is None:
        return None
    count_key, start_key = _keys(scope, subject)
    cache = caches["default"]

    def increment() -> tuple[int, float]:
        now = time.time()
        start = cache.get(start_key)
        if start is None or now - float(start) >= rate.period:
            cache.set_many({start_key: now, count_key: 1}, timeout=rate.period + 1)
            return 1, now
        try:
            return int(cache.incr(count_key)), float(start)  # INCR: atomic on Redis
        except ValueError:  # the count expired a moment before its start
            cache.set(count_key, 1, timeout=rate.period + 1)
            return 1, float(start)

    counted = _guarded(increment)
    if counted is None:
        return None
    return _decide(scope, rate, counted[0], counted[1], hit=True)


def peek(scope: str, subject: str) -> Decision | None:
    """Where ``subject`` stands without counting (for failure limits: refuse before trying)."""
    rate = rate_for(scope)
    if rate is None:
        return None
    count_key, start_key = _keys(scope, subject)

    def read() -> tuple[int, float]:
        now = time.time()
        values = caches["default"].get_many([count_key, start_key])
        start = values.get(start_key)
        if start is None or now - float(start) >= rate.period:
            return 0, now
        return int(values.get(count_key, 0)), float(start)

    counted = _guarded(read)
    if counted is None:
        return None
    return _decide(scope, rate, counted[0], counted[1], hit=False)


def message(decision: Decision) -> str:
    what = {
        LOGIN: "failed login attempts from your address",
        API_KEY_FAILURES: "failed API key attempts from your address",
        CALLBACK_FAILURES: "invalid callback URLs from your address",
        API_CALLS: "requests for this API key",
    }[decision.scope]
    return f"Rate limit exceeded: too many {what}; retry in {decision.retry_after} s"


# ------------------------------------------------------------------------------------------------
# Telling the response: adapters record the decision on the request, the middleware adds headers
# ------------------------------------------------------------------------------------------------


def remember(request: HttpRequest, decision: Decision | None) -> None:
    """Keep the decision that the response should report (a refusal wins over an allowance)."""
    if decision is None:
        return
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    previous: Decision | None = getattr(request, "waitpoints_ratelimit", None)
    if previous is not None and not previous.allowed and decision.allowed:
        return
    setattr(request, "waitpoints_ratelimit", decision)  # noqa: B010 - HttpRequest has no slot


class RateLimitHeadersMiddleware:
    """Adds ``x-ratelimit-*`` (and ``Retry-After`` on a refusal) to responses that were limited.

    A refusal rendered as a page (the login forms say it as a form error, status 200) becomes 429
    here, so every refusal has one status whatever surface renders it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        decision: Decision | None = getattr(request, "waitpoints_ratelimit", None)
        if decision is None:
            return response
        if not decision.allowed and response.status_code == 200:
            response.status_code = 429
            response.reason_phrase = "Too Many Requests"
        for name, value in decision.headers().items():
            response[name] = value
        return response
