"""A dead worker or beat is started again; the web role and the service stay up.

honcho stops every role when one exits; before the Procfile ran worker and beat under
``waitpoints_site.keepalive``, one worker crash took web and beat down with it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.smoke.processes import (
    embedded_env,
    free_port,
    honcho,
    migrate_and_bootstrap,
    request,
    serving,
    sqlite_query,
    tail,
    wait_until,
)

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(240)]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def _role_process(root: int, role: str) -> int | None:
    """The topmost `celery … <role>` process under root (not the keepalive wrapper)."""
    level = [root]
    while level:
        for pid in level:
            words = _cmdline(pid)
            celery = any(word.endswith("celery") for word in words)
            if celery and role in words and "waitpoints_site.keepalive" not in words:
                return pid
        level = [child for pid in level for child in _children(pid)]
    return None


def _status(database: Path, token_id: str) -> str | None:
    rows = sqlite_query(database, "SELECT status FROM tokens_token WHERE id = ?", token_id)
    return rows[0][0] if rows else None


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_killed_role_is_restarted_and_the_service_stays_up(tmp_path: Path, role: str) -> None:
    var = tmp_path / "var"
    port = free_port()
    env = embedded_env(var, port)
    key = migrate_and_bootstrap(env)["key"]
    log = tmp_path / "honcho.log"
    base = f"http://127.0.0.1:{port}"
    with serving(honcho(port, "web", "worker", "beat"), env=env, log=log, base_url=base) as server:
        target = None

        def found() -> bool:
            nonlocal target
            target = _role_process(server.pid, role)
            return target is not None

        assert wait_until(found, timeout=30), tail(log)
        assert target is not None
        os.kill(target, signal.SIGKILL)

        def restarted() -> bool:
            again = _role_process(server.pid, role)
            return again is not None and again != target

        assert wait_until(restarted, timeout=30), tail(log)
        # honcho copies the wrapper's stderr into its log a moment later.
        logged = "keepalive: celery -A waitpoints_site "
        assert wait_until(lambda: logged in log.read_text(), timeout=15), tail(log)
        assert server.poll() is None, tail(log)
        status, _ = request("GET", f"{base}/healthz")
        assert status == 200

        # The restarted role does its work: beat schedules the sweep, the worker runs it.
        status, created = request(
            "POST", f"{base}/api/v1/waitpoints/tokens", body={"timeout": "1s"}, key=key
        )
        assert status == 200, created
        token_id = created["id"].removeprefix("waitpoint_")
        database = var / "waitpoints.sqlite3"
        assert wait_until(lambda: _status(database, token_id) == "TIMED_OUT", timeout=30), tail(log)
        assert server.poll() is None, tail(log)
