"""The web role's defaults: processes per machine and the database connections they share."""

from __future__ import annotations

import pytest

from waitpoints_site import env


@pytest.mark.parametrize(
    ("cores", "workers", "pool"),
    [(1, 1, 20), (2, 2, 20), (4, 4, 16), (8, 8, 8), (64, 8, 8)],
)
def test_defaults_follow_the_cores_within_postgresql_limits(monkeypatch, cores, workers, pool):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("WEB_DATABASE_POOL_SIZE", raising=False)
    monkeypatch.setattr(env.os, "cpu_count", lambda: cores)
    assert (env.web_workers(), env.web_pool_size()) == (workers, pool)
    assert env.web_workers() * env.web_pool_size() <= env.WEB_CONNECTIONS_BUDGET


def test_settings_win_and_nonsense_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "16")
    monkeypatch.setenv("WEB_DATABASE_POOL_SIZE", "3")
    assert (env.web_workers(), env.web_pool_size()) == (16, 3)
    monkeypatch.delenv("WEB_DATABASE_POOL_SIZE")
    assert env.web_pool_size() == 4  # 64 / 16, never below 4
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("WEB_CONCURRENCY", bad)
        with pytest.raises(ValueError, match="WEB_CONCURRENCY must be a whole number"):
            env.web_workers()
