"""Every resolution path wakes a long-poll waiter of the live web role, through the resolution
hook (NOTIFY on commit), whichever process resolves: the web role itself (API complete, public
access token, callback URL, cancel) or another one (dashboard, admin force-timeout and the sweep,
run here in the test process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.live import LiveServer
from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tests.surfaces.triggerdev_v1.live.test_wait import blocked_waiters, wait_url
from tokens.domain import actors, lifecycle, links
from tokens.models import Membership, Token

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def waiting_for(web: LiveServer, token: Token, key: str) -> Iterator[Future[httpx.Response]]:
    """A client long-polling ``token`` (up to 60 s), already blocked on the server."""
    before = blocked_waiters(web)
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(
            httpx.get,
            wait_url(web, token, "60s"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=90,
        )
        deadline = time.monotonic() + 30
        while blocked_waiters(web) <= before:
            assert not response.done(), response.result().text
            assert time.monotonic() < deadline, "the waiter never blocked"
            time.sleep(0.05)
        yield response


def resolve_and_wait(
    web: LiveServer, token: Token, key: str, resolve: Callable[[], object]
) -> tuple[dict, float]:
    with waiting_for(web, token, key) as response:
        started = time.monotonic()
        resolve()
        body = response.result(timeout=30).json()
        return body, time.monotonic() - started


def test_api_complete_wakes_the_waiter(web, make_token, secret_key) -> None:
    token = make_token()
    body, _ = resolve_and_wait(
        web,
        token,
        secret_key,
        lambda: httpx.post(
            f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}/complete",
            headers={"Authorization": f"Bearer {secret_key}"},
            json={"data": {"ok": True}},
        ),
    )
    assert body["status"] == "COMPLETED" and body["output"] == '{"json":{"ok":true}}'


def test_public_access_token_complete_wakes_the_waiter(web, secret_key) -> None:
    created = httpx.post(
        f"{web.url}/api/v1/waitpoints/tokens",
        headers={"Authorization": f"Bearer {secret_key}"},
        json={"timeout": "1h"},
    )
    token = Token.objects.get(pk=created.json()["id"].removeprefix("waitpoint_"))
    jwt = created.headers["x-trigger-jwt"]
    body, _ = resolve_and_wait(
        web,
        token,
        jwt,  # the waiter uses the public access token too
        lambda: httpx.post(
            f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}/complete",
            headers={"Authorization": f"Bearer {jwt}"},
            json={"data": "jwt"},
        ),
    )
    assert body["status"] == "COMPLETED" and body["output"] == "jwt"


def test_callback_post_wakes_the_waiter(web, make_token, secret_key) -> None:
    token = make_token()
    url = links.callback_url(token, base=web.url)
    body, _ = resolve_and_wait(
        web, token, secret_key, lambda: httpx.post(url, json={"status": "approved"})
    )
    assert body["status"] == "COMPLETED"


def test_dashboard_approve_wakes_the_waiter(web, make_token, secret_key, environment) -> None:
    token = make_token()
    approver = member(environment, "april", Membership.Role.APPROVER)
    body, _ = resolve_and_wait(
        web,
        token,
        secret_key,
        lambda: csrf_post(client_for(approver), f"/tokens/{token.friendly_id}/approve", {}),
    )
    assert body["status"] == "COMPLETED" and '"approved"' in body["output"]


def test_cancel_wakes_the_waiter(web, make_token, secret_key) -> None:
    token = make_token()
    body, _ = resolve_and_wait(
        web,
        token,
        secret_key,
        lambda: httpx.post(
            f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}/cancel",
            headers={"Authorization": f"Bearer {secret_key}"},
            json={"reason": "withdrawn"},
        ),
    )
    assert body["statusDetail"] == "CANCELLED"


def test_force_timeout_wakes_the_waiter(web, make_token, secret_key) -> None:
    token = make_token()
    body, _ = resolve_and_wait(
        web,
        token,
        secret_key,
        lambda: lifecycle.token_force_timeout(token=token, actor=actors.Actor.system()),
    )
    assert body["status"] == "TIMED_OUT"


def test_the_sweep_wakes_the_waiter(web, make_token, secret_key) -> None:
    """The waiter's own timer is set for the token's original deadline, an hour away; the
    deadline is then moved into the past behind its back, so only the sweep's announcement
    can wake it before the hour is up."""
    token = make_token(timeout="1h")

    def sweep() -> None:
        past = timezone.now() - timedelta(seconds=1)
        Token.objects.filter(pk=token.pk).update(timeout_at=past)
        assert lifecycle.token_expire_due() >= 1

    body, elapsed = resolve_and_wait(web, token, secret_key, sweep)
    assert body["status"] == "TIMED_OUT"
    assert elapsed < 30
