"""The long-poll wait on the embedded default (SQLite: no LISTEN/NOTIFY), with two web
processes: a completion made by the waiter's own process wakes it through the in-process
signal; one made by another process (the other web worker, or a management command here) is
found by the hub's one-query-per-second re-check (WAITPOINTS_WAIT_RECHECK_SECONDS). Its rate
limits count in the database table of the embedded default."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.smoke.processes import (
    WEB,
    embedded_env,
    free_port,
    manage,
    migrate_and_bootstrap,
    request,
    serving,
)

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(240)]


def test_waiters_wake_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(
        tmp_path / "var",
        port,
        WEB_CONCURRENCY="2",
        WAITPOINTS_RATELIMIT_API_KEY_FAILURES="3/1m",
    )
    key = migrate_and_bootstrap(env)["key"]
    base = f"http://127.0.0.1:{port}"
    tokens_url = f"{base}/api/v1/waitpoints/tokens"

    def create() -> str:
        status, body = request("POST", tokens_url, body={"timeout": "1h"}, key=key)
        assert status == 200, body
        return body["id"]

    def wait(token_id: str) -> tuple[float, dict]:
        status, body = request(
            "GET", f"{tokens_url}/{token_id}/wait?timeout=20s", key=key, timeout=30
        )
        assert status == 200, body
        return time.monotonic(), body

    log = tmp_path / "web.log"
    with (
        serving(WEB, env=env, log=log, base_url=base),
        ThreadPoolExecutor(10) as pool,
    ):
        # Completions through the API, served by either web process.
        latencies = []
        for _ in range(10):
            token_id = create()
            waiter = pool.submit(wait, token_id)
            time.sleep(0.3)  # let it block (no waiter gauge across two processes)
            completed = time.monotonic()
            status, _ = request(
                "POST", f"{tokens_url}/{token_id}/complete", body={"data": 1}, key=key
            )
            assert status == 200
            answered, body = waiter.result(timeout=30)
            assert body["status"] == "COMPLETED"
            latencies.append((answered - completed) * 1000)

        # A completion by another process altogether.
        token_id = create()
        waiter = pool.submit(wait, token_id)
        time.sleep(0.3)
        manage(
            "shell",
            "-c",
            "from tokens.domain import actors, lifecycle; from tokens.models import Token; "
            f"t = Token.objects.get(pk='{token_id.removeprefix('waitpoint_')}'); "
            "lifecycle.token_complete(token=t, actor=actors.Actor.system(), data='cli')",
            env=env,
        )
        answered, body = waiter.result(timeout=30)
        assert body["status"] == "COMPLETED" and body["output"] == "cli"

        # The wait's rate limits count in the database here (no Redis), so both web processes
        # share them: three wrong keys, then a fourth is refused with 429; the right key from
        # the same address is still served.
        wait_now = f"{tokens_url}/{create()}/wait?timeout=0s"
        statuses = [request("GET", wait_now, key="tr_dev_" + "w" * 40)[0] for _ in range(4)]
        statuses.append(request("GET", wait_now, key=key)[0])
        assert statuses == [401, 401, 401, 429, 200]

    print(
        "SQLite, 2 web processes: completion to answer median "
        f"{statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )
    # Nothing woke later than the re-check interval (1 s) plus generous slack.
    assert max(latencies) < 5000
