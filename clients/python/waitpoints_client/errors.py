"""Exceptions. Every error answered by the server is an ``ApiError`` with ``status`` and
``message`` (the server's ``{"error": …}``), of the subclass for its status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class WaitpointsError(Exception):
    """Base class of everything this package raises."""


class ApiError(WaitpointsError):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    @classmethod
    def from_response(
        cls, status: int, body: Any, text: str, headers: Mapping[str, str]
    ) -> ApiError:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message, details = body["error"], body.get("details")
        else:
            message, details = (text.strip()[:500] or f"HTTP {status}"), None
        if status == 409 and isinstance(body, dict) and body.get("code") in _REFUSALS:
            refusal = _REFUSALS[body["code"]]
            return refusal(status, message, details=details, headers=headers, body=body)
        kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
        return kind(status, message, details=details, headers=headers)


class BadRequestError(ApiError):
    """400, 411, 413, 422: the request was refused as invalid; ``details`` says why."""


class AuthenticationError(ApiError):
    """401: missing, unknown or revoked key, or an invalid public access token."""


class PermissionDeniedError(ApiError):
    """403: the credential may not act on this token."""


class NotFoundError(ApiError):
    """404: no such token in the key's environment."""


class RateLimitError(ApiError):
    """429, after the retries were used up."""


class ServerError(ApiError):
    """5xx, after the retries were used up."""


class ConsumptionRefusedError(ApiError):
    """409 from ``consume_token``: the approval cannot be acted on. ``code`` says why; the
    subclasses below are the three codes. Never retried: asking again cannot change it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status, message, details=details, headers=headers)
        from .models import parse_datetime  # models imports this module

        body = body or {}
        self.code: str = str(body.get("code", ""))
        #: The token's status (``WAITING``, ``COMPLETED``, ``TIMED_OUT``, ``CANCELLED``).
        self.token_status: str | None = body.get("statusDetail")
        self.consumed_at = parse_datetime(body.get("consumedAt"))
        self.consumed_by: str | None = body.get("consumedBy")
        self.decision_expires_at = parse_datetime(body.get("decisionExpiresAt"))


class AlreadyConsumedError(ConsumptionRefusedError):
    """Somebody consumed this approval first: ``consumed_at`` and ``consumed_by`` say who."""


class ApprovalExpiredError(ConsumptionRefusedError):
    """The approval's validity window ended at ``decision_expires_at``: ask again."""


class NotApprovedError(ConsumptionRefusedError):
    """The token is not approved (still waiting, rejected, timed out or cancelled)."""


class ApiConnectionError(WaitpointsError):
    """The server could not be reached (after the retries), or the connection broke."""


class WaitpointTimeoutError(WaitpointsError):
    """``unwrap()`` of a token that timed out (its ``timeoutAt`` passed unresolved)."""

    def __init__(self, message: str, *, output: Any = None) -> None:
        super().__init__(message)
        self.output = output


class WaitpointCancelledError(WaitpointsError):
    """``unwrap()`` of a token that was cancelled."""

    def __init__(self, message: str, *, output: Any = None) -> None:
        super().__init__(message)
        self.output = output


class StillWaitingError(WaitpointsError):
    """``unwrap()`` when ``wait_for_token``'s own timeout ended before the token resolved."""


class WebhookVerificationError(WaitpointsError):
    """``verify_webhook``: bad or missing signature, or a timestamp too far from now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    411: BadRequestError,
    413: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

_REFUSALS: dict[str, type[ConsumptionRefusedError]] = {
    "already_consumed": AlreadyConsumedError,
    "approval_expired": ApprovalExpiredError,
    "not_approved": NotApprovedError,
}
