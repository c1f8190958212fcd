"""The embedded default, end to end: what `bin/serve` runs, on SQLite and the filesystem broker.

Everything runs in subprocesses with a temporary WAITPOINTS_VAR_DIR and no DATABASE_URL or
REDIS_URL, so this needs neither PostgreSQL nor Redis: migrate, bootstrap, then the Procfile's
web, worker and beat under honcho. The timeout must be persisted by the worker's sweep (the API
already reads an overdue token as TIMED_OUT, so the test looks at the SQLite file itself).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import pytest

from tests.smoke.processes import (
    bootstrap,
    embedded_env,
    free_port,
    honcho,
    manage,
    migrate_and_bootstrap,
    request,
    run_manage,
    serving,
    sqlite_query,
    subprocess_env,
    tail,
    wait_until,
)

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(240)]


def test_it_runs_web_worker_and_beat_on_sqlite(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = free_port()
    env = embedded_env(var, port)
    database = var / "waitpoints.sqlite3"

    first = migrate_and_bootstrap(env)
    assert first["base"] == f"http://127.0.0.1:{port}"
    assert first["login"] == "admin"

    # Idempotent: the same key and password again, nothing new created.
    again = bootstrap(env)
    assert again == first
    credentials = var / "demo-credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    (entry,) = json.loads(credentials.read_text())["databases"].values()
    assert entry["api_key"] == first["key"]
    assert sqlite_query(database, "SELECT username, is_superuser FROM auth_user") == [("admin", 1)]
    assert sqlite_query(database, "SELECT COUNT(*) FROM tokens_apikey") == [(1,)]
    assert sqlite_query(
        database,
        "SELECT p.slug, e.slug, m.role FROM tokens_membership m "
        "JOIN tokens_project p ON p.id = m.project_id "
        "JOIN tokens_environment e ON e.project_id = p.id",
    ) == [("demo", "dev", "admin")]

    log = tmp_path / "honcho.log"
    base = f"http://127.0.0.1:{port}"
    with serving(honcho(port, "web", "worker", "beat"), env=env, log=log, base_url=base) as server:
        health = request("GET", f"{base}/healthz")[1]
        assert {k: health[k] for k in ("status", "database", "broker", "waiters")} == {
            "status": "ok",
            "database": "ok",
            "broker": "embedded",
            "waiters": 0,
        }
        # Worker and beat write heartbeats into the database cache table (issue 9 #7).
        assert wait_until(
            lambda: all(
                request("GET", f"{base}/healthz")[1][role]["status"] == "ok"
                for role in ("worker", "beat")
            ),
            timeout=30,
        ), tail(log)

        # A token that times out in two seconds…
        status, created = request(
            "POST",
            f"{base}/api/v1/waitpoints/tokens",
            body={"timeout": "2s", "tags": ["smoke"]},
            key=first["key"],
        )
        assert status == 200, created
        expiring = created["id"].removeprefix("waitpoint_")

        # …and one completed through its callback URL, with no API key.
        status, other = request(
            "POST", f"{base}/api/v1/waitpoints/tokens", body={"timeout": "10m"}, key=first["key"]
        )
        assert status == 200, other
        assert other["url"].startswith(f"{base}/api/v1/waitpoints/tokens/{other['id']}/callback/")
        status, answer = request("POST", other["url"], body={"approved": True})
        assert status == 200, answer
        assert answer["success"] is True
        status, completed = request(
            "GET", f"{base}/api/v1/waitpoints/tokens/{other['id']}", key=first["key"]
        )
        assert status == 200, completed
        assert completed["status"] == "COMPLETED"
        assert json.loads(completed["output"]) == {"json": {"approved": True}}

        # The worker's sweep, driven by beat, persists TIMED_OUT (nothing reads the token here).
        def swept() -> bool:
            rows = sqlite_query(database, "SELECT status FROM tokens_token WHERE id = ?", expiring)
            return rows == [("TIMED_OUT",)]

        assert wait_until(swept, timeout=15), tail(log)
        assert sqlite_query(
            database,
            "SELECT kind, channel FROM tokens_tokenevent WHERE token_id = ? AND kind = ?",
            expiring,
            "timed_out",
        ) == [("timed_out", "system")]
        assert sqlite_query(
            database,
            "SELECT status FROM tokens_token WHERE id = ?",
            other["id"].removeprefix("waitpoint_"),
        ) == [("COMPLETED",)]

        # Static files are served by whitenoise with DEBUG off.
        status, _css = request("GET", f"{base}/static/admin/css/base.css")
        assert status == 200

    assert server.returncode is not None
    assert list(var.glob("celerybeat-schedule*")), "beat keeps its schedule under the var dir"
    assert list((var / "broker" / "control").glob("*.exchange")), "so does the broker"


def test_manage_py_by_hand_uses_the_key_bin_serve_generated(tmp_path: Path) -> None:
    """README: after `bin/serve`, `.venv/bin/python manage.py bootstrap` prints the credentials.

    bin/serve exports SECRET_KEY_FILE=var/secret_key; a command run by hand has no SECRET_KEY at
    all and must still find that key, or the stored API key digests would not match it.
    """
    var = tmp_path / "var"
    by_hand = subprocess_env(WAITPOINTS_VAR_DIR=str(var))

    # No key anywhere yet: a clear refusal, not a silent insecure default.
    with pytest.raises(AssertionError, match="SECRET_KEY is required"):
        manage("check", env=by_hand)

    var.mkdir(exist_ok=True)  # settings make it as they load
    key_file = var / "secret_key"
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    as_bin_serve = subprocess_env(WAITPOINTS_VAR_DIR=str(var), SECRET_KEY_FILE=str(key_file))
    served = migrate_and_bootstrap(as_bin_serve)

    assert bootstrap(by_hand) == served
    # The key it printed authenticates under the same SECRET_KEY: the digest lookup matches.
    lookup = manage(
        "shell",
        "-c",
        f"from tokens.persistence.selectors import api_key_get_by_secret as find; "
        f"print(find(secret={served['key']!r}) is not None)",
        env=by_hand,
    )
    assert lookup.strip().endswith("True")


def _check(env: dict[str, str]) -> str:
    result = run_manage("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_manage_py_by_hand_needs_no_public_base_url(tmp_path: Path) -> None:
    """On the embedded default PUBLIC_BASE_URL defaults to what bin/serve uses, so a command
    run by hand neither warns nor e-mails links to another origin than the one served."""
    var = tmp_path / "var"
    output = _check(embedded_env(var))
    assert "PUBLIC_BASE_URL" not in output, output
    origin = "from django.conf import settings; print(settings.PUBLIC_BASE_URL)"
    printed = manage("shell", "-c", origin, env=embedded_env(var))
    assert printed.splitlines()[-1] == "http://127.0.0.1:8000"
    served = embedded_env(var, PORT="8123", BIND_HOST="0.0.0.0")  # noqa: S104 - as bin/serve
    assert manage("shell", "-c", origin, env=served).splitlines()[-1] == "http://127.0.0.1:8123"
    # With a production database nothing can be guessed: it still warns.
    production = embedded_env(var, DATABASE_URL=os.environ["DATABASE_URL"])
    assert "tokens.W001" in _check(production)
