"""Settings come from ``.env`` for every entry point, and the environment wins over the file.

Each test runs a copy of the project (so that ``.env`` sits at its root, as a user's would,
without touching this checkout's) and starts a real entry point in a subprocess: ``manage.py``,
the Procfile's web server (uvicorn on ``asgi.py``), a Celery worker on ``celery.py``, and the
export lines ``bin/serve`` evaluates.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke.processes import (
    BIN,
    ROOT,
    WEB,
    free_port,
    manage,
    running,
    subprocess_env,
    tail,
    wait_for_health,
    wait_until,
)

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(180)]

COPIED = ("manage.py", "Procfile", "waitpoints_site", "tokens", "templates", "static")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    return copy


def _env(project: Path, **overrides: str) -> dict[str, str]:
    env = subprocess_env(PYTHONPATH=str(project), **overrides)
    del env["WAITPOINTS_ENV_FILE"]  # the default: <project>/.env
    return env


def _write_env(project: Path, var: Path, *lines: str) -> str:
    key = secrets.token_urlsafe(40)
    text = "\n".join(
        [
            "# a user's .env",
            f'SECRET_KEY="{key}"',
            f"export WAITPOINTS_VAR_DIR={var}",
            *lines,
        ]
    )
    (project / ".env").write_text(text + "\n")
    return key


def test_manage_py_reads_env_file_and_the_environment_wins(project: Path, tmp_path: Path) -> None:
    var = tmp_path / "var"
    key = _write_env(project, var, "WAITPOINTS_DEFAULT_TIMEOUT=7m", "LOG_LEVEL=DEBUG")
    env = _env(project, LOG_LEVEL="WARNING")

    output = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.SECRET_KEY, s.VAR_DIR, s.WAITPOINTS_DEFAULT_TIMEOUT, s.LOGGING['root']['level'])",
        env=env,
        cwd=project,
    )
    assert output.splitlines()[-1].split() == [key, str(var), "7m", "WARNING"], output


def test_the_web_server_reads_env_file(project: Path, tmp_path: Path) -> None:
    """The Procfile's web command, with its port, host and database only in .env."""
    var = tmp_path / "var"
    port = free_port()
    _write_env(project, var, f"PORT={port}", "BIND_HOST=127.0.0.1", "WEB_CONCURRENCY=1")
    env = _env(project)
    manage("migrate", "--noinput", env=env, cwd=project)
    log = tmp_path / "web.log"
    with running(WEB, env=env, log=log, cwd=project) as server:
        # Without .env it would listen on 8000 if it started at all: no SECRET_KEY elsewhere.
        health = wait_for_health(f"http://127.0.0.1:{port}", server, log)
        assert health["database"] == "ok"
    assert (var / "waitpoints.sqlite3").is_file(), "the database .env named"


def test_celery_worker_reads_env_file(project: Path, tmp_path: Path) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    assert redis_url, "bin/test sets REDIS_URL"
    _write_env(project, tmp_path / "var", f"REDIS_URL={redis_url}")
    log = tmp_path / "worker.log"
    command = [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--pool=solo", "-l", "info"]
    with running(command, env=_env(project), log=log, cwd=project) as worker:
        ready = wait_until(lambda: " ready." in log.read_text(errors="replace"), timeout=60)
        assert ready, tail(log)
        assert worker.poll() is None
    # The banner masks any password: compare the scheme and the address.
    address = redis_url.rpartition("@")[2].removeprefix("redis://")
    assert re.search(rf"transport:\s+redis://\S*{re.escape(address)}\n", log.read_text()), tail(log)


def test_bin_serve_gets_the_same_values(project: Path, tmp_path: Path) -> None:
    """bin/serve evaluates `python -m waitpoints_site.env`: file values, quoted for the shell."""
    var = tmp_path / "var"
    _write_env(project, var, "PORT=8123", "BIND_HOST=127.0.0.1", 'ODD="it\'s $HOME; a b"')
    script = 'eval "$(python -m waitpoints_site.env)"; printf "%s|%s|%s\\n" "$PORT" "$ODD" "$VAR"'
    result = subprocess.run(
        ["bash", "-c", script.replace("$VAR", "$WAITPOINTS_VAR_DIR")],
        cwd=project,
        env=_env(project, PORT="9000"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"9000|it's $HOME; a b|{var}", result.stderr


def test_bin_test_checks_the_python_version(tmp_path: Path) -> None:
    """Like bin/serve: a clear message before anything is created with an old Python."""
    checkout = tmp_path / "checkout"
    (checkout / "bin").mkdir(parents=True)
    shutil.copy2(ROOT / "bin" / "test", checkout / "bin" / "test")
    old = tmp_path / "old-python"
    old.mkdir()
    fake = old / "python3"
    # Behaves like Python 3.10 for the version check; anything else it is asked fails.
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then exec '
        f"{sys.executable} -c 'import sys; sys.exit((3, 10) < (3, 11))'; fi\n"
        "echo 'old python cannot do that' >&2; exit 2\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{old}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(checkout / "bin" / "test")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "bin/test: needs Python 3.11 or newer as 'python3'" in result.stderr
    assert not (checkout / ".venv").exists()
