"""The official SDK (agentapprovalprotocol 0.3.3, unchanged) against the live service: its Gate,
AsyncGate and Client over real HTTP, decisions made through the v1 token API."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
from agentapprovalprotocol import Allow, AsyncClient, AsyncGate, Call, Client, Deny, Gate
from django.db import connection
from django.utils import timezone

from tests.surfaces.aap.conftest import complete, wait_for_request
from tokens.models import AapRequest, Token, TokenEvent

pytestmark = pytest.mark.django_db(transaction=True)


def call(tool: str = "issue_refund", **arguments: object) -> Call:
    return Call(
        key=str(uuid.uuid4()),
        tool=tool,
        arguments=arguments
        or {"payment_id": "payment_123", "amount": 4900, "nested": {"a": [1, 2.5]}},
        reasoning="The customer was charged twice.",
    )


def decide_when_asked(web_url: str, api_key: str, data: object) -> threading.Thread:
    def run() -> None:
        try:
            request = wait_for_request(lambda r: r.token.status == Token.Status.WAITING)
            response = complete(web_url, api_key, request, data)
            assert response.status_code == 200, response.text
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_it_approves_a_call_the_approver_approves(aap_web, base, credential, api_key) -> None:
    decider = decide_when_asked(
        aap_web.url, api_key, {"status": "approved", "comment": "Confirmed."}
    )
    gate = Gate(Client(base, credential), wait_limit=30)
    verdict = gate.check(call())
    decider.join()
    assert isinstance(verdict, Allow), verdict
    request = AapRequest.objects.select_related("token").get(pk=verdict.request_id)
    token = request.token
    assert token.status == Token.Status.COMPLETED and token.decision == "approved"
    assert token.consumed_at is not None  # the gate consumed it before allowing
    assert set(token.tags) == {
        f"aap-request:{request.pk}",
        "aap-tool:issue_refund",
        f"aap-instance:{request.instance_id}",
    }
    assert verdict.report("succeeded") is True
    token.refresh_from_db()
    assert token.outcome_status == "succeeded"
    events = set(TokenEvent.objects.filter(token=token).values_list("kind", "channel"))
    assert ("created", "aap") in events and ("consumed", "aap") in events


def test_it_denies_with_the_approvers_comment_as_the_note(
    aap_web, base, credential, api_key
) -> None:
    decider = decide_when_asked(
        aap_web.url, api_key, {"status": "rejected", "comment": "Not today."}
    )
    verdict = Gate(Client(base, credential), wait_limit=30).check(call())
    decider.join()
    assert isinstance(verdict, Deny) and verdict.status == "denied"
    assert "Not today." in verdict.reason
    request = Client(base, credential).get(verdict.request_id)
    assert request.decision is not None and request.decision.note == "Not today."
    assert request.decision.expires_at is None


def test_the_async_gate_approves_too(aap_web, base, credential, api_key) -> None:
    decider = decide_when_asked(aap_web.url, api_key, {"status": "approved"})

    async def check() -> object:
        client = AsyncClient(base, credential)
        try:
            return await AsyncGate(client, wait_limit=30).check(call())
        finally:
            await client.aclose()

    verdict = asyncio.run(check())
    decider.join()
    assert isinstance(verdict, Allow), verdict


def test_it_expires_a_request_nobody_decides(aap_web, base, credential) -> None:
    gate = Gate(Client(base, credential), timeout="1s", wait_limit=30)
    verdict = gate.check(call())
    assert isinstance(verdict, Deny) and verdict.status == "expired", verdict
    request = Client(base, credential).get(verdict.request_id)
    assert request.status == "expired"
    assert request.decision is not None and request.decision.decided_at == request.deadline_at


def test_an_abandoned_wait_cancels_the_request(aap_web, base, credential) -> None:
    # The gate's own limit ends first: it cancels the request it no longer waits for.
    gate = Gate(Client(base, credential), timeout="10m", wait_limit=1)
    verdict = gate.check(call())
    assert isinstance(verdict, Deny), verdict
    request = Client(base, credential).get(verdict.request_id)
    assert request.status == "cancelled"
    token = AapRequest.objects.select_related("token").get(pk=verdict.request_id).token
    assert token.status == Token.Status.CANCELLED


def test_a_cancel_ends_a_long_poll_with_the_cancelled_request(aap_web, base, credential) -> None:
    client = Client(base, credential)
    created = client.create(
        {"tool": "deploy", "arguments": {}, "timeout": "10m"}, str(uuid.uuid4())
    )
    result: dict[str, object] = {}

    def poll() -> None:
        result["request"] = Client(base, credential).get(created.id, wait=25)

    poller = threading.Thread(target=poll)
    poller.start()
    started = timezone.now()
    wait_for_request()  # it exists; give the poll a moment to subscribe
    cancelled = client.cancel(created.id)
    poller.join(timeout=20)
    assert cancelled.status == "cancelled"
    assert result["request"].status == "cancelled"  # type: ignore[attr-defined]
    assert timezone.now() - started < timedelta(seconds=20)
    assert client.cancel(created.id).status == "cancelled"  # again: the same
