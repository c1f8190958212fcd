"""The embedded default and PostgreSQL keep their own demo credentials in one var/ folder.

Trying ``bin/serve`` on SQLite, then with ``DATABASE_URL``, then on SQLite again must print the
first key and password again, not "the demo environment already has API keys".
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.smoke.processes import bootstrap, manage, subprocess_env

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(180)]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database of its own on the suite's PostgreSQL server, dropped afterwards."""
    server = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    assert server, "bin/test sets DATABASE_URL"
    name = f"waitpoints_modes_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bootstrap(env: dict[str, str]) -> tuple[str, str]:
    printed = bootstrap(env)
    return printed["key"], printed["password"]


def test_each_database_keeps_its_own_credentials(tmp_path: Path, postgres_url: str) -> None:
    var = tmp_path / "var"
    key = secrets.token_urlsafe(40)
    embedded = subprocess_env(WAITPOINTS_VAR_DIR=str(var), SECRET_KEY=key)
    postgres = subprocess_env(
        WAITPOINTS_VAR_DIR=str(var), SECRET_KEY=key, DATABASE_URL=postgres_url
    )
    manage("migrate", "--noinput", env=embedded)
    manage("migrate", "--noinput", env=postgres)

    first_embedded = _bootstrap(embedded)
    first_postgres = _bootstrap(postgres)
    assert None not in first_embedded and None not in first_postgres
    assert first_embedded != first_postgres

    assert _bootstrap(embedded) == first_embedded
    assert _bootstrap(postgres) == first_postgres

    credentials = var / "demo-credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    entries = json.loads(credentials.read_text())["databases"]
    assert sorted(entry["api_key"] for entry in entries.values()) == sorted(
        [first_embedded[0], first_postgres[0]]
    )
    postgres_label, sqlite_label = sorted(entries)
    assert sqlite_label == f"sqlite:{(var / 'waitpoints.sqlite3').resolve()}"
    assert postgres_label.startswith("postgresql://")
    assert postgres_label.endswith(postgres_url.rsplit("/", 1)[1])


def test_a_file_from_before_is_still_used(tmp_path: Path) -> None:
    """A flat demo-credentials.json (one entry, any database) still prints the same key."""
    var = tmp_path / "var"
    env = subprocess_env(WAITPOINTS_VAR_DIR=str(var), SECRET_KEY=secrets.token_urlsafe(40))
    manage("migrate", "--noinput", env=env)
    first = _bootstrap(env)
    credentials = var / "demo-credentials.json"
    (entry,) = json.loads(credentials.read_text())["databases"].values()
    credentials.write_text(json.dumps(entry))  # as the older bootstrap wrote it

    assert _bootstrap(env) == first
