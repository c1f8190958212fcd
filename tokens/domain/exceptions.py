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


class DecisionInvalid(InvalidInput):
    """A person's decision is not acceptable as given (``tokens.domain.decide``): ``problem``
    is ``decision`` (not approve or reject), ``comment``, ``comment_nul``,
    ``comment_too_long`` or ``fields`` (then ``field_errors`` names each field's problem)."""

    def __init__(
        self, message: str, *, problem: str, field_errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.field_errors = field_errors or {}


class DecisionRefused(TokenError):
    """This person may not decide this way (``tokens.domain.decide``): ``problem`` is ``role``,
    ``not_approver``, ``anonymous``, ``own_request`` or ``voted_twice``; ``audit_action`` is
    what the audit trail records as denied."""

    http_status = 403

    def __init__(self, message: str, *, problem: str = "", audit_action: str = "") -> None:
        super().__init__(message)
        self.problem = problem
        self.audit_action = audit_action


class NotWaiting(TokenError):
    """The token has left WAITING (or its deadline passed): nothing about it can change.

    422, never 409: the official SDK (and our client) retry 409, and retrying cannot help."""

    http_status = 422


class OutputRefused(TokenError):
    """This token takes only some outputs (an AAP request's token: a person's decision,
    ``{"status": "approved"|"rejected", "comment": …}``); nothing changed. 422, never 409."""

    http_status = 422
