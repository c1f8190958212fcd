"""What the sync and async clients share: configuration, requests, retries, parsing, paging and
the long-poll loop. ``client.py`` keeps only what differs between them: how to send a request
and how to wait (``time.sleep`` or ``asyncio.sleep``)."""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from .errors import ApiConnectionError, ApiError
from .models import CreatedToken, Token, WaitResult

__version__ = "0.1.0"
TOKENS = "/api/v1/waitpoints/tokens"
MAX_LONG_POLL = 60.0  # the server's longest single wait
NO_DATA: Any = object()


@dataclass(frozen=True)
class RetryPolicy:
    """As the official SDK's API client: 5 attempts, 1 s growing by 1.6 up to 30 s; for 408,
    409, 429, 5xx and connection errors; a 429's ``x-ratelimit-reset`` (epoch ms) or
    ``retry-after`` is waited for instead; ``x-should-retry: true|false`` from the server wins."""

    max_attempts: int = 5
    min_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 1.6

    def backoff(self, attempt: int) -> float | None:
        """Delay before attempt ``attempt + 1``; None when no attempt is left."""
        if attempt >= self.max_attempts:
            return None
        return min(self.max_delay, self.min_delay * self.factor ** (attempt - 1))

    def after_response(self, response: httpx.Response, attempt: int) -> float | None:
        should = response.headers.get("x-should-retry")
        if should == "false":
            return None
        retryable = should == "true" or response.status_code in (408, 409, 429)
        if not (retryable or response.status_code >= 500):
            return None
        if attempt >= self.max_attempts:
            return None
        if response.status_code == 429:
            hinted = _rate_limit_delay(response.headers)
            if hinted is not None:
                return min(hinted, self.max_delay * 4)
        return self.backoff(attempt)

    def after_error(self, request: Request, error: httpx.TransportError, attempt: int) -> float:
        """Delay before trying again after a connection error; ApiConnectionError when no
        attempt is left."""
        delay = self.backoff(attempt)
        if delay is None:
            raise ApiConnectionError(f"{request.method} {request.path}: {error}") from error
        return delay


def _rate_limit_delay(headers: httpx.Headers) -> float | None:
    reset = headers.get("x-ratelimit-reset")
    if reset and reset.strip().isdigit():
        delay = int(reset) / 1000 - time.time() + random.random()  # noqa: S311 - jitter
        if delay > 0:
            return delay
    after = headers.get("retry-after")
    if after:
        if after.strip().isdigit():
            return float(after)
        parsed = email.utils.parsedate_to_datetime(after) if after else None
        if parsed is not None:
            return max(0.0, parsed.timestamp() - time.time())
    return None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] | None = None
    body: Any = NO_DATA
    timeout: float | None = None
    access_token: str | None = None


def settings(base_url: str | None, secret_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get("WAITPOINTS_API_URL") or "http://127.0.0.1:8000"
    key = secret_key or os.environ.get("WAITPOINTS_SECRET_KEY") or ""
    if not key:
        raise ValueError("a secret key is needed: pass secret_key= or set WAITPOINTS_SECRET_KEY")
    return url.rstrip("/"), key


def headers(key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json",
        "User-Agent": f"waitpoints-client-python/{__version__}",
    }


def build(request: Request) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client.request``."""
    kwargs: dict[str, Any] = {"params": request.params}
    if request.body is not NO_DATA:
        kwargs["content"] = json.dumps(request.body, separators=(",", ":")).encode()
        kwargs["headers"] = {"Content-Type": "application/json"}
    if request.access_token:
        kwargs.setdefault("headers", {})["Authorization"] = f"Bearer {request.access_token}"
    if request.timeout is not None:
        kwargs["timeout"] = request.timeout
    return kwargs


def parse(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_error:
        raise ApiError.from_response(response.status_code, body, response.text, response.headers)
    return body


def token_id(token: str | Token | CreatedToken) -> str:
    return token if isinstance(token, str) else token.id


def duration(value: float | timedelta | str | None) -> str | None:
    """The API's duration strings; numbers are seconds."""
    if value is None or isinstance(value, str):
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return f"{max(0, round(seconds))}s"


# The API's duration grammar (the server's tokens/domain/durations.py, upstream's): one or more
# <number><unit>, units w, d, hr, h, m, s ("1h30m").
_DURATION = re.compile(r"(?:\d+(?:w|d|hr|h|m|s))+")
_PART = re.compile(r"(\d+)(w|d|hr|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "hr": 3600, "h": 3600, "m": 60, "s": 1}
DURATION_HELP = (
    "seconds (a number), a timedelta, or a duration string such as 30s, 10m, 2h, 1hr, 3d, 4w "
    "or 1h30m"
)


def seconds(value: float | timedelta | str | None) -> float | None:
    """Seconds from any duration the client takes: a number, a timedelta or the API's duration
    strings ("30s", "1h30m"; a plain number in a string is seconds). ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        text = value.strip()
        if _DURATION.fullmatch(text):
            return float(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text)))
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        raise ValueError(f"not a duration: {value!r}; expected {DURATION_HELP}")
    return float(value)


def create_request(
    *,
    timeout: float | timedelta | datetime | str | None,
    idempotency_key: str | None,
    idempotency_key_ttl: float | timedelta | str | None,
    tags: str | Iterable[str] | None,
    approvers: Iterable[str] | None,
    extra: dict[str, Any],
) -> Request:
    body: dict[str, Any] = dict(extra)
    if isinstance(timeout, datetime):
        body["timeout"] = timeout.isoformat()
    elif timeout is not None:
        body["timeout"] = duration(timeout)
    if idempotency_key is not None:
        body["idempotencyKey"] = idempotency_key
    if idempotency_key_ttl is not None:
        body["idempotencyKeyTTL"] = duration(idempotency_key_ttl)
    if tags is not None:
        body["tags"] = tags if isinstance(tags, str) else list(tags)
    if approvers is not None:
        body["approvers"] = list(approvers)
    return Request("POST", TOKENS, body=body)


def created(response: httpx.Response, body: dict[str, Any]) -> CreatedToken:
    return CreatedToken(
        id=body["id"],
        url=body["url"],
        is_cached=bool(body.get("isCached")),
        public_access_token=response.headers.get("x-trigger-jwt"),
    )


def _when(value: datetime | int | str) -> str:
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return str(value)


def list_params(
    *,
    status: str | Iterable[str] | None,
    tags: str | Iterable[str] | None,
    idempotency_key: str | None,
    period: str | None,
    from_: datetime | int | str | None,
    to: datetime | int | str | None,
    page_size: int | None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if status is not None:
        params["filter[status]"] = status if isinstance(status, str) else ",".join(status)
    if tags is not None:
        params["filter[tags]"] = tags if isinstance(tags, str) else ",".join(tags)
    if idempotency_key is not None:
        params["filter[idempotencyKey]"] = idempotency_key
    if period is not None:
        params["filter[createdAt][period]"] = period
    if from_ is not None:
        params["filter[createdAt][from]"] = _when(from_)
    if to is not None:
        params["filter[createdAt][to]"] = _when(to)
    if page_size is not None:
        params["page[size]"] = str(page_size)
    return params


def wait_request(token: str, remaining: float | None, access_token: str | None) -> Request:
    """One long-poll of at most 60 s; the HTTP timeout leaves room for the answer."""
    chunk = MAX_LONG_POLL if remaining is None else max(0.0, min(MAX_LONG_POLL, remaining))
    return Request(
        "GET",
        f"{TOKENS}/{token}/wait",
        params={"timeout": f"{chunk:.3f}".rstrip("0").rstrip(".")},
        timeout=chunk + 30,
        access_token=access_token,
    )


# ------------------------------------------------------------------------------------------------
# The requests of each method, and reading their answers
# ------------------------------------------------------------------------------------------------


def retrieve_request(token: str | Token | CreatedToken) -> Request:
    return Request("GET", f"{TOKENS}/{token_id(token)}")


def complete_request(
    token: str | Token | CreatedToken, data: Any, access_token: str | None
) -> Request:
    body = {} if data is NO_DATA else {"data": data}
    path = f"{TOKENS}/{token_id(token)}/complete"
    return Request("POST", path, body=body, access_token=access_token)


def cancel_request(token: str | Token | CreatedToken, reason: str | None) -> Request:
    body = {"reason": reason} if reason else {}
    return Request("POST", f"{TOKENS}/{token_id(token)}/cancel", body=body)


def consume_request(
    token: str | Token | CreatedToken,
    consumer: str | None,
    idempotency_key: str | None,
    access_token: str | None,
) -> Request:
    """A key is always sent (a fresh one unless given), so that this client's own retry after
    a lost answer replays the consumption instead of being refused as a second one."""
    body: dict[str, Any] = {"idempotencyKey": idempotency_key or uuid.uuid4().hex}
    if consumer is not None:
        body["consumer"] = consumer
    path = f"{TOKENS}/{token_id(token)}/consume"
    return Request("POST", path, body=body, access_token=access_token)


def audit_request(token: str | Token | CreatedToken) -> Request:
    return Request("GET", f"{TOKENS}/{token_id(token)}/audit")


def audit_lines(response: httpx.Response) -> list[dict[str, Any]]:
    """The events of a JSON Lines export, in chain order."""
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def list_request(params: dict[str, str]) -> Request:
    return Request("GET", TOKENS, params=params)


def page(params: dict[str, str], body: dict[str, Any]) -> tuple[list[Token], dict[str, str] | None]:
    """The tokens of one page of ``list``, and the parameters of the next page (None: the
    last page)."""
    tokens = [Token.from_json(item) for item in body["data"]]
    after = (body.get("pagination") or {}).get("next")
    if not after or not tokens:
        return tokens, None
    return tokens, {**params, "page[after]": after}


class Waiting:
    """``wait_for_token``'s loop, whichever way its client sends: long-polls of at most 60 s
    until the token is resolved or ``timeout`` (seconds; None: as long as it takes) has passed.
    ``clock`` is monotonic seconds (``time.monotonic``, or the event loop's ``time``)."""

    def __init__(
        self,
        token: str | Token | CreatedToken,
        *,
        timeout: float | timedelta | str | None,
        access_token: str | None,
        clock: Callable[[], float],
    ) -> None:
        limit = seconds(timeout)
        self.clock = clock
        self.deadline = None if limit is None else clock() + limit
        self.token = token_id(token)
        self.access_token = access_token

    def request(self) -> Request:
        remaining = None if self.deadline is None else self.deadline - self.clock()
        return wait_request(self.token, remaining, self.access_token)

    def result(self, body: dict[str, Any]) -> WaitResult | None:
        """The answer of the wait, or None: poll again."""
        current = Token.from_json(body)
        if current.is_resolved or (self.deadline is not None and self.clock() >= self.deadline):
            return WaitResult(current)
        return None
