"""The web role's server settings: ``hypercorn --config python:waitpoints_site.hypercorn_config``.

Hypercorn (ASGI, asyncio) because a long-poll waiter must cost a coroutine, not a thread, and
because it bounds how long a client may take: uvicorn has no limit on the time to send request
headers, so a client that never finishes them holds its socket forever.

Environment variables:

* ``BIND_HOST`` / ``PORT`` (``0.0.0.0`` / ``8000``; bin/serve sets 127.0.0.1): where to listen.
* ``WEB_CONCURRENCY`` (default: the number of CPU cores, at most 8): worker processes. Each runs
  one event loop: it serves any number of waiters and slow clients, and runs ordinary requests
  through Django's WSGI handler on a pool of ``WEB_THREADS`` threads (``env.web_threads``;
  waitpoints_site/threadpool.py), each keeping its database connection: 64 connections for all
  web processes together by default.
* ``WEB_HEADER_TIMEOUT`` (default 10 s): a connection must deliver a complete request head
  within this time after it opens (or after its previous response); otherwise it is closed.
  The body then has ``WAITPOINTS_BODY_TIMEOUT_SECONDS`` (see waitpoints_site/asgi.py).
* ``WEB_READ_TIMEOUT`` (default 90 s): a connection that sends nothing for this long is closed,
  whatever its state. Longer than the longest long-poll (60 s), during which a client is silent.
"""

from __future__ import annotations

import logging
import os

from waitpoints_site import env
from waitpoints_site.access_log import AccessLogger

# Loaded before Django's settings are: .env's PORT, BIND_HOST, WEB_* apply here too.
env.load()

# All interfaces by default, as platforms that set PORT expect; bin/serve sets 127.0.0.1.
_host = os.environ.get("BIND_HOST", "0.0.0.0")  # noqa: S104
bind = [f"{_host}:{os.environ.get('PORT', '8000')}"]
workers = env.web_workers()
keep_alive_timeout = float(os.environ.get("WEB_HEADER_TIMEOUT") or 10)
read_timeout = int(os.environ.get("WEB_READ_TIMEOUT") or 90)
# A logger, not "-": Django's LOGGING gives it the handler that masks callback hashes. Its lines
# are hypercorn's, built without copying the environment for each (waitpoints_site/access_log.py).
accesslog = logging.getLogger("hypercorn.access")
logger_class = AccessLogger
errorlog = "-"
# Request line plus headers; longer heads get 431 (see waitpoints_site/server.py).
h11_max_incomplete_size = 16 * 1024
graceful_timeout = 5
