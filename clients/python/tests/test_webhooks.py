"""verify_webhook, checked against the independent ``standardwebhooks`` implementation."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from waitpoints_client import WebhookVerificationError, verify_webhook
from waitpoints_client.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = json.dumps({"type": "waitpoint.completed", "data": {"id": "waitpoint_a"}})


def headers_from_reference(msg_id: str, when: datetime, body: str) -> dict[str, str]:
    signature = Webhook(SECRET).sign(msg_id, when, body)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(when.timestamp())),
        "Webhook-Signature": signature,
    }


def test_accepts_what_the_reference_implementation_signs() -> None:
    headers = headers_from_reference("msg_1", datetime.now(tz=UTC), BODY)
    assert verify_webhook(BODY.encode(), headers, SECRET)["type"] == "waitpoint.completed"


def test_the_reference_implementation_accepts_what_we_sign() -> None:
    stamp = int(time.time())
    signature = sign(BODY, msg_id="msg_2", timestamp=stamp, secret=SECRET)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
    }
    assert Webhook(SECRET).verify(BODY, headers)["data"]["id"] == "waitpoint_a"


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = headers_from_reference("msg_3", datetime.now(tz=UTC), BODY)
    headers["Webhook-Signature"] = "v1,bm9wZQ== " + headers["Webhook-Signature"]
    assert verify_webhook(BODY, headers, SECRET)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace("completed", "cancelled")),
        lambda h, b: ({**h, "Webhook-Id": "msg_other"}, b),
        lambda h, b: ({**h, "Webhook-Signature": "v1,AAAA"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Signature"}, b),
        lambda h, b: ({**h, "Webhook-Timestamp": "soon"}, b),
    ],
)
def test_refuses_tampered_deliveries(tamper) -> None:
    headers, body = tamper(headers_from_reference("msg_4", datetime.now(tz=UTC), BODY), BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SECRET)


def test_refuses_old_deliveries_and_wrong_secrets() -> None:
    old = datetime.fromtimestamp(time.time() - 600, tz=UTC)
    with pytest.raises(WebhookVerificationError, match="too far"):
        verify_webhook(BODY, headers_from_reference("msg_5", old, BODY), SECRET)
    fresh = headers_from_reference("msg_6", datetime.now(tz=UTC), BODY)
    other = "whsec_" + base64.b64encode(b"another secret entirely, 32 byte").decode()
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify_webhook(BODY, fresh, other)
