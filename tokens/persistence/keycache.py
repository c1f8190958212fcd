"""Active API keys, remembered by each process for a few seconds.

Every API request looks its key up (a three-table read: key, environment, project); in the
profile that was the largest part of a retrieve after the framework. A key found active is kept
here for ``WAITPOINTS_API_KEY_CACHE_SECONDS`` (default 5). What that costs: a key revoked by
*another* process keeps working here for at most that long; a key revoked in this process is
forgotten at once (``forget``). A key not found is never remembered, so a new key works at
once and a wrong one is looked up (and counted as a failure) every time.

What is kept is the rows' values, not the instances: each hit builds fresh instances, so no
request can see another's changes to them (``api_key_touch`` writes ``last_used_at`` on its
instance; ``note_used`` keeps the cached value in step, or every hit would look a minute old
and write again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

from tokens.models import ApiKey, Environment, Project

# Enough for every key of a large installation; past it the cache starts again (never grows).
MAX_ENTRIES = 10_000
_Row = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]

clock: Callable[[], float] = time.monotonic  # the tests move it
_entries: dict[str, tuple[float, _Row]] = {}
_lock = threading.Lock()


def _seconds() -> float:
    return float(getattr(settings, "WAITPOINTS_API_KEY_CACHE_SECONDS", 5))


def _values(instance: Model) -> tuple[Any, ...]:
    return tuple(getattr(instance, f.attname) for f in instance._meta.concrete_fields)


def _build(model: type[Model], values: tuple[Any, ...]) -> Any:
    names = [f.attname for f in model._meta.concrete_fields]
    return model.from_db(DEFAULT_DB_ALIAS, names, values)


def get(digest: str) -> ApiKey | None:
    """The active key with this digest as last read within the cache's lifetime, with its
    environment and project; None when not cached (then read it and ``put`` it)."""
    entry = _entries.get(digest)
    if entry is None:
        return None
    expires, (key_values, environment_values, project_values) = entry
    if clock() >= expires:
        with _lock:
            if _entries.get(digest) is entry:
                del _entries[digest]
        return None
    api_key: ApiKey = _build(ApiKey, key_values)
    environment: Environment = _build(Environment, environment_values)
    environment.project = _build(Project, project_values)
    api_key.environment = environment
    return api_key


def put(digest: str, api_key: ApiKey) -> None:
    seconds = _seconds()
    if seconds <= 0:
        return
    environment = api_key.environment
    row = (_values(api_key), _values(environment), _values(environment.project))
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[digest] = (clock() + seconds, row)


def forget(digest: str) -> None:
    """This key changed (revoked): the next lookup reads the database."""
    with _lock:
        _entries.pop(digest, None)


def note_used(api_key: ApiKey) -> None:
    """``last_used_at`` was written: keep the cached copy in step."""
    with _lock:
        entry = _entries.get(api_key.digest)
        if entry is None:
            return
        expires, (key_values, environment_values, project_values) = entry
        if key_values[0] != api_key.pk:
            return
        _entries[api_key.digest] = (
            expires,
            (_values(api_key), environment_values, project_values),
        )


def clear() -> None:
    with _lock:
        _entries.clear()
