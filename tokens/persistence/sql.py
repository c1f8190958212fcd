"""Helpers for the few statements written in SQL on PostgreSQL (the hot paths: a key lookup,
a token read, a creation, a resolution), built from the models' own field definitions so that
a new column cannot be forgotten. See docs/benchmarks/profile.md for why they exist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


def select_columns(model: type[Model], alias: str) -> str:
    """Every concrete column of ``model``, in field order (what ``from_row`` reads back)."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def from_row(model: type[M], row: Sequence[Any]) -> tuple[M, Sequence[Any]]:
    """An instance of ``model`` from the start of ``row`` (as ``select_columns`` lists them),
    and the rest of the row. Only for models none of whose fields needs a converter."""
    names = [f.attname for f in model._meta.concrete_fields]
    return model.from_db(connection.alias, names, row[: len(names)]), row[len(names) :]


def insert_parts(instance: Model) -> tuple[str, str, list[Any]]:
    """``(columns, placeholders, params)`` to insert ``instance`` (not its auto primary key),
    with its values prepared as ``save()`` would. Each placeholder is cast to its column's
    type: in ``INSERT … SELECT`` PostgreSQL does not take an untyped literal's type from the
    target column as it does in ``INSERT … VALUES``."""
    fields = [
        f
        for f in instance._meta.concrete_fields
        if not (f.primary_key and getattr(instance, f.attname) is None)
    ]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    placeholders = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in fields)
    params = [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]
    return columns, placeholders, params


def saved(instance: M, pk: Any = None) -> M:
    """Mark ``instance`` as loaded from the database (after an insert done in SQL)."""
    if pk is not None:
        instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance
