"""Settings from ``.env``, the same way for every entry point.

``settings.py`` calls :func:`load` before it reads a single variable, so ``manage.py``, the web
server (``wsgi.py`` / ``asgi.py``), the Celery worker and beat (``celery.py``) all see the same
values, however they were started. Variables already set in the environment win over the file.

The file is ``.env`` at the project root, or the one named by ``WAITPOINTS_ENV_FILE`` (``/dev/null``
or an empty file to read none). Parsing is python-dotenv's (quotes, ``export``, comments,
``${VAR}`` expansion), not ours.

``python -m waitpoints_site.env`` prints the file's values that the environment does not already
set as shell ``export`` lines: ``bin/serve`` evaluates them, because it needs ``PORT`` and
``BIND_HOST`` itself and the Procfile's ``web`` line expands them in the shell.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from dotenv import dotenv_values

BASE_DIR = Path(__file__).resolve().parent.parent


def env_file() -> Path:
    return Path(os.environ.get("WAITPOINTS_ENV_FILE") or BASE_DIR / ".env")


def missing_values(path: Path | None = None) -> dict[str, str]:
    """The file's values for the names the environment does not set (the environment wins)."""
    path = env_file() if path is None else path
    if not path.is_file() and not path.is_char_device():
        return {}
    values = dotenv_values(path, interpolate=True)
    return {
        name: value
        for name, value in values.items()
        if value is not None and name not in os.environ
    }


def load() -> None:
    """Put the file's values into ``os.environ``, never replacing a variable already set."""
    os.environ.update(missing_values())


# PostgreSQL allows 100 connections by default; the web processes together stay well below,
# leaving room for the worker, beat, migrations and an operator's psql.
WEB_CONNECTIONS_BUDGET = 64
MAX_DEFAULT_WEB_WORKERS = 8


def positive_int(name: str) -> int | None:
    """The variable as a whole number of at least 1; None when unset; a clear error otherwise."""
    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


def web_workers() -> int:
    """``WEB_CONCURRENCY``, else one web process per core, at most 8 (each is an event loop;
    more processes than that mostly add connections and memory)."""
    configured = positive_int("WEB_CONCURRENCY")
    if configured:
        return configured
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WEB_WORKERS))


def wait_db_threads() -> int:
    """``WAITPOINTS_WAIT_DB_THREADS`` (default 4): threads per web process for the long-poll
    waiters' short database reads, each with a connection of its own."""
    return positive_int("WAITPOINTS_WAIT_DB_THREADS") or 4


def web_threads() -> int:
    """``WEB_THREADS``, else 8 threads per web process for ordinary requests, fewer where that
    would take the web processes past 64 PostgreSQL connections (each thread keeps its own, and
    so does each waiters' thread), never below 2."""
    configured = positive_int("WEB_THREADS")
    if configured:
        return configured
    share = WEB_CONNECTIONS_BUDGET // web_workers() - wait_db_threads()
    return max(2, min(8, share))


def web_connections() -> int:
    """PostgreSQL connections one web process may hold: one per thread that runs queries."""
    return web_threads() + wait_db_threads()


def main() -> None:
    for name, value in missing_values().items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            sys.exit(f"{env_file()}: {name!r} is not a valid variable name")
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
