"""The long poll under the web role as the Procfile runs it: many waiters hold no thread each,
and each is woken by the resolution's notification, not by polling."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from django.db import connection

from tests.surfaces.aap.conftest import new_key, raw
from tokens.domain import actors, lifecycle
from tokens.models import AapRequest

pytestmark = pytest.mark.django_db(transaction=True)

WAITERS = 60


def blocked(url: str) -> int:
    return int(httpx.get(f"{url}/healthz", timeout=5).json()["waiters"])


def test_many_waiters_share_a_few_threads_and_wake_on_the_decision(
    aap_web, base, credential
) -> None:
    ids = [
        raw(
            base,
            "POST",
            "/v1/requests",
            credential,
            headers={"Idempotency-Key": new_key()},
            json={"tool": f"t{n}", "arguments": {}, "timeout": "10m"},
        ).json()["id"]
        for n in range(WAITERS)
    ]
    threads_before = aap_web.thread_count()

    async def scenario() -> tuple[list[dict], int, float]:
        async with httpx.AsyncClient(timeout=40) as client:
            polls = [
                asyncio.ensure_future(
                    client.get(
                        f"{base}/v1/requests/{request_id}?wait=25s",
                        headers={"Authorization": f"Bearer {credential}"},
                    )
                )
                for request_id in ids
            ]
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(blocked, aap_web.url) < WAITERS:
                assert time.monotonic() < deadline, "the waiters did not all block"
                await asyncio.sleep(0.1)
            threads_during = aap_web.thread_count()
            decided = time.monotonic()
            await asyncio.to_thread(cancel_all)
            answers = await asyncio.gather(*polls)
            return [a.json() for a in answers], threads_during, time.monotonic() - decided

    def cancel_all() -> None:
        try:
            for request in AapRequest.objects.select_related("token"):
                lifecycle.token_cancel(token=request.token, actor=actors.Actor.system())
        finally:
            connection.close()

    answers, threads_during, took = asyncio.run(scenario())
    assert all(a["status"] == "cancelled" for a in answers)
    assert took < 10, f"woken {took:.1f} s after the decisions"
    assert threads_during - threads_before < 20, (threads_before, threads_during)
