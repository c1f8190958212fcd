"""The wait hub's database threads check their connection as a request would, but not before
every read: a thousand waiters re-polling would otherwise pay a health-check round trip per read.
After a failure the next read checks at once, so a broken connection is replaced, not reused."""

from __future__ import annotations

import pytest
from django.db import connection

from tokens.delivery import waiting


@pytest.fixture
def checks(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = waiting.close_old_connections

    def counted() -> None:
        calls.append(1)
        real()

    monkeypatch.setattr(waiting, "close_old_connections", counted)
    monkeypatch.setattr(waiting._checked, "at", -waiting.CONNECTION_CHECK_SECONDS, raising=False)
    return calls


@pytest.mark.django_db(transaction=True)
def test_reads_within_a_second_check_the_connection_once(checks, monkeypatch) -> None:
    clock = iter([100.0, 100.2, 100.9, 101.1])
    monkeypatch.setattr(waiting, "_clock", lambda: next(clock))
    for _ in range(3):
        assert waiting._with_fresh_connection(lambda: 42) == 42
    assert len(checks) == 1
    waiting._with_fresh_connection(lambda: None)  # a second later: checked again
    assert len(checks) == 2


@pytest.mark.django_db(transaction=True)
def test_after_a_failed_read_the_next_one_checks_at_once(checks, monkeypatch) -> None:
    monkeypatch.setattr(waiting, "_clock", lambda: 500.0)  # time stands still

    def broken() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM no_such_table")

    waiting._with_fresh_connection(lambda: None)
    with pytest.raises(Exception, match="no_such_table"):
        waiting._with_fresh_connection(broken)
    assert len(checks) == 2  # the first read's check, and the one right after the failure
    waiting._with_fresh_connection(lambda: None)
    assert len(checks) == 3  # the failure cleared the throttle
