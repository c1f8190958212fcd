"""The client's tests run in the main suite (bin/test) against a live web role on the test
database; the fixtures below come from the server's test suite."""

from __future__ import annotations

import pytest
from waitpoints_client import AsyncClient, Client

from tests.conftest import (  # noqa: F401 - fixtures
    _require_real_services,
    _test_settings,
    environment,
    make_token,
    other_environment,
    secret_key,
)
from tests.live import LiveServer, web  # noqa: F401 - fixture


@pytest.fixture
def client(web: LiveServer, secret_key: str, transactional_db) -> Client:  # noqa: F811
    with Client(base_url=web.url, secret_key=secret_key) as client:
        yield client


@pytest.fixture
def async_client_factory(web: LiveServer, secret_key: str, transactional_db):  # noqa: F811
    def make() -> AsyncClient:
        return AsyncClient(base_url=web.url, secret_key=secret_key)

    return make
