"""Helpers for tests that run the service in subprocesses: ports, environments, clean shutdown."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv running pytest has uvicorn, celery, honcho
# The Procfile's roles, as bin/serve runs them (add the roles: web, worker, beat).
HONCHO = [str(BIN / "honcho"), "start", "--env", "/dev/null"]
# The web role alone, as the Procfile starts it.
WEB = [sys.executable, "-m", "waitpoints_site.web"]

# Variables that would make a subprocess use something other than what the test chose.
_SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "PUBLIC_BASE_URL",
    "ALLOWED_HOSTS",
    "PORT",
    "BIND_HOST",
    "WAITPOINTS_VAR_DIR",
    "WAITPOINTS_ENV_FILE",
)


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DEBUG"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    # Settings read .env (waitpoints_site/env.py): never the developer's, unless a test says so.
    env["WAITPOINTS_ENV_FILE"] = os.devnull
    env.update(overrides)
    return env


def embedded_env(var: Path, port: int | None = None, **overrides: str) -> dict[str, str]:
    """The embedded default (SQLite and the filesystem broker, no DATABASE_URL or REDIS_URL)
    in ``var`` with a fresh secret key; serving on 127.0.0.1:``port`` when one is given."""
    env = {"WAITPOINTS_VAR_DIR": str(var), "SECRET_KEY": secrets.token_urlsafe(40)}
    if port is not None:
        env.update(BIND_HOST="127.0.0.1", PORT=str(port))
    return subprocess_env(**{**env, **overrides})


def honcho(port: int, *roles: str) -> list[str]:
    """``honcho start`` of the Procfile's ``roles`` on ``port``, as bin/serve runs them."""
    return [*HONCHO, "--port", str(port), *roles]


def free_port() -> int:
    """A free 127.0.0.1 port from WAITPOINTS_TEST_PORTS ("8040-8059" unless set)."""
    first, _, last = os.environ.get("WAITPOINTS_TEST_PORTS", "8040-8059").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as probe:
            # As the servers do: a port whose last connections are in TIME_WAIT is free to
            # listen on; only a listener (another server, ours or not) makes it busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def run_manage(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run a management command and return how it ended, whatever that was."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def manage(*args: str, env: dict[str, str], timeout: float = 120, cwd: Path = ROOT) -> str:
    """Run a management command; return its stdout, fail with its output if it fails."""
    result = run_manage(*args, env=env, timeout=timeout, cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


_BOOTSTRAP_LINES = {
    "key": r"API key:\s+(tr_dev_[A-Za-z0-9_-]{32,})",
    "login": r"Login:\s+(\S+)",
    "password": r"Password:\s+(\S+)",
    "base": r"Base URL:\s+(\S+)",
}


def bootstrap(env: dict[str, str]) -> dict[str, str]:
    """Run ``manage.py bootstrap``; what it printed: ``key``, ``login``, ``password``, ``base``."""
    output = manage("bootstrap", env=env)
    found = {
        name: match.group(1)
        for name, pattern in _BOOTSTRAP_LINES.items()
        if (match := re.search(pattern, output))
    }
    assert set(_BOOTSTRAP_LINES) <= found.keys(), output
    return found


def migrate_and_bootstrap(env: dict[str, str]) -> dict[str, str]:
    """A fresh database ready to serve, as bin/serve prepares it; bootstrap's credentials."""
    manage("migrate", "--noinput", env=env)
    return bootstrap(env)


def sqlite_query(database: Path, sql: str, *params: object, timeout: float = 20) -> list[tuple]:
    """Rows from the embedded default's SQLite file, read-only (the service keeps writing)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=timeout)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def _kill_group(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextmanager
def running(
    args: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen]:
    """Start a process in its own process group; on exit stop the whole group, always.

    SIGTERM first (graceful), SIGKILL after 20 s. For honcho, whose children each run in a
    session of their own, the pids it reports in the log are stopped as groups too.
    """
    handle = log.open("w")
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        children = honcho_children(log)
        _kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Stuck: take down the group and whatever honcho had started.
            _kill_group(process.pid, signal.SIGKILL)
            for child in children:
                _kill_group(child, signal.SIGKILL)
            process.wait(timeout=10)
        _kill_group(process.pid, signal.SIGKILL)  # leftovers of a graceful exit, if any
        handle.close()


@contextmanager
def serving(
    args: list[str], *, env: dict[str, str], log: Path, base_url: str, cwd: Path = ROOT
) -> Iterator[subprocess.Popen]:
    """``running``, once ``base_url``/healthz answers 200."""
    with running(args, env=env, log=log, cwd=cwd) as process:
        wait_for_health(base_url, process, log)
        yield process


def honcho_children(log: Path) -> list[int]:
    pids = []
    for line in log.read_text(errors="replace").splitlines():
        if "started (pid=" in line:
            pids.append(int(line.rsplit("pid=", 1)[1].rstrip(")")))
    return pids


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def request(
    method: str,
    url: str,
    *,
    body: Any = None,
    key: str | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One HTTP request with urllib; JSON in, JSON (or text) out; errors are returned."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for_health(base_url: str, process: subprocess.Popen, log: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            status, body = request("GET", f"{base_url}/healthz", timeout=2)
        except OSError:
            status, body = 0, None
        if status == 200:
            return body
        time.sleep(0.3)
    raise AssertionError(f"{base_url}/healthz did not answer 200 in {timeout} s:\n{tail(log)}")


def wait_until(predicate, *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
