"""The statements written in SQL on PostgreSQL (tokens/sql.py) read and write exactly what the
ORM code beside them, which SQLite still runs, reads and writes."""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.db.models import Model
from django.db.models.functions import Now

from tokens.domain import actors, keys, lifecycle, tenancy
from tokens.domain.exceptions import NotFound
from tokens.models import ApiKey, Token, TokenEvent, TokenTag
from tokens.persistence import fast_paths, selectors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql_only():
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL (bin/test)"


def _fields(instance: Model) -> dict[str, object]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_the_key_lookup_matches_the_orm(environment):
    api_key, secret = tenancy.api_key_create(environment=environment, name="sql")
    tenancy.api_key_touch(api_key=api_key)
    found = selectors.api_key_get_by_secret(secret=secret)
    expected = ApiKey.objects.select_related("environment__project").get(pk=api_key.pk)
    assert found is not None
    assert _fields(found) == _fields(expected)
    assert _fields(found.environment) == _fields(expected.environment)
    assert _fields(found.environment.project) == _fields(expected.environment.project)
    assert found.last_used_at is not None and found.last_used_at.tzinfo is not None


def test_the_key_lookup_refuses_revoked_and_unknown_keys(environment):
    api_key, secret = tenancy.api_key_create(environment=environment, name="gone")
    tenancy.api_key_revoke(api_key=api_key)
    assert selectors.api_key_get_by_secret(secret=secret) is None
    assert selectors.api_key_get_by_secret(secret="tr_dev_" + "0" * 40) is None


def test_the_token_lookup_matches_the_orm(environment, make_token):
    token = make_token(
        tags=["refund", "eu"],
        title="Refund 3,400 EUR",
        context={"order": {"id": 7, "lines": [1, 2]}},
        approvers=["alice@example.com"],
        timeout="1h",
    )
    found = selectors.token_get_for_environment(environment=environment, token_id=token.friendly_id)
    expected = Token.objects.annotate(db_now=Now()).get(pk=token.pk)
    assert _fields(found) == _fields(expected)
    assert found.tags == ["refund", "eu"] and found.approvers == ["alice@example.com"]
    assert found.db_now.tzinfo is not None  # type: ignore[attr-defined]
    assert found.environment is environment
    # The bare id works too, as on the ORM path.
    bare = token.friendly_id.removeprefix(keys.FRIENDLY_PREFIX)
    again = selectors.token_get_for_environment(environment=environment, token_id=bare)
    assert again.pk == token.pk


def test_the_token_lookup_stays_in_its_environment(environment, other_environment, make_token):
    token = make_token()
    for token_id in (token.friendly_id, "waitpoint_nope", "not an id", ""):
        with pytest.raises(NotFound):
            selectors.token_get_for_environment(environment=other_environment, token_id=token_id)


def test_a_creation_writes_the_token_its_tags_and_its_event(environment, api_client):
    response = api_client.post(
        "/api/v1/waitpoints/tokens",
        {"timeout": "1h", "tags": ["refund", "eu"], "title": "Refund"},
        format="json",
        REMOTE_ADDR="203.0.113.5",
        HTTP_USER_AGENT="sql-test",
    )
    assert response.status_code == 200
    token = selectors.token_get_for_environment(
        environment=environment, token_id=response.json()["id"]
    )
    assert (token.status, token.tags, token.title) == ("WAITING", ["refund", "eu"], "Refund")
    rows = TokenTag.objects.filter(token=token).order_by("name")
    assert [(r.name, r.environment_id) for r in rows] == [
        ("eu", environment.pk),
        ("refund", environment.pk),
    ]
    [event] = TokenEvent.objects.filter(token=token)
    assert (event.kind, event.ip, event.user_agent) == (
        TokenEvent.Kind.CREATED,
        "203.0.113.5",
        "sql-test",
    )
    assert event.api_key is not None and event.api_key.environment_id == environment.pk
    assert event.detail == {} and event.created_at == token.created_at


def test_a_resolution_writes_its_event_and_only_once(environment, make_token):
    token = make_token()
    first = lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"a": 1})
    second = lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"a": 2})
    assert (first.applied, second.applied) == (True, False)
    stored = Token.objects.get(pk=token.pk)
    assert stored.output == '{"json":{"a":1}}' and stored.completed_at == token.completed_at
    events = TokenEvent.objects.filter(token=token).order_by("id")
    assert list(events.values_list("kind", flat=True)) == [
        TokenEvent.Kind.CREATED,
        TokenEvent.Kind.COMPLETED,
        TokenEvent.Kind.COMPLETE_IGNORED,
    ]
    assert first.resolution is not None
    assert TokenEvent.objects.get(pk=first.resolution.pk).kind == TokenEvent.Kind.COMPLETED


def _statements_of(action) -> list[tuple[str, int]]:
    """``(sql, number of parameters)`` of each statement ``action`` sends."""
    seen: list[tuple[str, int]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        action()
    return seen


def test_the_hot_statements_fit_psycopgs_conversion_cache(environment, api_client, make_token):
    """psycopg converts a statement's placeholders with a regular expression over its whole
    text, and remembers the result only for statements within these limits: past them a
    create spent a tenth of its CPU there (docs/benchmarks/profile.md, fourth pass)."""
    from psycopg import _queries  # the limits are psycopg's own, checked here on each upgrade

    limit_params = _queries.MAX_CACHED_STATEMENT_PARAMS
    limit_length = _queries.MAX_CACHED_STATEMENT_LENGTH
    token = make_token()
    statements = _statements_of(
        lambda: api_client.post(
            "/api/v1/waitpoints/tokens",
            {"timeout": "1h", "tags": ["a"], "idempotencyKey": "k", "title": "T"},
            format="json",
        )
    )
    statements += _statements_of(
        lambda: api_client.post(
            f"/api/v1/waitpoints/tokens/{token.friendly_id}/complete",
            {"data": {"ok": True}},
            format="json",
        )
    )
    hot = [(sql, n) for sql, n in statements if sql.startswith("WITH")]
    assert len(hot) == 2  # the creation and the resolution
    for sql, params in hot:
        assert params <= limit_params, (params, sql[:120])
        assert len(sql.encode()) <= limit_length, (len(sql), sql[:120])


def test_resolutions_of_each_shape_write_their_own_values(environment, make_token):
    """The resolving UPDATE is compiled once per shape (fast_paths._assignments): each later
    resolution of the same shape still writes its own values, and one whose expression differs
    (another approval window) gets its own SQL, not a remembered one."""
    from datetime import timedelta

    tokens = [make_token(timeout="1h") for _ in range(4)]
    windows = [timedelta(minutes=5), timedelta(minutes=5), timedelta(hours=2), None]
    for token, window in zip(tokens, windows, strict=True):
        Token.objects.filter(pk=token.pk).update(decision_valid_for=window)
    outputs = [{"status": "approved", "n": n} for n in range(4)]
    for token, output in zip(tokens, outputs, strict=True):
        result = lifecycle.token_complete(
            token=Token.objects.get(pk=token.pk), actor=actors.Actor.system(), data=output
        )
        assert result.applied
    cancelled = make_token(timeout="1h")
    lifecycle.token_cancel(token=cancelled, actor=actors.Actor.system(), reason="no")
    for token, window, output in zip(tokens, windows, outputs, strict=True):
        stored = Token.objects.get(pk=token.pk)
        assert stored.output == f'{{"json":{{"status":"approved","n":{output["n"]}}}}}'
        assert stored.decision == "approved" and stored.status == Token.Status.COMPLETED
        expected = stored.completed_at + window if window else None
        assert stored.decision_expires_at == expected
        assert stored.audit_seq == 2  # created, completed: the chain advanced once
    stored = Token.objects.get(pk=cancelled.pk)
    assert (stored.status, stored.cancel_reason) == (Token.Status.CANCELLED, "no")
    assert stored.cancelled_at is not None and stored.cancelled_at == stored.completed_at


SAMPLES = {str: ["", "abc", "ünïcode ✓"], bool: [True, False]}


@pytest.mark.parametrize("model", [Token, TokenEvent, TokenTag])
def test_values_sent_unprepared_are_those_their_field_would_send(model):
    # fast_paths._values sends a str or bool of these fields without preparing it: hold
    # that to what preparing does, field by field, on this database.
    db = connections["default"]
    checked = 0
    for field in model._meta.concrete_fields:
        for kind in fast_paths._unchanged_types(field):
            for value in SAMPLES[kind]:
                prepared = field.get_db_prep_save(value, db)
                assert type(prepared) is kind and prepared == value, (field, value)
                checked += 1
    assert checked > 0
