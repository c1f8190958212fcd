"""The AAP error: each surface renders it as ``{"error": {type, code, message, param?,
request_id}}``. No HTTP imports: only the numbers and words the spec gives."""

from __future__ import annotations

from tokens.domain.exceptions import TokenError

TYPES = {
    400: "invalid_request",
    401: "authentication",
    403: "authorization",
    404: "not_found",
    409: "conflict",
    422: "invalid_request",
    429: "rate_limit",
    500: "internal",
    503: "dependency",
}


class AapError(TokenError):
    """A refusal in the spec's terms: ``code`` is machine-readable (``idempotency_conflict``,
    ``already_terminal``, …), ``param`` names the offending field when there is one."""

    def __init__(
        self, message: str, *, status: int = 400, code: str = "invalid_request", param: str = ""
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.kind = TYPES.get(status, "invalid_request")
        self.code = code
        self.param = param


def invalid(message: str, *, code: str = "invalid_request", param: str = "") -> AapError:
    return AapError(message, status=400, code=code, param=param)


def not_found(what: str = "request") -> AapError:
    """Unknown, malformed and someone else's ids answer exactly alike."""
    return AapError(f"No such {what}.", status=404, code="not_found")


def conflict(message: str, *, code: str) -> AapError:
    return AapError(message, status=409, code=code)
