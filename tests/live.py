"""A live ``web`` role (uvicorn, as the Procfile starts it) on the test database.

Session-scoped: one server process for the tests that need one. Tests that create data for it
must commit it (``transactional_db``).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from tests.smoke.processes import WEB, free_port, serving, subprocess_env


@dataclass
class LiveServer:
    url: str
    process: Popen[bytes]
    log: Path
    port: int

    def thread_count(self) -> int:
        """Threads of the server and all its descendants (the server's worker processes)."""
        return sum(_threads(pid) for pid in [self.process.pid, *_descendants(self.process.pid)])


def _threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def test_database_url() -> str:
    """DATABASE_URL of the test database, for subprocesses (every part percent-encoded)."""
    from django.db import connection

    db = connection.settings_dict
    user = urllib.parse.quote(db.get("USER") or "", safe="")
    password = db.get("PASSWORD") or ""
    auth = (
        f"{user}:{urllib.parse.quote(password, safe='')}@"
        if password
        else (f"{user}@" if user else "")
    )
    host = db.get("HOST") or "127.0.0.1"
    name = urllib.parse.quote(db["NAME"], safe="")
    return f"postgres://{auth}{host}:{db.get('PORT') or 5432}/{name}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


@contextmanager
def live_web(directory: Path, **env_overrides: str) -> Iterator[LiveServer]:
    from django.conf import settings

    port = free_port()
    defaults = {
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL or os.environ.get("REDIS_URL", ""),
        "SECRET_KEY": settings.SECRET_KEY,
        "WEB_CONCURRENCY": "1",
        "WAITPOINTS_VAR_DIR": str(directory / "var"),
    }
    env = subprocess_env(
        **{**defaults, **env_overrides, "PORT": str(port), "BIND_HOST": "127.0.0.1"}
    )
    log = directory / "web.log"
    url = f"http://127.0.0.1:{port}"
    with serving(WEB, env=env, log=log, base_url=url) as process:
        yield LiveServer(url=url, process=process, log=log, port=port)


@pytest.fixture(scope="session")
def web(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    """The web role as the Procfile runs it (uvicorn), one worker, on the test database.
    Import it into a conftest to use it."""
    with django_db_blocker.unblock(), live_web(tmp_path_factory.mktemp("web")) as server:
        yield server
