"""AAP fixtures: a live web role (uvicorn on the test database), a provisioner token and an
instance credential in the ``environment`` fixture's environment, helpers to decide."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from django.db import connection

from tests.live import (
    LiveServer,
    live_web,
    web,  # noqa: F401 - the live web role fixture, with the default settings
)
from tokens.domain import tenancy
from tokens.domain.aap import credentials, instances
from tokens.models import AapRequest, Environment


@pytest.fixture(scope="session")
def aap_web(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    """A web role that accepts http loopback receivers (``WEBHOOKS_ALLOW_PRIVATE_TARGETS``, for
    the SDK's Receiver on this machine) and counts failed credentials generously (the tests
    send many on purpose, all from 127.0.0.1; ``test_ratelimits`` checks the limits)."""
    with (
        django_db_blocker.unblock(),
        live_web(
            tmp_path_factory.mktemp("aap-web"),
            WEBHOOKS_ALLOW_PRIVATE_TARGETS="True",
            WAITPOINTS_RATELIMIT_API_KEY_FAILURES="100000/1m",
            WAITPOINTS_RATELIMIT_AAP_VERIFICATIONS="100000/1m",
            # Verifications count toward the receiver's delivery rates too (all on 127.0.0.1);
            # tests/delivery/test_aap_rates.py checks those.
            WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST="100000/1m",
            WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS="100000/1m",
            WAITPOINTS_RATELIMIT_AAP_ACCOUNT_VERIFICATIONS="100000/1m",
            WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS="100000/1m",
            # Counters of its own: other live servers of the session count 127.0.0.1 too.
            WAITPOINTS_RATELIMIT_NAMESPACE=f"rl-aap-{uuid.uuid4().hex}",
        ) as server,
    ):
        yield server


@pytest.fixture
def base(aap_web: LiveServer) -> str:
    return f"{aap_web.url}/api/aap"


@pytest.fixture
def strict_base(web: LiveServer) -> str:  # noqa: F811
    """The default web role: only public https receivers."""
    return f"{web.url}/api/aap"


@pytest.fixture
def provisioner(environment: Environment) -> str:
    _row, token = credentials.provisioner_create(environment=environment, name="test")
    return token


@pytest.fixture
def credential(environment: Environment) -> str:
    _instance, secret = instances.instance_create_for_environment(
        environment=environment, name="codex-test"
    )
    return secret


@pytest.fixture
def other_credential(other_environment: Environment) -> str:
    _instance, secret = instances.instance_create_for_environment(
        environment=other_environment, name="codex-other"
    )
    return secret


@pytest.fixture
def api_key(environment: Environment) -> str:
    _key, secret = tenancy.api_key_create(environment=environment, name="approver")
    return secret


def wait_for_request(predicate: Callable[[AapRequest], bool] | None = None) -> AapRequest:
    """The newest AAP request once it exists (created by another thread or process)."""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            found = AapRequest.objects.select_related("token").order_by("-created_at").first()
            if found is not None and (predicate is None or predicate(found)):
                return found
            time.sleep(0.05)
    finally:
        connection.close()
    raise AssertionError("no AAP request appeared")


def complete(web_url: str, api_key: str, request: AapRequest, data: object) -> httpx.Response:
    """Decide over the v1 token API, as any service with an API key would."""
    return httpx.post(
        f"{web_url}/api/v1/waitpoints/tokens/{request.token.friendly_id}/complete",
        json={"data": data},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )


def raw(base: str, method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.request(method, base + path, headers=headers, timeout=40, **kwargs)  # type: ignore[arg-type]


def new_key() -> str:
    return str(uuid.uuid4())
