"""Issue 9 #5 on the long-poll wait. ``/wait`` is served by its own ASGI handler, outside
Django's middleware and DRF (tokens/api/wait.py), and is limited as every other API call: calls
per key and failed API keys per client address (which limit the failing requests only, never a
right key), counted in the same counters, answered with the same 429 and headers, and served all
the same when the counter store is down.

Against a live web role with small limits, behind a "proxy" (TRUSTED_PROXIES is
127.0.0.1, so each test chooses its client address with X-Forwarded-For).
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings as django_settings

from tests.live import LiveServer, live_web
from tests.outages import TcpProxy
from tests.smoke.processes import free_port, tail, wait_until
from tests.surfaces.triggerdev_v1.live.test_wait import wait_url
from tokens.models import Token

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 3
FAILURES = 3


def _limited_env(**overrides: str) -> dict[str, str]:
    return {
        "WAITPOINTS_RATELIMIT_API_CALLS": f"{CALLS}/1m",
        "WAITPOINTS_RATELIMIT_API_KEY_FAILURES": f"{FAILURES}/1m",
        "TRUSTED_PROXIES": "127.0.0.1",
        # Counters of earlier runs (a minute's window) must not count here.
        "WAITPOINTS_RATELIMIT_NAMESPACE": f"rl-wait-{uuid.uuid4().hex}",
        **overrides,
    }


@pytest.fixture(scope="module")
def limited_web(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    with (
        django_db_blocker.unblock(),
        live_web(tmp_path_factory.mktemp("web-limited"), **_limited_env()) as server,
    ):
        yield server


def _get(url: str, key: str | None, address: str) -> httpx.Response:
    headers = {"X-Forwarded-For": address}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.get(url, headers=headers, timeout=10)


def _retrieve_url(web: LiveServer, token: Token) -> str:
    return f"{web.url}/api/v1/waitpoints/tokens/{token.friendly_id}"


def _assert_limited(response: httpx.Response, *, limit: int, what: str) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    reset_ms = int(response.headers["x-ratelimit-reset"])
    now_ms = time.time() * 1000
    assert now_ms < reset_ms <= now_ms + 61_000
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": f"Rate limit exceeded: too many {what}; retry in {retry_after} s"
    }


def test_wait_spends_the_keys_budget_shared_with_the_rest_of_the_api(
    limited_web, make_token, secret_key
) -> None:
    token = make_token()
    address = "203.0.113.40"
    retrieved = _get(_retrieve_url(limited_web, token), secret_key, address)
    assert retrieved.headers["x-ratelimit-remaining"] == str(CALLS - 1)
    # A successful wait reports the budget as every API answer does, and spends one call.
    waits = [_get(wait_url(limited_web, token, "0s"), secret_key, address) for _ in range(2)]
    assert [w.status_code for w in waits] == [200, 200]
    assert waits[0].json()["id"] == token.friendly_id
    assert [w.headers["x-ratelimit-limit"] for w in waits] == [str(CALLS)] * 2
    assert [w.headers["x-ratelimit-remaining"] for w in waits] == [str(CALLS - 2), "0"]
    assert (
        abs(
            int(waits[1].headers["x-ratelimit-reset"]) - int(retrieved.headers["x-ratelimit-reset"])
        )
        <= 1
    )  # the same window
    # Over the budget: the wait is refused as the rest of the API is, and vice versa.
    refused = _get(wait_url(limited_web, token, "30s"), secret_key, address)
    _assert_limited(refused, limit=CALLS, what="requests for this API key")
    _assert_limited(
        _get(_retrieve_url(limited_web, token), secret_key, address),
        limit=CALLS,
        what="requests for this API key",
    )


def test_a_refused_wait_answers_at_once(limited_web, make_token, secret_key) -> None:
    """Refused before it waits: a 30 s wait over the budget is answered immediately."""
    token = make_token()
    for _ in range(CALLS):
        assert _get(wait_url(limited_web, token, "0s"), secret_key, "203.0.113.41").is_success
    started = time.monotonic()
    refused = _get(wait_url(limited_web, token, "30s"), secret_key, "203.0.113.41")
    assert refused.status_code == 429
    assert time.monotonic() - started < 5


def test_wait_counts_failed_api_keys_per_client_address(
    limited_web, make_token, secret_key
) -> None:
    token = make_token()
    attacker, other = "203.0.113.42", "198.51.100.42"
    # A missing key is not a guess and is not counted.
    for _ in range(FAILURES + 2):
        assert _get(wait_url(limited_web, token, "0s"), None, attacker).status_code == 401
    # Wrong keys on /wait and on the rest of the API fill the same counter.
    wrong = [f"tr_dev_wrong{n:040d}" for n in range(FAILURES)]
    assert _get(_retrieve_url(limited_web, token), wrong[0], attacker).status_code == 401
    for key in wrong[1:]:
        response = _get(wait_url(limited_web, token, "0s"), key, attacker)
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid API key"}
    refused = _get(wait_url(limited_web, token, "0s"), "tr_dev_" + "z" * 40, attacker)
    _assert_limited(refused, limit=FAILURES, what="failed API key attempts from your address")
    # The right key is never refused for failures that are not its own, from that address too.
    served = _get(wait_url(limited_web, token, "0s"), secret_key, attacker)
    assert served.status_code == 200, served.text
    assert served.json()["status"] == "WAITING"
    assert _get(_retrieve_url(limited_web, token), secret_key, attacker).status_code == 200
    # The counter is the client's (from X-Forwarded-For), not the proxy's: elsewhere a wrong key
    # is a plain 401.
    assert _get(wait_url(limited_web, token, "0s"), wrong[0], other).status_code == 401


@pytest.mark.timeout(120)
def test_wait_is_served_when_the_counter_store_is_down(tmp_path, make_token, secret_key) -> None:
    redis = urllib.parse.urlsplit(django_settings.REDIS_URL)
    proxy = TcpProxy(free_port(), redis.port or 6379)
    try:
        env = _limited_env(
            WAITPOINTS_RATELIMIT_API_CALLS="1/1m",
            REDIS_URL=f"redis://127.0.0.1:{proxy.port}{redis.path}",
        )
        with live_web(tmp_path, **env) as web:
            token = make_token()
            url = wait_url(web, token, "0s")
            address = "203.0.113.43"
            # The limit is counted in Redis while it answers...
            assert _get(url, secret_key, address).status_code == 200
            assert _get(url, secret_key, address).status_code == 429
            proxy.cut()
            # ...and with Redis gone, waits are served (with no budget to report) and the web
            # log says why, once.
            served = [_get(url, secret_key, address) for _ in range(5)]
            assert [r.status_code for r in served] == [200] * 5, served[-1].text
            assert all("x-ratelimit-limit" not in r.headers for r in served)
            assert served[0].json()["status"] == "WAITING"
            assert _get(url, "tr_dev_" + "q" * 40, address).status_code == 401

            def warned() -> bool:
                return "rate limits are off" in web.log.read_text(errors="replace")

            assert wait_until(warned, timeout=10), tail(web.log)
            assert web.log.read_text(errors="replace").count("rate limits are off") == 1
    finally:
        proxy.cut()
