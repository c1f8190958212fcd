"""The web role: ``python -m waitpoints_site.web`` (the Procfile's ``web`` line).

uvicorn, with httptools parsing and uvloop, serving ``waitpoints_site.asgi:application`` through
``waitpoints_site.server.WebProtocol`` (head deadline, silence limit, head size limit, JSON for
malformed requests). ASGI because a long-poll waiter must cost a coroutine, not a thread;
ordinary requests run through Django's WSGI handler on each process's thread pool
(``waitpoints_site/threadpool.py``). Measured against hypercorn, which served this role before
issue 18: docs/benchmarks/profile.md.

Environment variables:

* ``BIND_HOST`` / ``PORT`` (``0.0.0.0`` / ``8000``; bin/serve sets 127.0.0.1): where to listen.
* ``WEB_CONCURRENCY`` (default: the number of CPU cores, at most 8): worker processes, each one
  event loop that serves any number of waiters and slow clients and runs ordinary requests on
  ``WEB_THREADS`` threads (``env.web_threads``), each keeping its database connection.
* ``WEB_HEADER_TIMEOUT`` (default 10 s): a complete request head within this time of the
  connection opening or of its previous response; otherwise the connection is closed.
* ``WEB_READ_TIMEOUT`` (default 90 s): a connection that sends nothing for this long is closed,
  whatever its state. Longer than the longest long poll (60 s), during which a client is silent.
"""

from __future__ import annotations

import math
import os
from typing import Any

import uvicorn

from waitpoints_site import env, server

# Before the workers start, for the server's own lines (Django's LOGGING takes over in each
# worker once the application is loaded: the access log goes through its redacting handler).
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}


def options() -> dict[str, Any]:
    # All interfaces by default, as platforms that set PORT expect; bin/serve sets 127.0.0.1.
    return {
        "host": os.environ.get("BIND_HOST", "0.0.0.0"),  # noqa: S104
        "port": int(os.environ.get("PORT", "8000")),
        "workers": env.web_workers(),
        "http": "waitpoints_site.server:WebProtocol",
        "loop": "uvloop",
        "lifespan": "on",
        "ws": "none",
        "interface": "asgi3",
        # uvicorn's keep-alive timer stops at a client's first byte; WebProtocol's head deadline
        # is the one that counts. It needs a whole number of seconds.
        "timeout_keep_alive": max(1, math.ceil(server.header_timeout())),
        "timeout_graceful_shutdown": 5,
        # X-Forwarded-For is Django's business (TRUSTED_PROXIES), never the server's: uvicorn
        # would otherwise rewrite the client address for any request from 127.0.0.1.
        "proxy_headers": False,
        "server_header": False,
        "log_config": LOG_CONFIG,
    }


def main() -> None:
    # Loaded before Django's settings are: .env's PORT, BIND_HOST, WEB_* apply here too.
    env.load()
    uvicorn.run("waitpoints_site.asgi:application", **options())


if __name__ == "__main__":
    main()
