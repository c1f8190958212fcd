"""Cursors read timestamptz with psycopg's own loader in a UTC session (waitpoints_site/postgresql),
and the values are exactly those Django's loader gives."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.postgres import types
from psycopg.pq import Format

from waitpoints_site.postgresql.base import FAST_TIMESTAMPTZ_LOADER

pytestmark = pytest.mark.django_db

SQL = (
    "SELECT '2026-12-08 01:02:03.456789+00'::timestamptz, '1999-12-31 23:59:59-05'::timestamptz, "
    "'0001-01-01 00:00:00+00'::timestamptz, NULL::timestamptz, STATEMENT_TIMESTAMP()"
)


def _loader(cursor) -> type:
    return cursor.cursor.adapters.get_loader(types["timestamptz"].oid, Format.TEXT)


def test_a_cursor_reads_timestamptz_with_psycopgs_own_loader() -> None:
    with connection.cursor() as cursor:
        assert _loader(cursor) is FAST_TIMESTAMPTZ_LOADER
        assert not issubclass(FAST_TIMESTAMPTZ_LOADER, BaseTzLoader)  # not Django's Python one


def test_the_values_are_those_djangos_loader_gives() -> None:
    with connection.cursor() as cursor:
        cursor.execute(SQL)
        ours = cursor.fetchone()
    with connection.cursor() as cursor:
        django_loader = connection.connection.adapters.get_loader(
            types["timestamptz"].oid, Format.TEXT
        )
        assert issubclass(django_loader, BaseTzLoader)
        cursor.cursor.adapters.register_loader("timestamptz", django_loader)
        cursor.execute(SQL)
        theirs = cursor.fetchone()
    assert ours[:4] == theirs[:4]
    for value in (*ours[:3], ours[4]):
        assert value.tzinfo is UTC
    assert [v.isoformat() for v in ours[:3]] == [v.isoformat() for v in theirs[:3]]
    assert ours[3] is None


def test_another_session_time_zone_keeps_djangos_loader() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
    try:
        with connection.cursor() as cursor:
            # Django's loader, as without this backend (it sets the session's zone itself).
            assert issubclass(_loader(cursor), BaseTzLoader)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
