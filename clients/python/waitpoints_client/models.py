"""The API's JSON as dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import (
    StillWaitingError,
    WaitpointCancelledError,
    WaitpointsError,
    WaitpointTimeoutError,
)


def parse_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def decode_output(output: str | None, output_type: str | None) -> Any:
    """The value a completion stored: ``text/plain`` is the string itself,
    ``application/super+json`` is ``{"json": value}``, anything else is JSON."""
    if output is None:
        return None
    if output_type == "text/plain":
        return output
    try:
        value = json.loads(output)
    except ValueError:
        return output
    if output_type == "application/super+json" and isinstance(value, dict) and "json" in value:
        return value["json"]
    return value


@dataclass(frozen=True)
class CreatedToken:
    id: str
    url: str
    is_cached: bool
    #: The ``x-trigger-jwt`` header: may complete (and wait for) this token only.
    public_access_token: str | None = None


@dataclass(frozen=True)
class Token:
    id: str
    url: str
    #: ``WAITING``, ``COMPLETED``, ``TIMED_OUT`` or ``CANCELLED`` (the API's ``statusDetail``).
    status: str
    created_at: datetime | None
    tags: list[str] = field(default_factory=list)
    timeout_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    idempotency_key: str | None = None
    idempotency_key_expires_at: datetime | None = None
    #: The decoded output (only ``retrieve_token`` and waits carry it; list items do not).
    output: Any = None
    output_type: str | None = None
    output_is_error: bool = False
    #: Single use: the approval's validity window (``decisionValidFor`` as asked, e.g. "15m"),
    #: when it ends, and its first consumption (``consume_token``).
    #: What the deadline brings when not a timeout (``onTimeout``: {"action": "reject"}, …),
    #: and for an escalation when its first deadline falls (``timeout_at`` is the second).
    on_timeout: dict[str, Any] | None = None
    escalates_at: datetime | None = None
    decision_valid_for: str | None = None
    decision_expires_at: datetime | None = None
    consumed_at: datetime | None = None
    consumed_by: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_resolved(self) -> bool:
        return self.status != "WAITING"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        return cls(
            id=data["id"],
            url=data.get("url", ""),
            status=data.get("statusDetail") or data["status"],
            created_at=parse_datetime(data.get("createdAt")),
            tags=list(data.get("tags") or []),
            timeout_at=parse_datetime(data.get("timeoutAt")),
            completed_at=parse_datetime(data.get("completedAt")),
            cancelled_at=parse_datetime(data.get("cancelledAt")),
            idempotency_key=_callers_key(data),
            idempotency_key_expires_at=parse_datetime(data.get("idempotencyKeyExpiresAt")),
            output=decode_output(data.get("output"), data.get("outputType")),
            output_type=data.get("outputType"),
            output_is_error=bool(data.get("outputIsError", False)),
            on_timeout=data.get("onTimeout"),
            escalates_at=parse_datetime(data.get("escalatesAt")),
            decision_valid_for=data.get("decisionValidFor"),
            decision_expires_at=parse_datetime(data.get("decisionExpiresAt")),
            consumed_at=parse_datetime(data.get("consumedAt")),
            consumed_by=data.get("consumedBy"),
            raw=data,
        )


def _callers_key(data: dict[str, Any]) -> str | None:
    """The idempotency key the caller gave, if any. Retrieve (as upstream) always sends an
    ``idempotencyKey``: a random one when none was given (``userProvidedIdempotencyKey`` false),
    and after the key moved on to a newer token, the caller's is ``inactiveIdempotencyKey``."""
    if data.get("userProvidedIdempotencyKey") is False:
        return None
    return data.get("inactiveIdempotencyKey") or data.get("idempotencyKey")


@dataclass(frozen=True)
class TransitionResult:
    """The answer of complete and cancel: ``applied`` is False when the token was already
    resolved (the first resolution wins; nothing changed)."""

    success: bool
    applied: bool
    status: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransitionResult:
        return cls(
            success=bool(data.get("success")),
            applied=bool(data.get("applied", True)),
            status=data.get("statusDetail") or data.get("status", ""),
        )


@dataclass(frozen=True)
class Consumption:
    """The answer of ``consume_token``: the consumed token (with its output, the decision to
    act on) and whether this was a replay of an earlier consume with the same key."""

    token: Token
    replayed: bool

    @property
    def consumed_at(self) -> datetime | None:
        return self.token.consumed_at

    @property
    def consumed_by(self) -> str | None:
        return self.token.consumed_by

    @property
    def output(self) -> Any:
        return self.token.output

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Consumption:
        return cls(token=Token.from_json(data), replayed=bool(data.get("replayed")))


@dataclass(frozen=True)
class WaitResult:
    """What ``wait_for_token`` learnt. ``ok`` when the token was completed; then ``output`` is
    the completion's data. Otherwise ``error`` says why (timed out, cancelled, or still
    waiting when the wait ended) and ``unwrap()`` raises it."""

    token: Token

    @property
    def ok(self) -> bool:
        return self.token.status == "COMPLETED" and not self.token.output_is_error

    @property
    def output(self) -> Any:
        return self.token.output

    @property
    def error(self) -> WaitpointsError | None:
        token = self.token
        if self.ok:
            return None
        message = token.output.get("message") if isinstance(token.output, dict) else None
        if token.status == "CANCELLED":
            return WaitpointCancelledError(message or "Cancelled", output=token.output)
        if token.status == "TIMED_OUT":
            return WaitpointTimeoutError(message or "Waitpoint timed out", output=token.output)
        if token.status == "WAITING":
            return StillWaitingError(f"{token.id} is still waiting")
        return WaitpointsError(message or f"{token.id} completed with an error")

    def unwrap(self) -> Any:
        error = self.error
        if error is not None:
            raise error
        return self.output
