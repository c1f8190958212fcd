"""Defaults for the Procfile's ``web`` role; gunicorn reads this file from the working directory.

Command-line flags and ``WEB_CONCURRENCY`` still win. Without them: one process per CPU this
process may run on, at most 4. A request spends most of its time in Python (see
docs/benchmarks/profile.md), which one process runs on one core at a time, so one process left a
core idle on a 2-core machine; beyond a process per core they only compete. The cap keeps
database connections bounded (processes × GUNICORN_THREADS, 16 by default) on large hosts, where
you scale by running more web containers instead.
"""

from __future__ import annotations

import os


def default_workers() -> int:
    configured = os.environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        return int(configured)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


workers = default_workers()
