"""Issue 9 #5: the official SDK reads our 429 and waits until ``x-ratelimit-reset`` (unix ms).

A live server with a per-key limit of 3 calls per 2 s; ``ratelimit.mjs`` retrieves one token six
times through ``wait.retrieveToken`` and records every HTTP exchange the SDK makes.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.sdk.test_sdk_compat import RESULT_PREFIX, SDK_DIR, require_node_and_sdk
from tokens.domain import actors, lifecycle, tenancy

pytestmark = [pytest.mark.sdk, pytest.mark.django_db(transaction=True)]


def test_the_sdk_backs_off_until_the_reset_we_announce(live_server, settings) -> None:
    node = require_node_and_sdk()
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "3/2s"
    environment = tenancy.environment_get_or_create(project_slug="sdk-limits", slug="dev")
    _key, secret = tenancy.api_key_create(environment=environment, name="sdk-limits")
    token = lifecycle.token_create(environment=environment, actor=actors.Actor.system()).token

    completed = subprocess.run(
        [node, str(SDK_DIR / "ratelimit.mjs")],
        cwd=SDK_DIR,
        env={
            "PATH": os.environ["PATH"],
            "BASE_URL": live_server.url,
            "TRIGGER_KEY": secret,
            "TOKEN_ID": token.friendly_id,
            "COUNT": "6",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in completed.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    report = json.loads(lines[-1][len(RESULT_PREFIX) :])
    print(json.dumps(report))
    print(
        "statuses",
        [exchange["status"] for exchange in report["exchanges"]],
        "waits after 429 (ms)",
        [
            report["exchanges"][i + 1]["sentAt"] - report["exchanges"][i]["answeredAt"]
            for i, exchange in enumerate(report["exchanges"])
            if exchange["status"] == 429
        ],
    )

    # Every call the program made succeeded: the SDK absorbed the 429s itself.
    assert report["results"] == [{"ok": True, "status": "WAITING"}] * 6
    exchanges = report["exchanges"]
    limited = [i for i, exchange in enumerate(exchanges) if exchange["status"] == 429]
    assert limited, exchanges
    for index in limited:
        refused = exchanges[index]
        assert int(refused["retryAfter"]) >= 1
        retry = exchanges[index + 1]
        # The SDK's next attempt waited for the reset time we announced (unix milliseconds).
        assert retry["sentAt"] >= int(refused["reset"]), (refused, retry)
    assert exchanges[-1]["status"] == 200
