"""Python client for waitpoints: create, list, complete, cancel and wait for waitpoint tokens,
and verify webhook deliveries."""

from ._core import RetryPolicy, __version__
from .audit import verify_audit
from .client import AsyncClient, Client
from .errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StillWaitingError,
    WaitpointCancelledError,
    WaitpointsError,
    WaitpointTimeoutError,
    WebhookVerificationError,
)
from .models import CreatedToken, Token, TransitionResult, WaitResult, decode_output
from .webhooks import verify_webhook

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "CreatedToken",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "StillWaitingError",
    "Token",
    "TransitionResult",
    "WaitResult",
    "WaitpointCancelledError",
    "WaitpointTimeoutError",
    "WaitpointsError",
    "WebhookVerificationError",
    "__version__",
    "decode_output",
    "verify_audit",
    "verify_webhook",
]
