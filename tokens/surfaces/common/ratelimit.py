"""Rate limits: windowed counters in Redis (the default cache's server; one script counts every
counter a request needs in one round trip) or, on the embedded default, in Django's cache table;
answered with 429, ``Retry-After`` and the ``x-ratelimit-*`` headers.

Why our own counters and not django-ratelimit: we count *failures* (a wrong password, key or
callback hash) as well as calls, decide inside DRF authentication and the callback view rather
than per view, and must answer the reset time the official SDK reads (``x-ratelimit-reset``, unix
milliseconds: ``packages/core/src/v3/apiClient/core.ts`` waits until then before retrying a 429).
The Redis script runs atomically; the database cache's increment is read-then-write, so on the
embedded default (one host, SQLite) concurrent failures may be undercounted by a few, never
overcounted.

When the counter store is down the limiter fails open: requests pass, one warning is logged, and
the store is not asked again for ``_RETRY_STORE_AFTER`` seconds (a hanging Redis would otherwise
cost every request its socket timeout).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

LOGIN = "login"
API_KEY_FAILURES = "api_key_failures"
CALLBACK_FAILURES = "callback_failures"
API_CALLS = "api_calls"
PUBLIC_TOKEN_CALLS = "public_token_calls"
AAP_CALLS = "aap_calls"
AAP_PROVISIONING = "aap_provisioning"
AAP_VERIFICATIONS = "aap_verifications"
AAP_ACCOUNT_REQUESTS = "aap_account_requests"
AAP_ACCOUNT_VERIFICATIONS = "aap_account_verifications"

_SETTINGS = {
    LOGIN: "WAITPOINTS_RATELIMIT_LOGIN",
    API_KEY_FAILURES: "WAITPOINTS_RATELIMIT_API_KEY_FAILURES",
    CALLBACK_FAILURES: "WAITPOINTS_RATELIMIT_CALLBACK_FAILURES",
    API_CALLS: "WAITPOINTS_RATELIMIT_API_CALLS",
    PUBLIC_TOKEN_CALLS: "WAITPOINTS_RATELIMIT_PUBLIC_TOKEN_CALLS",
    AAP_CALLS: "WAITPOINTS_RATELIMIT_AAP_CALLS",
    AAP_PROVISIONING: "WAITPOINTS_RATELIMIT_AAP_PROVISIONING",
    AAP_VERIFICATIONS: "WAITPOINTS_RATELIMIT_AAP_VERIFICATIONS",
    AAP_ACCOUNT_REQUESTS: "WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS",
    AAP_ACCOUNT_VERIFICATIONS: "WAITPOINTS_RATELIMIT_AAP_ACCOUNT_VERIFICATIONS",
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
_RETRY_STORE_AFTER = 10.0


def client_ip(request: HttpRequest) -> str:
    """Who the limiter counts: the address the audit trail records (``http.client_ip``)."""
    from tokens.surfaces.common import http

    return http.client_ip(request) or "unknown"


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds


@functools.lru_cache(maxsize=64)  # read from the settings on every call (they may change)
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


def _guarded(operation: Callable[[], list[tuple[int, float]]]) -> list[tuple[int, float]] | None:
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


@dataclass(frozen=True)
class Check:
    """One counter to consult: ``hit`` counts an event, otherwise it is only read (a peek)."""

    scope: str
    subject: str
    hit: bool


# On Redis every counter of a request is read or counted in one round trip, atomically (an API
# request counts one: its credential's calls, or a refused credential's address; a busy budget
# counts a lease of several calls at once, see _Leases), and a round trip
# per cache operation (GET, EXISTS, INCR, …) through a client made per request cost more than
# the whole database work of a retrieve (docs/benchmarks/profile.md).
_REDIS_SCRIPT = """
local now = tonumber(ARGV[1])
local out = {}
for n = 1, #KEYS / 2 do
  local count_key, start_key = KEYS[2 * n - 1], KEYS[2 * n]
  local period = tonumber(ARGV[2 * n])
  local amount = tonumber(ARGV[2 * n + 1])
  local start = tonumber(redis.call("GET", start_key))
  local count = 0
  if (not start) or now - start >= period then
    start = now
    if amount > 0 then
      redis.call("SET", start_key, ARGV[1], "EX", period + 1)
      redis.call("SET", count_key, amount, "EX", period + 1)
      count = amount
    end
  elseif amount > 0 then
    count = redis.call("INCRBY", count_key, amount)
    if count == amount then redis.call("EXPIRE", count_key, period + 1) end
  else
    count = tonumber(redis.call("GET", count_key) or "0")
  end
  table.insert(out, count)
  table.insert(out, tostring(start))
end
return out
"""

_redis_lock = threading.Lock()
_redis_clients: dict[tuple[str, str], Any] = {}


def _redis_script() -> Any | None:
    """The counting script on a process-wide client of the default cache's Redis (None: the cache
    is not Redis). One client per location, so its connections outlive requests: Django makes a
    cache object, and so a Redis connection, per request context under ASGI."""
    config: dict[str, Any] = settings.CACHES["default"]
    if config.get("BACKEND") != "django.core.cache.backends.redis.RedisCache":
        return None
    location = str(config["LOCATION"])
    options = dict(config.get("OPTIONS") or {})
    cache_key = (location, repr(sorted(options.items())))
    client = _redis_clients.get(cache_key)
    if client is None:
        import redis

        with _redis_lock:
            client = _redis_clients.get(cache_key)
            if client is None:
                # No retries: redis-py's client retries a timed-out command up to ten times
                # with backoff by default, which would multiply the socket timeout by eleven.
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                options.setdefault("retry", Retry(NoBackoff(), 0))
                client = redis.Redis.from_url(location, **options).register_script(_REDIS_SCRIPT)
                _redis_clients[cache_key] = client
    return client


def _count_in_redis(
    script: Any, checks: list[tuple[Check, Rate]], amount: int = 1
) -> list[tuple[int, float]]:
    """Per check its count (after counting ``amount`` events for a hit) and its window's start."""
    keys: list[str] = []
    args: list[str | int] = [repr(_now())]
    for check, rate in checks:
        keys += _keys(check.scope, check.subject)
        args += [rate.period, amount if check.hit else 0]
    flat = script(keys=keys, args=args)
    return [(int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]


def _count_in_cache(checks: list[tuple[Check, Rate]], amount: int = 1) -> list[tuple[int, float]]:
    """Django's cache (the database table on the embedded default): one operation at a time."""
    cache = caches["default"]
    results = []
    for check, rate in checks:
        count_key, start_key = _keys(check.scope, check.subject)
        now = _now()
        if not check.hit:
            values = cache.get_many([count_key, start_key])
            began = values.get(start_key)
            if began is None or now - float(began) >= rate.period:
                results.append((0, now))
            else:
                results.append((int(values.get(count_key, 0)), float(began)))
            continue
        start = cache.get(start_key)
        if start is None or now - float(start) >= rate.period:
            cache.set_many({start_key: now, count_key: amount}, timeout=rate.period + 1)
            results.append((amount, now))
            continue
        try:
            results.append((int(cache.incr(count_key, amount)), float(start)))
        except ValueError:  # the count expired a moment before its start
            cache.set(count_key, amount, timeout=rate.period + 1)
            results.append((amount, float(start)))
    return results


def _count(active: list[tuple[Check, Rate]], amount: int = 1) -> list[tuple[int, float]]:
    script = _redis_script()
    return _count_in_redis(script, active, amount) if script else _count_in_cache(active, amount)


def check(*checks: Check) -> list[Decision | None]:
    """Count or read each counter (one round trip on Redis, none while this process holds a
    lease of the counter's window: ``_Leases``); per check its decision, or None when its scope
    is off or the store is down (fail open)."""
    rates = [rate_for(item.scope) for item in checks]
    active = [(item, rate) for item, rate in zip(checks, rates, strict=True) if rate is not None]
    if not active:
        return [None] * len(checks)
    if len(active) == 1 and active[0][0].hit and lease_size(active[0][1]) > 1:
        decision = _leases.hit(*active[0])
        return [decision if rate is not None else None for rate in rates]

    counted = _guarded(lambda: _count(active))
    if counted is None:
        return [None] * len(checks)
    decisions = iter(
        _decide(item.scope, rate, number, start, hit=item.hit)
        for (item, rate), (number, start) in zip(active, counted, strict=True)
    )
    return [next(decisions) if rate is not None else None for rate in rates]


# ------------------------------------------------------------------------------------------------
# Leases: a busy budget is counted a few calls at a time
# ------------------------------------------------------------------------------------------------

# A budget of at least LEASE_PER calls a window is counted LEASE_PER-th of its limit at a time
# (at most LEASE_MAX): one round trip to Redis takes that many of the window's calls for this
# process, which then spends them without asking again (the round trip was a tenth of a create's
# and a sixth of a retrieve's CPU, issue 18). The budget is never exceeded: each call spends a
# slot that Redis counted, and a window that Redis says is full is refused here until it ends,
# with its exact reset time. What a lease costs: slots a process took and did not spend before
# the window ended are lost, so a client spread over N web processes may be refused up to
# N × (lease - 1) calls early (1,200 a minute, the default: 11 a process, under 1%); and
# ``x-ratelimit-remaining`` counts the window's slots in the order Redis gave them out, which
# for a client spread over processes is not quite the order of its calls. Smaller budgets (the
# failed-credential limits, tests' "3/1m") keep one round trip a call, exact.
LEASE_PER = 100
LEASE_MAX = 16
_LEASES_KEPT = 4096  # budgets remembered per process (a public access token is one each)


def lease_size(rate: Rate) -> int:
    return max(1, min(LEASE_MAX, rate.limit // LEASE_PER))


@dataclass
class _Lease:
    rate: Rate
    start: float  # the window's start, as Redis has it
    next_slot: int  # the next of the window's calls this process may spend
    last_slot: int  # the last one it holds (next_slot > last_slot: spent)
    full: bool  # Redis counted past the limit: refuse until the window ends


class _Leases:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[tuple[str, str], _Lease] = {}

    def hit(self, check: Check, rate: Rate) -> Decision | None:
        key = (check.scope, _keys(check.scope, check.subject)[0])
        with self.lock:
            slot = self._spend(key, rate)
            if slot is not None:
                return slot
        size = lease_size(rate)
        counted = _guarded(lambda: _count([(check, rate)], size))
        if counted is None:
            return None
        [(count, start)] = counted
        first = count - size + 1  # this lease's slots: first … count
        lease = _Lease(rate, start, first, min(count, rate.limit), full=first > rate.limit)
        with self.lock:
            if len(self.held) >= _LEASES_KEPT:
                self.held.clear()  # forgetting a lease only loses its unspent slots
            self.held[key] = lease
            return self._spend(key, rate)

    def _spend(self, key: tuple[str, str], rate: Rate) -> Decision | None:
        """A decision from the lease held for ``key``; None when there is none left to spend."""
        lease = self.held.get(key)
        if lease is None or lease.rate != rate or _now() - lease.start >= rate.period:
            return None
        if lease.full:
            return _decide(key[0], rate, rate.limit + 1, lease.start, hit=True)
        if lease.next_slot > lease.last_slot:
            return None
        slot, lease.next_slot = lease.next_slot, lease.next_slot + 1
        return _decide(key[0], rate, slot, lease.start, hit=True)


_leases = _Leases()


def _now() -> float:
    return time.time()


def hit(scope: str, subject: str) -> Decision | None:
    """Count one event for ``subject``; None when the scope is off or the store is down."""
    return check(Check(scope, subject, hit=True))[0]


def peek(scope: str, subject: str) -> Decision | None:
    """Where ``subject`` stands without counting (for failure limits: refuse before trying)."""
    return check(Check(scope, subject, hit=False))[0]


def message(decision: Decision) -> str:
    what = {
        LOGIN: "failed login attempts from your address",
        API_KEY_FAILURES: "failed API key attempts from your address",
        CALLBACK_FAILURES: "invalid callback URLs from your address",
        API_CALLS: "requests for this API key",
        PUBLIC_TOKEN_CALLS: "requests for this public access token",
        AAP_CALLS: "requests for this AAP instance",
        AAP_PROVISIONING: "calls for this AAP provisioner token",
        AAP_VERIFICATIONS: "receiver verifications for this host",
        AAP_ACCOUNT_REQUESTS: "approval requests for this environment",
        AAP_ACCOUNT_VERIFICATIONS: "receiver verifications for this environment",
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
