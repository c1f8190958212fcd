"""The hot statements, each next to its ORM twin.

On PostgreSQL a key lookup, the API's token read, a creation (token + tags + audit event), a
resolution (UPDATE + event + NOTIFY + webhook-endpoint check) and a sweep batch are one
statement each: profiling showed Django compiling the equivalent ORM queries costing several
times what PostgreSQL takes to answer them (docs/benchmarks/profile.md). SQLite (the embedded
default) runs the ORM twin; ``tests/persistence/test_fast_paths.py`` checks that both write
and read the same rows. The statements are built from the models' own field definitions (and
the domain's querysets, compiled), so a new column or rule cannot be forgotten. This module is
the only place that asks which database it runs on for these paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db import models as fields
from django.db.models import F, Field, Model, Q, QuerySet
from django.db.models.sql import UpdateQuery

from tokens.domain import chain
from tokens.models import (
    AapInstance,
    AapRequest,
    ApiKey,
    Environment,
    Project,
    SlackMessage,
    Token,
    TokenEvent,
    TokenTag,
    WebhookEndpoint,
)

M = TypeVar("M", bound=Model)

# The channel resolutions are announced on (delivery.waiting listens to it).
NOTIFY_CHANNEL = "waitpoint_resolved"
NOTIFY_PAYLOAD_LIMIT = 7900  # PostgreSQL's NOTIFY payload must stay under 8000 bytes


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


# ------------------------------------------------------------------------------------------------
# Building statements from the models
# ------------------------------------------------------------------------------------------------


def select_columns(model: type[Model], alias: str) -> str:
    """Every concrete column of ``model``, in field order (what ``from_row`` reads back)."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def from_row(model: type[M], row: Sequence[Any]) -> tuple[M, Sequence[Any]]:
    """An instance of ``model`` from the start of ``row`` (as ``select_columns`` lists them),
    its values converted as the ORM converts them (the JSON fields need it), and the rest of the
    row; without a RawQuerySet, which works out its columns and model again on every call."""
    names = _attnames(model)
    converters = _row_converters(model)
    values: Sequence[Any] = row[: len(names)]
    if converters:
        db = connections[DEFAULT_DB_ALIAS]
        values = list(values)
        for index, field_converters, column in converters:
            for converter in field_converters:
                values[index] = converter(values[index], column, db)
    return model.from_db(DEFAULT_DB_ALIAS, names, values), row[len(names) :]


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


_Converter = tuple[int, list[Any], Any]
_converters: dict[tuple[type[Model], str], list[_Converter]] = {}


def _row_converters(model: type[Model]) -> list[_Converter]:
    """``(index, converters, column)`` for each column of ``model`` whose value needs converting
    (the JSON fields), as the ORM's compiler finds them; worked out once per process."""
    db = connections[DEFAULT_DB_ALIAS]
    key = (model, db.vendor)
    found = _converters.get(key)
    if found is None:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if converters:
                found.append((index, converters, column))
        _converters[key] = found
    return found


# What never changes within a process: which columns an insert names and each placeholder's
# cast. ``cast_db_type`` asks the backend for every field on every call (34 calls a create,
# a fifth of its CPU in the profile: docs/benchmarks/profile.md); these depend only on the model,
# on whether the primary key is given and on the database (one per process, but keyed on its
# vendor all the same).
@dataclass(frozen=True)
class _InsertTemplate:
    fields: tuple[Field[Any, Any], ...]
    columns: str
    placeholders: tuple[str, ...]  # "%s::type", one per field
    nulls: tuple[str, ...]  # "NULL::type", one per field
    # Per field: whether preparing None gives None (then a None is not prepared at all, a third
    # of a create's values); decided by preparing None once, not assumed.
    none_is_null: tuple[bool, ...]
    # Per field: the value types its preparation returns unchanged (``_UNCHANGED``), and its
    # attribute name when reading it is all its ``pre_save`` does.
    unchanged: tuple[tuple[type, ...], ...]
    plain_attnames: tuple[str | None, ...]


# Field classes whose preparation for the database returns a value of these exact types as it
# is (Django's ``get_prep_value``: ``to_python`` of a str is that str, of a bool that bool): such
# values are sent without being prepared. The exact classes, not their subclasses, which may
# prepare differently. Not the integer fields: on PostgreSQL with server-side binding Django
# wraps their values in psycopg's ``Int2`` … ``Int8``. A create prepared 43 values, about a
# tenth of its CPU (docs/benchmarks/profile.md, sixth pass); test_fast_paths.py holds the claim.
_UNCHANGED: dict[type[Field[Any, Any]], tuple[type, ...]] = {
    fields.CharField: (str,),
    fields.TextField: (str,),
    fields.SlugField: (str,),
    fields.BooleanField: (bool,),
}


def _unchanged_types(field: Field[Any, Any]) -> tuple[type, ...]:
    return _UNCHANGED.get(type(field), ())


_insert_templates: dict[tuple[type[Model], bool, str, tuple[str, ...]], _InsertTemplate] = {}


def _insert_template(
    model: type[Model], *, with_pk: bool, without: tuple[str, ...] = ()
) -> _InsertTemplate:
    """The columns and placeholders of an insert into ``model``'s table, each placeholder cast
    to its column's type (fields named in ``without`` left out)."""
    db = connections[DEFAULT_DB_ALIAS]
    key = (model, with_pk, db.vendor, without)
    template = _insert_templates.get(key)
    if template is None:
        fields = tuple(
            f
            for f in model._meta.concrete_fields
            if (with_pk or not f.primary_key) and f.attname not in without
        )
        casts = [f.cast_db_type(db) for f in fields]
        template = _insert_templates[key] = _InsertTemplate(
            fields=fields,
            columns=", ".join(f'"{f.column}"' for f in fields),
            placeholders=tuple(f"%s::{cast}" for cast in casts),
            nulls=tuple(f"NULL::{cast}" for cast in casts),
            none_is_null=tuple(f.get_db_prep_save(None, db) is None for f in fields),
            unchanged=tuple(_unchanged_types(f) for f in fields),
            plain_attnames=tuple(
                f.attname if type(f).pre_save is Field.pre_save else None for f in fields
            ),
        )
    return template


def _values(template: _InsertTemplate, instance: Model) -> tuple[str, list[Any]]:
    """``(placeholders, params)`` of ``instance``'s values for ``template``, prepared as
    ``save()`` would, with every NULL written in the SQL instead of sent as a parameter.

    Why: psycopg caches its conversion of a statement (a regular expression over the whole
    text, ~10% of a create's CPU) only while it has at most 50 parameters
    (``psycopg._queries.MAX_CACHED_STATEMENT_PARAMS``), and a creation had 57, most of them
    NULL. A NULL is what psycopg itself writes for None, so the statement PostgreSQL receives is
    the same; the few shapes (which columns are NULL) each repeat, so each is cached."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the proxy costs on each attribute
    placeholders: list[str] = []
    params: list[Any] = []
    for field, placeholder, null, none_is_null, unchanged, attname in zip(
        template.fields,
        template.placeholders,
        template.nulls,
        template.none_is_null,
        template.unchanged,
        template.plain_attnames,
        strict=True,
    ):
        value = getattr(instance, attname) if attname else field.pre_save(instance, add=True)
        if value is None:
            if not none_is_null:
                value = field.get_db_prep_save(value, db)
        elif type(value) not in unchanged:
            value = field.get_db_prep_save(value, db)
        if value is None:
            placeholders.append(null)
        else:
            placeholders.append(placeholder)
            params.append(value)
    return ", ".join(placeholders), params


def insert_parts(instance: Model) -> tuple[str, str, list[Any]]:
    """``(columns, placeholders, params)`` to insert ``instance`` (not its auto primary key),
    with its values prepared as ``save()`` would. Each placeholder is cast to its column's
    type: in ``INSERT … SELECT`` PostgreSQL does not take an untyped literal's type from the
    target column as it does in ``INSERT … VALUES``."""
    with_pk = getattr(instance, instance._meta.pk.attname) is not None
    template = _insert_template(type(instance), with_pk=with_pk)
    placeholders, params = _values(template, instance)
    return template.columns, placeholders, params


def saved(instance: M, pk: Any = None) -> M:
    """Mark ``instance`` as loaded from the database (after an insert done in SQL)."""
    if pk is not None:
        instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def _compiled(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    sql, params = queryset.query.get_compiler(queryset.db).as_sql()
    return sql, list(params)


# ------------------------------------------------------------------------------------------------
# Reads every API request makes: its key, the token it names
# ------------------------------------------------------------------------------------------------


def with_environment_sql(model: type[Model], where: str) -> str:
    """A SELECT of ``model``'s columns (as ``t``), its environment's and that environment's
    project's, for the one row ``where`` names (what ``with_environment`` reads back)."""
    return (
        f"SELECT {select_columns(model, 't')}, {select_columns(Environment, 'e')}, "  # noqa: S608 - names are ours
        f"{select_columns(Project, 'p')} "
        f"FROM {model._meta.db_table} t JOIN {Environment._meta.db_table} e "
        f"ON e.id = t.environment_id JOIN {Project._meta.db_table} p ON p.id = e.project_id "
        f"WHERE {where} LIMIT 1"
    )


def with_environment(model: type[M], row: Sequence[Any]) -> M:
    """The instance of ``model`` a ``with_environment_sql`` row holds, its environment and
    project loaded."""
    instance, rest = from_row(model, row)
    environment, rest = from_row(Environment, rest)
    environment.project, _ = from_row(Project, rest)
    instance.environment = environment  # type: ignore[attr-defined]
    return instance


@functools.cache
def _api_key_sql() -> str:
    return with_environment_sql(ApiKey, "t.digest = %s AND t.revoked_at IS NULL")


def api_key_by_digest(digest: str) -> ApiKey | None:
    """The active key with this digest, its environment and project loaded; None otherwise."""
    if not _postgresql():
        return (
            ApiKey.objects.select_related("environment__project")
            .filter(digest=digest, revoked_at__isnull=True)
            .first()
        )
    with connection.cursor() as cursor:
        cursor.execute(_api_key_sql(), [digest])
        row = cursor.fetchone()
    return None if row is None else with_environment(ApiKey, row)


@functools.cache
def _token_in_environment_sql() -> str:
    # STATEMENT_TIMESTAMP() is what Now() compiles to on PostgreSQL (selectors read with it).
    return (
        f"SELECT {select_columns(Token, 't')}, STATEMENT_TIMESTAMP() AS db_now "  # noqa: S608
        f"FROM {Token._meta.db_table} t WHERE t.id = %s AND t.environment_id = %s"
    )


def token_in_environment(
    read: Callable[[], QuerySet[Token]], *, environment: Environment, pk: str
) -> Token | None:
    """The token ``pk`` of ``environment``, read as ``read()`` (the selectors' reading
    queryset, which carries ``db_now``; built only where it is used) reads it; None when there
    is none."""
    if not _postgresql():
        return read().filter(environment=environment, pk=pk).first()
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(_token_in_environment_sql(), [pk, environment.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    token, (db_now,) = from_row(Token, row)
    token.db_now = db_now  # type: ignore[attr-defined]
    return token


# ------------------------------------------------------------------------------------------------
# Writes: a creation, a resolution, a sweep batch, the announcement
# ------------------------------------------------------------------------------------------------


def insert_is_one_statement() -> bool:
    """Whether ``insert_token`` writes in one statement (and so needs no transaction of its own
    when nothing else is written with it)."""
    return _postgresql()


def insert_token(token: Token, tags: list[str], event: TokenEvent) -> None:
    """The token, its tag rows and its audit event. On PostgreSQL in one statement: three
    round trips and three passes through the ORM's insert machinery were most of a create.
    The event is the first link of the token's hash chain (``tokens.domain.chain``)."""
    event.seq = token.audit_seq = 1
    event.digest = token.audit_head = chain.link(
        chain.GENESIS, 1, token.pk, chain.content_digest(event)
    )
    if not _postgresql():
        token.save(force_insert=True)
        TokenTag.objects.bulk_create(
            [TokenTag(token=token, environment_id=token.environment_id, name=tag) for tag in tags]
        )
        event.save()
        return
    token_columns, token_values, token_params = insert_parts(token)
    event_columns, event_values, event_params = insert_parts(event)
    statement = _insert_token_sql(token_columns, token_values, event_columns, event_values)
    with connection.cursor() as cursor:
        cursor.execute(statement, [*token_params, tags, *event_params])
        (event_id,) = cursor.fetchone()
    saved(token)
    saved(event, event_id)


@functools.lru_cache(maxsize=64)  # one per shape: which columns are NULL (``_values``)
def _insert_token_sql(
    token_columns: str, token_values: str, event_columns: str, event_values: str
) -> str:
    return (
        f"WITH token AS (INSERT INTO {Token._meta.db_table} ({token_columns}) "  # noqa: S608 - names are ours
        f"VALUES ({token_values}) RETURNING id, environment_id), "
        f"tags AS (INSERT INTO {TokenTag._meta.db_table} (token_id, environment_id, name) "
        f"SELECT token.id, token.environment_id, tag FROM token, unnest(%s::text[]) AS tag), "
        f"event AS (INSERT INTO {TokenEvent._meta.db_table} ({event_columns}) "
        f"SELECT {event_values} FROM token RETURNING id) "
        f"SELECT id FROM event"
    )


@dataclass(frozen=True)
class Resolved:
    """What a resolving write reports: ``notified`` when it sent the NOTIFY itself, and
    ``listened`` False when it found no enabled webhook endpoint that may want the event, and
    ``messaged`` False when no chat message shows the token (nothing to update in Slack), and
    ``notifies_receiver`` False when it is no AAP request whose instance has a receiver (no
    ``request.resolved`` event to write)."""

    notified: bool
    listened: bool
    messaged: bool = True
    notifies_receiver: bool = True


@functools.lru_cache(maxsize=64)
def _resolve_sql(update_sql: str, event_columns: str, event_values: str) -> str:
    # One entry per kind of resolution (complete, cancel, time out, …): the guard's SQL has its
    # values as parameters, so it repeats; a bounded cache all the same.
    events = TokenEvent._meta.db_table
    endpoints = WebhookEndpoint._meta.db_table
    chat_messages = SlackMessage._meta.db_table
    aap_requests, aap_instances = AapRequest._meta.db_table, AapInstance._meta.db_table
    return (
        f"WITH resolved AS ({update_sql} RETURNING id, environment_id, completed_at, "  # noqa: S608 - names are ours
        f"cancelled_at, decision_expires_at, audit_seq, audit_head), "
        f"event AS (INSERT INTO {events} ({event_columns}, seq, digest) "
        f"SELECT {event_values}, audit_seq, audit_head FROM resolved RETURNING id) "
        f"SELECT r.completed_at, r.cancelled_at, r.decision_expires_at, (SELECT id FROM event), "
        f"pg_notify(%s, r.id), "
        f"EXISTS (SELECT 1 FROM {endpoints} w WHERE w.enabled AND "
        f"w.environment_id = r.environment_id), "
        f"EXISTS (SELECT 1 FROM {chat_messages} m WHERE m.token_id = r.id), "
        f"EXISTS (SELECT 1 FROM {aap_requests} a JOIN {aap_instances} i ON i.id = a.instance_id "
        f"WHERE a.token_id = r.id AND a.event_id IS NULL AND i.deleted_at IS NULL "
        f"AND i.delivery_url <> ''), r.audit_seq, r.audit_head FROM resolved r"
    )


Guard = Callable[[datetime | None], Q]


def resolve(
    token: Token,
    guard: Guard,
    now: datetime | None,
    fields: dict[str, Any],
    event: TokenEvent,
) -> Resolved | None:
    """Apply ``fields`` to ``token`` if it is among the rows ``guard(now)`` admits (the domain's
    guard, e.g. ``deadline.waiting_q``) and write ``event``; None if no row matched (then
    nothing was written).

    On PostgreSQL the conditional UPDATE, its audit event, the NOTIFY, a look for webhook
    endpoints and one for chat messages showing the token are one statement: a completion
    otherwise took five round trips, and the values the database's clock wrote come back with
    it. The UPDATE is not compiled by the ORM on each call (building and compiling the filter
    and the assignments was a quarter of a completion's CPU): its guard and its assignments are
    compiled once per shape (``_guard_sql``, ``_assignments``)."""
    if not _postgresql():
        if not Token.objects.filter(guard(now), pk=token.pk).update(**fields):
            return None
        append_event(event)
        token.refresh_from_db()
        return Resolved(notified=False, listened=True)
    assignments, assignment_params = _assignments(fields)
    where, where_params = _guard_sql(guard, now)
    table = connection.ops.quote_name(Token._meta.db_table)
    # The UPDATE that resolves the token advances its audit chain too (its row lock orders the
    # links); the event takes its place and digest from what it returns.
    update_sql = (
        f"UPDATE {table} SET {assignments}, "  # noqa: S608 - names are ours
        f'"audit_seq" = "audit_seq" + 1, "audit_head" = {_LINK_SQL} '
        f'WHERE ({where}) AND {table}."id" = %s'
    )
    update_params = [
        *assignment_params,
        chain.content_digest(event),
        *where_params,
        token.pk,
    ]
    event_columns, event_values, event_params = _event_parts(event, skip=_CHAIN_FIELDS)
    statement = _resolve_sql(update_sql, event_columns, event_values)
    with connection.cursor() as cursor:
        cursor.execute(statement, [*update_params, *event_params, NOTIFY_CHANNEL])
        row = cursor.fetchone()
    if row is None:
        return None
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(token, name, value)
    token.completed_at, token.cancelled_at, token.decision_expires_at, event_id = row[:4]
    listened, messaged, notifies_receiver = row[5], row[6], row[7]
    event.seq = token.audit_seq = row[8]
    event.digest = token.audit_head = row[9]
    saved(event, event_id)
    return Resolved(
        notified=True,
        listened=bool(listened),
        messaged=bool(messaged),
        notifies_receiver=bool(notifies_receiver),
    )


# The compiled guards, per guard function, for the database's own clock (``now`` None: then a
# guard's SQL and parameters never change; an injected ``now``, as tests do, compiles each time).
_guards: dict[Guard, tuple[str, tuple[Any, ...]]] = {}


def _guard_sql(guard: Guard, now: datetime | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE condition ``guard(now)`` compiles to, on the token table, and its parameters."""
    compiled = _guards.get(guard) if now is None else None
    if compiled is None:
        query = Token.objects.filter(guard(now)).query
        sql, params = query.get_compiler(DEFAULT_DB_ALIAS).compile(query.where)
        compiled = (sql, tuple(params))
        if now is None:
            _guards[guard] = compiled
    return compiled


# A field whose constant value is sent as a parameter, or the fixed parameters of an expression.
_Slot = tuple["Field[Any, Any] | None", tuple[Any, ...]]
_assignment_sql: dict[tuple[tuple[str, Any], ...], tuple[str, tuple[_Slot, ...]]] = {}


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """``"column" = …`` for each of ``fields``, and the parameters, as Django's UPDATE compiler
    writes them: a constant is prepared as ``save()`` would and sent as a parameter (NULL when it
    is None), an expression (``Now()``, ``F("timeout_at")``, …) is compiled. The SQL depends
    only on the shape (which field, which expression, which constant is None), so it is built
    once per shape; only the constants' values are prepared on each call."""
    db = connections[DEFAULT_DB_ALIAS]
    by_name = _token_fields()
    prepared: dict[str, Any] = {}
    shape: list[tuple[str, Any]] = []
    for name, value in fields.items():
        if hasattr(value, "resolve_expression"):
            shape.append((name, value))  # expressions compare (and hash) by what they say
        else:
            prepared[name] = by_name[name].get_db_prep_save(value, db)
            shape.append((name, prepared[name] is None))
    key = tuple(shape)
    compiled = _assignment_sql.get(key)
    if compiled is None:
        compiled = _compile_assignments(fields, prepared)
        if len(_assignment_sql) >= 64:  # bounded: a shape per kind of resolution, in practice
            _assignment_sql.clear()
        _assignment_sql[key] = compiled
    sql, slots = compiled
    params: list[Any] = []
    for field, fixed in slots:
        if field is None:
            params.extend(fixed)
        else:
            params.append(prepared[field.name])
    return sql, params


@functools.cache
def _token_fields() -> dict[str, Field[Any, Any]]:
    return {f.name: f for f in Token._meta.concrete_fields}


def _compile_assignments(
    fields: dict[str, Any], prepared: dict[str, Any]
) -> tuple[str, tuple[_Slot, ...]]:
    """What ``SQLUpdateCompiler.as_sql`` writes for each assignment, with where each parameter
    comes from (a constant's field, or an expression's own fixed parameters)."""
    query = UpdateQuery(Token)
    compiler = query.get_compiler(DEFAULT_DB_ALIAS)
    quote = compiler.quote_name_unless_alias
    by_name = _token_fields()
    parts: list[str] = []
    slots: list[_Slot] = []
    for name, value in fields.items():
        field = by_name[name]
        column = quote(field.column)
        if hasattr(field, "get_placeholder"):
            raise NotImplementedError(f"{name}: a field with its own placeholder")
        if hasattr(value, "resolve_expression"):
            resolved = value.resolve_expression(query, allow_joins=False, for_save=True)
            sql, params = compiler.compile(resolved)
            parts.append(f"{column} = {sql}")
            slots.append((None, tuple(params)))
        elif prepared[name] is None:
            parts.append(f"{column} = NULL")
        else:
            parts.append(f"{column} = %s")
            slots.append((field, ()))
    return ", ".join(parts), tuple(slots)


def expire(
    due: QuerySet[Token], *, skip_locked: bool, fields: dict[str, Any], event: TokenEvent
) -> tuple[list[str], bool]:
    """Apply ``fields`` to the rows ``due`` selects (the domain's sliced, ordered queryset of
    overdue ids), locking them (``skip_locked``: the sweep's way, so several sweepers split
    the work), in one statement; the ids, and whether the events were written too (on
    PostgreSQL one copy of ``event`` per row, in the same statement). The outer
    ``status = 'WAITING'`` keeps a completion that won a row from being overwritten."""
    if connection.features.has_select_for_update:
        skip = skip_locked and connection.features.has_select_for_update_skip_locked
        due = due.select_for_update(skip_locked=skip)
    due_sql, due_params = _compiled(due.values("id"))
    table = Token._meta.db_table
    # Each value is a constant, or F("column") for another column of the same row.
    by_name = {f.name: f for f in Token._meta.concrete_fields}
    assignments = ", ".join(
        f'"{by_name[name].column}" = '
        + (f'"{by_name[value.name].column}"' if isinstance(value, F) else "%s")  # type: ignore[attr-defined]
        for name, value in fields.items()
    )
    values = [
        by_name[name].get_db_prep_save(value, connection)
        for name, value in fields.items()
        if not isinstance(value, F)
    ]
    if _postgresql():
        # Each row's audit chain advances with its transition (as in ``resolve``).
        assignments += f', "audit_seq" = "audit_seq" + 1, "audit_head" = {_LINK_SQL}'
        values.append(chain.content_digest(event))
    # MATERIALIZED: as a plain IN (subquery), PostgreSQL may run the LIMIT more than once and
    # update more rows than the batch (seen in tests); a materialized CTE runs it once.
    update = (
        f"UPDATE {table} SET {assignments} "  # noqa: S608 - names are ours
        f"WHERE status = %s AND id IN (SELECT id FROM due) RETURNING id, audit_seq, audit_head"
    )
    params: list[Any] = [*due_params, *values, Token.Status.WAITING.value]
    statement = f"WITH due AS MATERIALIZED ({due_sql}) "
    if _postgresql():
        # The audit rows in the same statement: one round trip per batch, no Python objects.
        columns, placeholders, event_params = _event_columns(event)
        statement += (
            f", expired AS ({update}) INSERT INTO {TokenEvent._meta.db_table} "  # noqa: S608
            f"(token_id, seq, digest, {columns}) "
            f"SELECT id, audit_seq, audit_head, {placeholders} FROM expired RETURNING token_id"
        )
        params += event_params
    else:
        statement += update
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return [row[0] for row in cursor.fetchall()], _postgresql()


def _event_columns(event: TokenEvent) -> tuple[str, str, list[Any]]:
    """``insert_parts`` of ``event`` without its token (each expired row names its own) and its
    place in the chain (each row's own)."""
    return _event_parts(event, skip=("token_id", *_CHAIN_FIELDS))


_CHAIN_FIELDS = ("seq", "digest")


def _event_parts(event: TokenEvent, *, skip: tuple[str, ...]) -> tuple[str, str, list[Any]]:
    """``insert_parts`` of ``event`` without its primary key and the fields in ``skip``."""
    template = _insert_template(TokenEvent, with_pk=False, without=skip)
    placeholders, params = _values(template, event)
    return template.columns, placeholders, params


# ------------------------------------------------------------------------------------------------
# The audit chain (tokens.domain.chain): every event advances its token's head
# ------------------------------------------------------------------------------------------------

# ``chain.link`` in SQL, for the row being updated: the new head from the old one.
_LINK_SQL = (
    "encode(sha256(convert_to(\"audit_head\" || '|' || (\"audit_seq\" + 1)::text || '|' || "
    "\"id\" || '|' || %s::text, 'UTF8')), 'hex')"
)


def append_event(event: TokenEvent) -> None:
    """Write ``event`` as the next link of its token's chain (``tokens.domain.chain``).

    The UPDATE of the token's head takes its row lock, so concurrent writers to one token queue
    there and each links to the head the previous one committed (in READ COMMITTED an UPDATE
    re-reads a row it waited for). On PostgreSQL the head and the event are one statement."""
    if event.token_id is None:
        raise ValueError("an audit event needs its token")
    if not _postgresql():
        with transaction.atomic():
            heads = Token.objects.filter(pk=event.token_id)
            if not heads.update(audit_seq=F("audit_seq") + 1):  # the row lock first
                raise Token.DoesNotExist(event.token_id)
            seq, head = heads.values_list("audit_seq", "audit_head").get()
            event.seq = seq
            event.digest = chain.link(head, seq, event.token_id, chain.content_digest(event))
            heads.update(audit_head=event.digest)
            event.save(force_insert=True)
    else:
        columns, values, params = _event_parts(event, skip=_CHAIN_FIELDS)
        statement = (
            f"WITH head AS (UPDATE {Token._meta.db_table} SET "  # noqa: S608 - names are ours
            f'"audit_seq" = "audit_seq" + 1, "audit_head" = {_LINK_SQL} '
            f'WHERE "id" = %s RETURNING "audit_seq", "audit_head") '
            f"INSERT INTO {TokenEvent._meta.db_table} ({columns}, seq, digest) "
            f"SELECT {values}, head.audit_seq, head.audit_head FROM head RETURNING id, seq, digest"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [chain.content_digest(event), event.token_id, *params])
            row = cursor.fetchone()
        if row is None:
            raise Token.DoesNotExist(event.token_id)
        event_id, event.seq, event.digest = row
        saved(event, event_id)
    if TokenEvent.token.is_cached(event):  # keep the caller's token in step with its head
        event.token.audit_seq, event.token.audit_head = event.seq, event.digest


def notify(token_ids: list[str]) -> None:
    """``NOTIFY waitpoint_resolved, 'id,id,…'``, chunked; PostgreSQL delivers it on commit.
    Nothing on SQLite, which has no NOTIFY (its waiters poll)."""
    if not _postgresql() or not token_ids:
        return
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for token_id in token_ids:
        if current and size + len(token_id) + 1 > NOTIFY_PAYLOAD_LIMIT:
            chunks.append(",".join(current))
            current, size = [], 0
        current.append(token_id)
        size += len(token_id) + 1
    chunks.append(",".join(current))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, chunk) FROM unnest(%s::text[]) AS chunk",
            [NOTIFY_CHANNEL, chunks],
        )


def relax_durability() -> None:
    """For the sweep's transactions only: commit without waiting for the WAL flush.

    Safe because a sweep is re-derivable: if PostgreSQL crashed and lost its last commits, those
    tokens would be WAITING past their deadline again, which every reader already reports as
    TIMED_OUT (``domain.deadline.effective``), and the next sweep persists them, with their
    audit events and announcements, which were part of the same lost transactions. It saves a
    disk flush per batch when a burst of tokens falls due.
    """
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


# An arbitrary constant key ("wait" in ASCII) for the outbox's claim lock.
OUTBOX_CLAIM_LOCK = 0x77616974


def lock_outbox_claims() -> None:
    """Serialise outbox claims (``delivery.outbox.claim``) until the caller's transaction ends,
    so that per-endpoint and per-tenant caps hold across delivery processes. PostgreSQL: a
    transaction-scoped advisory lock (a claim holds it for a few milliseconds). SQLite: nothing
    to do, its IMMEDIATE transactions already serialise writers."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [OUTBOX_CLAIM_LOCK])
