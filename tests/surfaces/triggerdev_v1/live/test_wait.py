"""The long-poll wait against a live web process (uvicorn) on PostgreSQL, with real clients."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import timedelta

import httpx
import jwt as pyjwt
import pytest
from django.db import connection
from django.utils import timezone

from tests.live import LiveServer
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Token
from tokens.surfaces.triggerdev_v1.authentication import issue_public_access_token

pytestmark = pytest.mark.django_db(transaction=True)


def wait_url(web: LiveServer, token: Token, timeout: str = "30s") -> str:
    return f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}/wait?timeout={timeout}"


def in_thread(function):
    """For asyncio.to_thread: Django's connection of that thread is closed afterwards (an open
    one would keep the test database from being dropped)."""

    def run(*args):
        try:
            return function(*args)
        finally:
            connection.close()

    return run


@in_thread
def resolve_silently(*tokens: Token) -> None:
    """Mark tokens completed in the database without any notification: a waiter woken by this
    alone would prove the server polls the database."""
    Token.objects.filter(pk__in=[t.pk for t in tokens]).update(
        status=Token.Status.COMPLETED,
        completed_at=timezone.now(),
        output='{"json":{"approved":true}}',
        output_type="application/super+json",
    )


def blocked_waiters(web: LiveServer) -> int:
    return httpx.get(f"{web.url}/healthz", timeout=5).json()["waiters"]


def blocked_waiters_reach(web: LiveServer, count: int) -> None:
    deadline = time.monotonic() + 60
    while blocked_waiters(web) < count:
        assert time.monotonic() < deadline, f"{blocked_waiters(web)} of {count} waiters blocked"
        time.sleep(0.1)


def notify(*tokens: Token) -> None:
    _notify(*tokens)


notify_in_thread = in_thread(notify)


def _notify(*tokens: Token) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify('waitpoint_resolved', %s)", [",".join(t.pk for t in tokens)]
        )


def test_a_resolved_token_answers_at_once_as_retrieve(web, make_token, secret_key) -> None:
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"ok": 1})
    headers = {"Authorization": f"Bearer {secret_key}"}
    waited = httpx.get(wait_url(web, token), headers=headers, timeout=10)
    retrieved = httpx.get(
        f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}", headers=headers, timeout=10
    )
    assert waited.status_code == 200
    assert waited.json() == retrieved.json()
    assert waited.json()["status"] == "COMPLETED"
    assert waited.headers["content-type"] == "application/json"


def test_the_wait_ends_with_the_waiting_token(web, make_token, secret_key) -> None:
    token = make_token()
    started = time.monotonic()
    response = httpx.get(
        wait_url(web, token, "1s"), headers={"Authorization": f"Bearer {secret_key}"}, timeout=10
    )
    assert time.monotonic() - started >= 1
    assert response.status_code == 200
    assert response.json()["status"] == "WAITING"
    assert response.json()["id"] == token.friendly_id


def test_a_timeout_during_the_wait_is_answered_at_timeout_at(web, make_token, secret_key) -> None:
    token = make_token(timeout="2s")  # no sweep runs in this test: nothing persists TIMED_OUT
    response = httpx.get(
        wait_url(web, token, "20s"), headers={"Authorization": f"Bearer {secret_key}"}, timeout=30
    )
    answered = timezone.now()
    body = response.json()
    assert body["status"] == "TIMED_OUT"
    assert json.loads(body["output"])["code"] == "TRIGGER_WAITPOINT_TIMEOUT"
    assert token.timeout_at <= answered < token.timeout_at + timedelta(seconds=5)
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING  # answered from timeoutAt, not from a sweep


async def _wait_all(web: LiveServer, urls: list[str], key: str) -> list[tuple[float, dict]]:
    """GET every URL at once over raw sockets (an HTTP client library's own overhead for 200
    simultaneous answers would dominate the figure); the time each answer was complete."""

    async def one(url: str) -> tuple[float, dict]:
        target = url.removeprefix(web.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        received = await reader.read()
        answered = time.monotonic()
        writer.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), received
        return answered, json.loads(body)

    return await asyncio.gather(*(one(url) for url in urls))


def test_200_waiters_are_woken_by_the_notification_not_by_polling(
    web, make_token, secret_key, record_property
) -> None:
    tokens = [make_token() for _ in range(20)]
    urls = [wait_url(web, tokens[n % 20], "60s") for n in range(200)]
    threads_before = web.thread_count()

    async def scenario() -> tuple[list[tuple[float, dict]], float, int, float]:
        started = time.monotonic()
        waiters = asyncio.ensure_future(_wait_all(web, urls, secret_key))
        await asyncio.to_thread(blocked_waiters_reach, web, 200)
        all_blocked = time.monotonic() - started
        # Resolved in the database but not announced: nobody may answer.
        await asyncio.to_thread(resolve_silently, *tokens)
        done, _ = await asyncio.wait({waiters}, timeout=2)
        assert not done and blocked_waiters(web) == 200, "answered without notification"
        threads_during = web.thread_count()
        notified = time.monotonic()
        await asyncio.to_thread(notify_in_thread, *tokens)
        results = await waiters
        return results, notified, threads_during, all_blocked

    results, notified, threads_during, all_blocked = asyncio.run(scenario())
    assert all(body["status"] == "COMPLETED" for _, body in results)
    latencies = sorted((at - notified) * 1000 for at, _ in results)
    median, worst = statistics.median(latencies), latencies[-1]
    record_property("wake_ms_median", round(median, 1))
    record_property("wake_ms_max", round(worst, 1))
    print(f"200 waiters: wake latency median {median:.1f} ms, max {worst:.1f} ms")
    print(f"200 waiters connected and blocked after {all_blocked:.2f} s")
    print(f"server threads: {threads_before} before, {threads_during} with 200 waiters")
    # A thread per waiter would add 200; the pool of database threads adds a few.
    assert threads_during - threads_before < 50


def test_a_notification_for_another_token_wakes_nobody_wrongly(web, make_token, secret_key) -> None:
    token, other = make_token(), make_token()

    async def scenario() -> dict:
        async with httpx.AsyncClient(timeout=30) as client:
            waiter = asyncio.ensure_future(
                client.get(
                    wait_url(web, token, "3s"), headers={"Authorization": f"Bearer {secret_key}"}
                )
            )
            await asyncio.sleep(0.5)
            # A spurious wake: the token is still waiting.
            await asyncio.to_thread(notify_in_thread, other, token)
            return (await waiter).json()

    assert asyncio.run(scenario())["status"] == "WAITING"


def test_a_waiter_closed_by_its_client_is_forgotten(web, make_token, secret_key) -> None:
    token = make_token()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            wait_url(web, token, "30s"),
            headers={"Authorization": f"Bearer {secret_key}"},
            timeout=0.5,
        )
    # The server is still fine and answers the next waiter normally.
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data="x")
    response = httpx.get(
        wait_url(web, token), headers={"Authorization": f"Bearer {secret_key}"}, timeout=10
    )
    assert response.json()["output"] == "x"


# -- auth and input -------------------------------------------------------------------------------


def test_the_tokens_public_access_token_may_wait(web, make_token, environment) -> None:
    token, other = make_token(), make_token()
    jwt = issue_public_access_token(
        environment=environment, friendly_id=token.friendly_id, now=int(time.time())
    )
    headers = {"Authorization": f"Bearer {jwt}"}
    ok = httpx.get(wait_url(web, token, "0s"), headers=headers, timeout=10)
    assert ok.status_code == 200 and ok.json()["status"] == "WAITING"
    refused = httpx.get(wait_url(web, other, "0s"), headers=headers, timeout=10)
    assert refused.status_code == 403
    assert refused.json() == {  # complete's 403, as upstream words it
        "error": "Unauthorized",
        "code": "unauthorized",
        "param": "access_token",
        "type": "authorization",
    }
    forged = pyjwt.encode({**pyjwt.decode(jwt, options={"verify_signature": False})}, "nope")
    bad = httpx.get(
        wait_url(web, token, "0s"), headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )
    assert bad.status_code == 401


def test_auth_and_scope_as_complete(web, make_token, secret_key, other_environment) -> None:
    token = make_token()
    missing = httpx.get(wait_url(web, token, "0s"), timeout=10)
    assert missing.status_code == 401
    assert missing.json() == {"error": "Invalid or Missing API key"}
    _key, other_secret = tenancy.api_key_create(environment=other_environment)
    foreign = httpx.get(
        wait_url(web, token, "0s"), headers={"Authorization": f"Bearer {other_secret}"}, timeout=10
    )
    assert foreign.status_code == 404
    assert foreign.json() == {"error": "Waitpoint not found"}
    unknown = httpx.get(
        f"{web.url}/api/v1/waitpoints/tokens/waitpoint_nope/wait",
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=10,
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("61s", "the longest wait is 60s"),
        ("2m", "the longest wait is 60s"),
        ("soon", "expected a duration"),
        ("-1", "expected a duration"),
        ("", "expected a duration"),
    ],
)
def test_bad_timeouts_are_400(web, make_token, secret_key, value, message) -> None:
    token = make_token()
    response = httpx.get(
        wait_url(web, token, value), headers={"Authorization": f"Bearer {secret_key}"}, timeout=10
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_only_get(web, make_token, secret_key) -> None:
    token = make_token()
    response = httpx.post(
        wait_url(web, token), headers={"Authorization": f"Bearer {secret_key}"}, timeout=10
    )
    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
