"""The AAP provider's hot reads, each next to its ORM twin (as ``fast_paths``' are).

An AAP create cost about 8 ms of CPU in process against a v1 create's 1 ms, in 11 statements:
the profile (docs/benchmarks/profile.md, AAP section) put half of it in Django compiling the
same handful of queries on every call — the credential look-up, the instance's row lock and
then its environment, the idempotency look-up, the policy, the last-use stamp and the answer's
read of the request with its token. On PostgreSQL each is one statement written once per
process from the models' own columns; SQLite (the embedded default) runs the ORM twin, and
``tests/persistence/test_aap_paths.py`` checks that both give the same instances.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models.functions import Now

from tokens.models import AapInstance, AapPolicy, AapRequest, Environment, Token
from tokens.persistence.fast_paths import (
    from_row,
    select_columns,
    with_environment,
    with_environment_sql,
)

_INSTANCES = AapInstance._meta.db_table
_ENVIRONMENTS = Environment._meta.db_table


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def _row(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


@functools.cache
def _instance_by_credential_sql() -> str:
    return with_environment_sql(
        AapInstance, "t.credential_digest = %s AND t.credential_revoked_at IS NULL"
    )


def instance_by_credential(digest: str) -> AapInstance | None:
    """The instance whose unrevoked credential has this digest, its environment and project
    loaded; None otherwise."""
    if not _postgresql():
        return (
            AapInstance.objects.select_related("environment__project")
            .filter(credential_digest=digest, credential_revoked_at__isnull=True)
            .first()
        )
    row = _row(_instance_by_credential_sql(), [digest])
    return None if row is None else with_environment(AapInstance, row)


@functools.cache
def _instance_locked_sql() -> str:
    return (
        f"SELECT {select_columns(AapInstance, 'i')}, {select_columns(Environment, 'e')} "  # noqa: S608
        f"FROM {_INSTANCES} i JOIN {_ENVIRONMENTS} e ON e.id = i.environment_id "
        "WHERE i.id = %s AND i.deleted_at IS NULL AND i.credential_revoked_at IS NULL "
        "FOR UPDATE OF i"
    )


def instance_locked(pk: uuid.UUID) -> AapInstance | None:
    """The live instance ``pk`` (not deleted, credential not revoked), its row locked until the
    transaction ends and its environment loaded; None otherwise. Call inside a transaction."""
    if not _postgresql():
        instance = (
            AapInstance.objects.select_for_update()
            .filter(pk=pk, deleted_at__isnull=True, credential_revoked_at__isnull=True)
            .first()
        )
        if instance is not None:
            instance.environment  # noqa: B018 - loaded here as the PostgreSQL path loads it
        return instance
    row = _row(_instance_locked_sql(), [pk])
    if row is None:
        return None
    instance, rest = from_row(AapInstance, row)
    instance.environment, _ = from_row(Environment, rest)
    return instance


def instance_touch(pk: uuid.UUID, moment: datetime) -> None:
    """Record the instance's last use."""
    if not _postgresql():
        AapInstance.objects.filter(pk=pk).update(last_used_at=moment)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_INSTANCES} SET last_used_at = %s WHERE id = %s",  # noqa: S608
            [moment, pk],
        )


@functools.cache
def _request_by_key_sql() -> str:
    return (
        f"SELECT {select_columns(AapRequest, 'r')} FROM {AapRequest._meta.db_table} r "  # noqa: S608
        "WHERE r.instance_id = %s AND r.key_digest = %s"  # unique together: one row at most
    )


def request_by_key(instance_id: uuid.UUID, key_digest: str) -> AapRequest | None:
    """The instance's request made with this idempotency key, if any."""
    if not _postgresql():
        return AapRequest.objects.filter(instance_id=instance_id, key_digest=key_digest).first()
    row = _row(_request_by_key_sql(), [instance_id, key_digest])
    return None if row is None else from_row(AapRequest, row)[0]


@functools.cache
def _policy_sql() -> str:
    return (
        f"SELECT {select_columns(AapPolicy, 'p')} FROM {AapPolicy._meta.db_table} p "  # noqa: S608
        "WHERE p.environment_id = %s"  # one policy an environment at most
    )


def policy_of(environment_id: int) -> AapPolicy | None:
    """The environment's AAP policy, if it has one."""
    if not _postgresql():
        return AapPolicy.objects.filter(environment_id=environment_id).first()
    row = _row(_policy_sql(), [environment_id])
    return None if row is None else from_row(AapPolicy, row)[0]


@functools.cache
def _request_with_token_sql() -> str:
    # STATEMENT_TIMESTAMP() is what Now() compiles to on PostgreSQL.
    return (
        f"SELECT {select_columns(AapRequest, 'r')}, {select_columns(Token, 't')}, "  # noqa: S608
        f"STATEMENT_TIMESTAMP() FROM {AapRequest._meta.db_table} r "
        f"JOIN {Token._meta.db_table} t ON t.id = r.token_id "
        "WHERE r.id = %s AND r.instance_id = %s"
    )


def request_with_token(pk: uuid.UUID, instance_id: uuid.UUID) -> AapRequest | None:
    """The instance's request ``pk`` with its token loaded, both carrying ``db_now`` (the
    database's clock when read); None when the instance has no such request."""
    if not _postgresql():
        read = (
            AapRequest.objects.select_related("token")
            .annotate(db_now=Now())
            .filter(pk=pk, instance_id=instance_id)
            .first()
        )
        if read is not None:
            vars(read.token)["db_now"] = read.db_now
        return read
    row = _row(_request_with_token_sql(), [pk, instance_id])
    if row is None:
        return None
    request, rest = from_row(AapRequest, row)
    token, (db_now,) = from_row(Token, rest)
    vars(token)["db_now"] = vars(request)["db_now"] = db_now
    request.token = token
    return request
