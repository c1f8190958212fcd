"""Business errors with the HTTP status each surface should use. No HTTP imports."""

from __future__ import annotations


class TokenError(Exception):
    http_status = 400

    def __init__(self, message: str, *, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(TokenError):
    http_status = 400


class TooManyTags(TokenError):
    http_status = 422


class NotFound(TokenError):
    http_status = 404

    def __init__(self, message: str = "Waitpoint not found") -> None:
        super().__init__(message)


class PermissionDenied(TokenError):
    http_status = 403


class BodyTooLarge(TokenError):
    http_status = 413

    def __init__(self) -> None:
        super().__init__("Request body too large")


class LengthRequired(TokenError):
    http_status = 411

    def __init__(self) -> None:
        super().__init__("Content-Length header is required")


class DecisionRefused(TokenError):
    """A person may not decide this way (their own request, a second vote, no identity)."""

    http_status = 403


class NotWaiting(TokenError):
    """The token has left WAITING (or its deadline passed): nothing about it can change.

    422, never 409: the official SDK (and our client) retry 409, and retrying cannot help."""

    http_status = 422
