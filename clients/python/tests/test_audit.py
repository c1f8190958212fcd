"""export_audit: a token's audit trail, which verify_audit checks without the server."""

from __future__ import annotations

import asyncio

import pytest
from waitpoints_client import Client, NotFoundError, verify_audit

pytestmark = pytest.mark.django_db(transaction=True)


def test_export_audit_and_verify_it(client: Client) -> None:
    created = client.create_token(timeout="1h")
    client.complete_token(created, {"ok": True})
    client.cancel_token(created, reason="too late")
    events = client.export_audit(created)
    assert [(e["seq"], e["kind"]) for e in events] == [
        (1, "created"),
        (2, "completed"),
        (3, "cancel_ignored"),
    ]
    assert verify_audit(events) == []
    events[1]["createdAt"] = "2020-01-01T00:00:00.000000Z"
    assert verify_audit(events) == [f"{created.id} event #2: digest does not match"]
    del events[1]
    assert f"{created.id} event #3: does not follow event #1" in verify_audit(events)
    with pytest.raises(NotFoundError):
        client.export_audit("waitpoint_nosuch")


def test_the_async_client_exports_too(async_client_factory) -> None:
    async def scenario() -> list[dict]:
        async with async_client_factory() as client:
            created = await client.create_token()
            return await client.export_audit(created.id)

    events = asyncio.run(scenario())
    assert [e["kind"] for e in events] == ["created"] and verify_audit(events) == []
