from __future__ import annotations

import pytest

from tests.live import LiveServer, live_web


@pytest.fixture(scope="session")
def web(django_db_setup, django_db_blocker, tmp_path_factory) -> LiveServer:
    """The web role as the Procfile runs it (hypercorn), one worker, on the test database."""
    with django_db_blocker.unblock(), live_web(tmp_path_factory.mktemp("web")) as server:
        yield server
