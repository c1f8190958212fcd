"""The README's receiver, run as written (only its port changed), accepts a real delivery and
refuses a forged one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.smoke.processes import free_port, port_is_closed
from tokens.delivery import outbox
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import handler as webhook_handler
from tokens.domain import actors, lifecycle
from tokens.models import OutboxMessage, WebhookDelivery

pytestmark = pytest.mark.django_db
README = Path(__file__).resolve().parents[3] / "README.md"


def readme_receiver(port: int) -> str:
    text = README.read_text()
    start = text.index("# receiver.py")
    code = text[start : text.index("```", start)]
    assert "8081" in code
    return code.replace("8081", str(port))


def test_the_readme_receiver_verifies_a_real_delivery(tmp_path, environment, make_token):
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(readme_receiver(port))
    endpoint, secret = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url=f"http://127.0.0.1:{port}/"
    )
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"approved": True})
    [message] = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.WEBHOOK)

    receiver = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        env={"WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while port_is_closed(port):
            assert receiver.poll() is None and time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.05)
        webhook_handler.deliver_webhook(message)  # signed with the endpoint's secret: accepted
        webhook_handler.deliver_webhook(message)  # a retry: same webhook-id, handled once
        webhook_endpoints.webhook_endpoint_rotate_secret(
            endpoint=endpoint
        )  # the receiver has the old one
        with pytest.raises(webhook_handler.WebhookDeliveryFailed, match="HTTP 400"):
            webhook_handler.deliver_webhook(message)
    finally:
        receiver.terminate()
        output, _ = receiver.communicate(timeout=10)
    statuses = list(
        WebhookDelivery.objects.order_by("attempt").values_list("status_code", flat=True)
    )
    assert statuses == [204, 204, 400]
    printed = [line for line in output.splitlines() if line.startswith("waitpoint.")]
    assert printed == [f'waitpoint.completed {token.friendly_id} {{"json":{{"approved":true}}}}']
    assert outbox.HANDLERS[OutboxMessage.Kind.WEBHOOK].send is webhook_handler.deliver_webhook
