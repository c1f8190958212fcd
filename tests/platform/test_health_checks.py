"""The web threads' persistent connections are health-checked at most once a second while they
work (waitpoints_site/postgresql/base.py), at once after an error or when idle."""

from __future__ import annotations

import pytest
from django.db import connections

from waitpoints_site.postgresql import base

pytestmark = pytest.mark.django_db(transaction=True)


def _db() -> base.DatabaseWrapper:
    return connections["default"]  # type: ignore[return-value]


class Checks(list[int]):
    clock = [1000.0]


@pytest.fixture
def checks(monkeypatch) -> Checks:
    """Counts the real health checks (``SELECT 1``) and lets the test set the clock."""
    counted = Checks()
    real = type(_db()).is_usable

    def is_usable(self) -> bool:
        counted.append(1)
        return real(self)

    monkeypatch.setattr(type(_db()), "is_usable", is_usable)
    counted.clock = [1000.0]
    monkeypatch.setattr(base, "_clock", lambda: counted.clock[0])
    return counted


def a_request() -> None:
    """What Django does around a request: check the connection, then query."""
    _db().close_if_unusable_or_obsolete()
    with _db().cursor() as cursor:
        cursor.execute("SELECT 42")
    _db().close_if_unusable_or_obsolete()


def test_the_backend_is_ours() -> None:
    assert isinstance(_db(), base.DatabaseWrapper)
    assert _db().health_check_enabled


def test_requests_within_a_second_share_one_check(checks) -> None:
    _db().close()
    a_request()  # a new connection: no check
    assert checks == []
    checks.clock[0] += 0.5
    a_request()
    a_request()
    assert checks == []
    checks.clock[0] += 1.0
    a_request()
    a_request()
    assert len(checks) == 1  # once after the second passed, then good again for a second


def test_after_an_error_the_next_request_checks_at_once(checks) -> None:
    _db().close()
    a_request()
    _db().errors_occurred = True  # as Django marks a connection whose query failed
    _db().close_if_unusable_or_obsolete()  # the failing request's end: one check
    checks.clear()
    a_request()
    assert len(checks) == 1


def test_a_connection_broken_after_its_check_is_replaced_by_the_next_check(checks) -> None:
    _db().close()
    a_request()
    _db().connection.close()  # the psycopg connection itself, under Django (PostgreSQL restarted)
    checks.clock[0] += 1.5
    a_request()  # checked, found unusable, reconnected: the query works
    assert len(checks) == 1
