"""API keys remembered for a few seconds per process (tokens/persistence/keycache.py), and
revocation taking effect: here at once, in another process within the cache's lifetime."""

from __future__ import annotations

import time

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.live import LiveServer, web  # noqa: F401, F811 - the live web role fixture
from tests.smoke.processes import wait_until
from tokens.domain import tenancy
from tokens.models import ApiKey
from tokens.persistence import keycache, selectors

TOKENS = "/api/v1/waitpoints/tokens"


@pytest.fixture
def frozen_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(keycache, "clock", lambda: now[0])
    return now


def key_queries(secret: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert selectors.api_key_get_by_secret(secret=secret) is not None
    return sum("tokens_apikey" in query["sql"] for query in queries.captured_queries)


@pytest.mark.django_db
def test_it_reads_a_key_once_within_its_lifetime(environment, frozen_clock, settings) -> None:
    settings.WAITPOINTS_API_KEY_CACHE_SECONDS = 5
    _api_key, secret = tenancy.api_key_create(environment=environment)
    assert key_queries(secret) == 1
    assert key_queries(secret) == 0
    found = selectors.api_key_get_by_secret(secret=secret)
    assert found is not None
    assert found.environment == environment and found.environment.project == environment.project
    # Each hit is built afresh: a request changing its copy changes no other request's.
    found.name = "changed by one request"
    assert selectors.api_key_get_by_secret(secret=secret).name != found.name  # type: ignore[union-attr]
    frozen_clock[0] += 5
    assert key_queries(secret) == 1


@pytest.mark.django_db
def test_it_never_remembers_a_key_it_did_not_find(environment, frozen_clock) -> None:
    assert selectors.api_key_get_by_secret(secret="tr_dev_" + "x" * 43) is None
    assert keycache._entries == {}


@pytest.mark.django_db
def test_a_revocation_in_this_process_takes_effect_at_once(environment, frozen_clock) -> None:
    api_key, secret = tenancy.api_key_create(environment=environment)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(TOKENS).status_code == 200
    assert client.get(TOKENS).status_code == 200  # now from the cache
    tenancy.api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))
    assert client.get(TOKENS).status_code == 401


@pytest.mark.django_db
def test_a_revocation_elsewhere_takes_effect_within_the_lifetime(
    environment, frozen_clock, settings
) -> None:
    settings.WAITPOINTS_API_KEY_CACHE_SECONDS = 5
    api_key, secret = tenancy.api_key_create(environment=environment)
    assert selectors.api_key_get_by_secret(secret=secret) is not None
    # As another process would: the row changes, this process's cache is not told.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=api_key.created_at)
    frozen_clock[0] += 4.9
    assert selectors.api_key_get_by_secret(secret=secret) is not None
    frozen_clock[0] += 0.1
    assert selectors.api_key_get_by_secret(secret=secret) is None


@pytest.mark.django_db
def test_last_use_is_written_once_a_minute_even_from_the_cache(environment, frozen_clock) -> None:
    _api_key, secret = tenancy.api_key_create(environment=environment)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.get(TOKENS)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get(TOKENS).status_code == 200
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


@pytest.mark.django_db(transaction=True)
def test_the_live_web_role_stops_accepting_a_key_revoked_by_another_process(
    web: LiveServer,  # noqa: F811 - the fixture imported above
    environment,
) -> None:
    """The web role is another process: it learns of the revocation only from the database,
    within WAITPOINTS_API_KEY_CACHE_SECONDS (5) of it."""
    api_key, secret = tenancy.api_key_create(environment=environment)
    headers = {"Authorization": f"Bearer {secret}"}
    for _ in range(3):  # read once, then remembered
        assert httpx.get(f"{web.url}{TOKENS}", headers=headers, timeout=10).status_code == 200
    tenancy.api_key_revoke(api_key=api_key)
    revoked_at = time.monotonic()
    assert wait_until(
        lambda: httpx.get(f"{web.url}{TOKENS}", headers=headers, timeout=10).status_code == 401,
        timeout=15,
        interval=0.1,
    )
    took = time.monotonic() - revoked_at
    assert took < 5 + 2, took  # the lifetime, plus slack for a busy machine
