"""Verify webhook deliveries, per the Standard Webhooks specification (standardwebhooks.com):
headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(space-separated ``v1,<base64 HMAC-SHA256>`` entries) over ``"{id}.{timestamp}.{body}"``, keyed
by the endpoint's secret ``whsec_<base64>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import WebhookVerificationError

TOLERANCE_SECONDS = 5 * 60


def _secret_bytes(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not whsec_<base64>") from None


def sign(payload: bytes | str, *, msg_id: str, timestamp: int, secret: str) -> str:
    """The ``webhook-signature`` value for a payload (for tests and for senders)."""
    body = payload.encode() if isinstance(payload, str) else payload
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """The parsed JSON body of a genuine delivery; ``WebhookVerificationError`` otherwise.

    Pass the raw body exactly as received (not re-serialised JSON). ``headers`` may be any
    mapping (names are matched case-insensitively). Deliveries whose timestamp is more than
    ``tolerance`` seconds from now are refused (replays). Use ``webhook-id`` to deduplicate:
    it is the same on every retry of one event.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("invalid webhook-timestamp") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp too far from now")
    expected = sign(payload, msg_id=msg_id, timestamp=timestamp, secret=secret)
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            body = payload.decode() if isinstance(payload, bytes) else payload
            try:
                return json.loads(body)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no matching signature")
