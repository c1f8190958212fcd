"""The web role's defaults: processes per machine, threads per process and the database
connections they hold (one per thread that runs queries)."""

from __future__ import annotations

import pytest

from waitpoints_site import env


@pytest.mark.parametrize(
    ("cores", "workers", "threads"),
    [(1, 1, 8), (2, 2, 8), (4, 4, 8), (8, 8, 4), (64, 8, 4)],
)
def test_defaults_follow_the_cores_within_postgresql_limits(monkeypatch, cores, workers, threads):
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "WAITPOINTS_WAIT_DB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(env.os, "cpu_count", lambda: cores)
    assert (env.web_workers(), env.web_threads()) == (workers, threads)
    assert env.web_connections() == threads + 4
    assert env.web_workers() * env.web_connections() <= env.WEB_CONNECTIONS_BUDGET


def test_settings_win_and_nonsense_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "16")
    monkeypatch.setenv("WEB_THREADS", "3")
    assert (env.web_workers(), env.web_threads()) == (16, 3)
    monkeypatch.delenv("WEB_THREADS")
    assert env.web_threads() == 2  # 64 / 16 leaves nothing beside the waiters' 4; never below 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("WEB_CONCURRENCY", bad)
        with pytest.raises(ValueError, match="WEB_CONCURRENCY must be a whole number"):
            env.web_workers()
        monkeypatch.setenv("WEB_THREADS", bad)
        with pytest.raises(ValueError, match="WEB_THREADS must be a whole number"):
            env.web_threads()
        monkeypatch.delenv("WEB_THREADS")
