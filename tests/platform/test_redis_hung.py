"""Redis hung (SIGSTOP) or unreachable: no request waits more than 150 ms on it, and nothing is
lost (issue 18). A private redis-server on a port of its own, never the shared one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings as django_settings

from tests.smoke.processes import free_port, wait_until
from tokens.models import Token
from tokens.surfaces.common import ratelimit

TOKENS = "/api/v1/waitpoints/tokens"
BOUND = 0.150  # seconds a request may wait on Redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_redis(tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (Debian: apt-get install -y redis-server)"
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=1)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    assert wait_until(answers, timeout=10, interval=0.05)
    process.port = port  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.wait()


@pytest.fixture
def on_private_redis(private_redis, settings, monkeypatch):
    """The production cache settings, pointed at the private server; fresh limiter state."""
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {**django_settings.CACHES["default"], "LOCATION": url},
    }
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    monkeypatch.setattr(ratelimit, "_store", ratelimit._StoreState())
    monkeypatch.setattr(ratelimit, "_redis_clients", {})
    return private_redis


def timed_check(monkeypatch) -> list[float]:
    """Record how long each rate-limit check (the request's one Redis round trip) takes."""
    spent: list[float] = []
    original = ratelimit.check

    def check(*checks):
        started = time.monotonic()
        try:
            return original(*checks)
        finally:
            spent.append(time.monotonic() - started)

    monkeypatch.setattr(ratelimit, "check", check)
    return spent


@pytest.mark.parametrize("outage", ["hung", "unreachable"])
def test_no_request_waits_more_than_150_ms_and_nothing_is_lost(
    on_private_redis, api_client, monkeypatch, outage
) -> None:
    assert "x-ratelimit-limit" in api_client.get(TOKENS)  # counted in the private Redis
    spent = timed_check(monkeypatch)
    if outage == "hung":
        os.kill(on_private_redis.pid, signal.SIGSTOP)
    else:
        on_private_redis.kill()
        on_private_redis.wait()
    created = []
    for _ in range(5):
        response = api_client.post(TOKENS, {"timeout": "1h"}, format="json")
        assert response.status_code == 200, response.content
        created.append(response.json()["id"])
        completed = api_client.post(f"{TOKENS}/{created[-1]}/complete", {"data": 1}, format="json")
        assert completed.status_code == 200 and completed.json()["applied"] is True
    assert api_client.get(f"{TOKENS}/{created[0]}").json()["status"] == "COMPLETED"
    print(outage, [round(s * 1000, 1) for s in spent])
    assert len(spent) == 11
    assert max(spent) <= BOUND, [round(s * 1000, 1) for s in spent]
    # Nothing lost: every token was written and completed.
    assert Token.objects.filter(status=Token.Status.COMPLETED).count() == 5


def test_rate_limits_come_back_when_redis_answers_again(
    on_private_redis, api_client, monkeypatch
) -> None:
    monkeypatch.setattr(ratelimit, "_RETRY_STORE_AFTER", 0.2)
    os.kill(on_private_redis.pid, signal.SIGSTOP)
    assert "x-ratelimit-limit" not in api_client.get(TOKENS)  # failed open
    os.kill(on_private_redis.pid, signal.SIGCONT)

    def limited_again() -> bool:
        return "x-ratelimit-limit" in api_client.get(TOKENS)

    assert wait_until(limited_again, timeout=10, interval=0.1)


def test_the_django_cache_waits_no_longer(on_private_redis) -> None:
    """Heartbeats and /healthz read the cache itself: its socket timeouts bound those too."""
    from django.core.cache import caches

    cache = caches["default"]
    cache.set("probe", 1)
    os.kill(on_private_redis.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        cache.get("probe")
    assert time.monotonic() - started <= BOUND
