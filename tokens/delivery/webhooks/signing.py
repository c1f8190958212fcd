"""Webhook signing secrets and Standard Webhooks signatures (the ``standardwebhooks`` package)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

from tokens.domain import keys
from tokens.models import WebhookEndpoint

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes, the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    secret = keys.decrypt(endpoint.encrypted_secret)
    if secret is None:
        raise RuntimeError(
            f"cannot decrypt the secret of webhook {endpoint.pk}: SECRET_KEY changed?"
        )
    return secret


def signed_headers(
    *, secret: str, webhook_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """The three Standard Webhooks headers for this body."""
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
