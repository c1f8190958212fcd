"""Django's PostgreSQL backend, with its connection health check at most once a second.

Under ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first query of every request
that reuses a persistent connection: one round trip more for every API call, as many as the
call's own statements on a retrieve (issue 18). Here a connection that was checked, or opened,
less than ``HEALTH_CHECK_SECONDS`` ago is taken as good, so a busy thread checks about once a
second and an idle one before each request, as before. What this gives up: a connection broken
within that second (PostgreSQL restarted, say) fails the one request that meets it, with the
API's 503 "try again shortly", instead of being replaced before it. Django then closes it at
the end of that request (``errors_occurred``) and the next one checks at once.

And its cursors read ``timestamptz`` with psycopg's own (C) loader when the session's time zone
is UTC, as it is here: Django registers a Python subclass of it on every connection, to set the
values' time zone, so each timestamp was parsed in Python (a list page of 100 tokens reads about
600). In UTC the C loader already gives what that subclass gives (aware, ``timezone.utc``);
``tests/platform/test_timestamptz_loader.py`` holds the claim.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg.postgres import types
from psycopg.pq import Format

# psycopg's fastest loader of timestamptz text: its C one when psycopg's C module is installed.
FAST_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(types["timestamptz"].oid, Format.TEXT)

HEALTH_CHECK_SECONDS = 1.0
_clock = time.monotonic  # the tests move it


class DatabaseWrapper(base.DatabaseWrapper):
    _known_good_at = float("-inf")

    def connect(self) -> None:
        super().connect()
        self._known_good_at = _clock()

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = super().create_cursor(name)
        if self.timezone is UTC and self.connection.info.timezone is UTC:
            cursor.adapters.register_loader("timestamptz", FAST_TIMESTAMPTZ_LOADER)
        return cursor

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and not self.health_check_done  # type: ignore[has-type]
            and _clock() - self._known_good_at < HEALTH_CHECK_SECONDS
        ):
            self.health_check_done = True
            return
        checking = self.connection is not None and not self.health_check_done
        super().close_if_health_check_failed()
        if checking and self.connection is not None:
            self._known_good_at = _clock()

    def close_if_unusable_or_obsolete(self) -> None:
        if self.errors_occurred:
            self._known_good_at = float("-inf")  # the next request checks, whatever happened
        super().close_if_unusable_or_obsolete()
