"""The smoke tests run the embedded default (SQLite, filesystem broker) in subprocesses.

They need neither PostgreSQL nor Redis, so the suite-wide check that both are reachable does
not apply here: this fixture replaces it for this directory.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _require_real_services() -> None:
    return None
