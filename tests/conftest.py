"""Shared fixtures: two environments in two projects, keys for each, API clients.

The main suite runs on PostgreSQL and Redis only (the embedded SQLite default has its own smoke
tests, run in subprocesses): a missing service fails the run instead of skipping tests.
"""

from __future__ import annotations

import os
import uuid

import pytest
from rest_framework.test import APIClient

from tests.fake_slack import fake_slack, slack_connection  # noqa: F401 - fixtures for Slack tests
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Environment
from tokens.persistence import keycache


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-django creates the test database only for a session with a test that asks for
    one; a test that reaches it only through a live web role (``tests/live.py``: ``web``, or a
    module starting ``live_web`` itself) does not, so run alone it met a server on a database
    nobody had created. Such tests ask for it here."""
    for item in items:
        module = getattr(item, "module", None)
        uses_live_web = "web" in getattr(item, "fixturenames", ()) or hasattr(module, "live_web")
        if uses_live_web and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(scope="session", autouse=True)
def _require_real_services(django_db_setup, django_db_blocker) -> None:
    from django.conf import settings
    from django.db import connection

    with django_db_blocker.unblock():
        vendor = connection.vendor
    if vendor != "postgresql":
        pytest.fail(f"the test suite needs PostgreSQL (DATABASE_URL), got {vendor}", pytrace=False)
    import redis

    url = settings.REDIS_URL or os.environ.get("REDIS_URL", "")
    if not url:
        pytest.fail("the test suite needs Redis: set REDIS_URL", pytrace=False)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {url} is not reachable: {error}", pytrace=False)


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WAITPOINTS_DEFAULT_TIMEOUT = "10m"
    settings.WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL = "1h"
    # Rate-limit counters live in Redis across tests: give each test a namespace of its own.
    settings.WAITPOINTS_RATELIMIT_NAMESPACE = f"rl-test-{uuid.uuid4().hex}"
    # Each test's keys are its own: none is remembered from a test whose rows were rolled back.
    keycache.clear()
    # A deliberately slow hasher protects real passwords; tests only need a working one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Pages render {% static %}; the manifest storage needs collectstatic, tests do not run it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def environment(db) -> Environment:
    return tenancy.environment_get_or_create(project_slug="alice", slug="dev")


@pytest.fixture
def other_environment(db) -> Environment:
    return tenancy.environment_get_or_create(project_slug="bob", slug="dev")


@pytest.fixture
def secret_key(environment: Environment) -> str:
    _api_key, secret = tenancy.api_key_create(environment=environment, name="test")
    return secret


@pytest.fixture
def api_client(secret_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    return client


@pytest.fixture
def other_api_client(other_environment: Environment) -> APIClient:
    _api_key, secret = tenancy.api_key_create(environment=other_environment)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_token(environment: Environment):
    """Create a token through the service, as the API would."""

    def make(env: Environment | None = None, **kwargs):
        return lifecycle.token_create(
            environment=env or environment, actor=actors.Actor.system(), **kwargs
        ).token

    return make
