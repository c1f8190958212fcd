"""Python client for waitpoints: create, list, complete, cancel, wait for and consume
waitpoint tokens, and verify webhook deliveries."""

from ._core import RetryPolicy, __version__
from .audit import verify_audit
from .client import AsyncClient, Client
from .errors import (
    AlreadyConsumedError,
    ApiConnectionError,
    ApiError,
    ApprovalExpiredError,
    AuthenticationError,
    BadRequestError,
    ConsumptionRefusedError,
    NotApprovedError,
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
from .models import (
    Consumption,
    CreatedToken,
    Token,
    TransitionResult,
    WaitResult,
    decode_output,
)
from .webhooks import verify_webhook

__all__ = [
    "AlreadyConsumedError",
    "ApiConnectionError",
    "ApiError",
    "AsyncClient",
    "ApprovalExpiredError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "Consumption",
    "ConsumptionRefusedError",
    "CreatedToken",
    "NotApprovedError",
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
