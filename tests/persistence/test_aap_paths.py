"""The AAP reads written in SQL on PostgreSQL (tokens/persistence/aap_paths.py) give exactly
the instances the ORM queries beside them, which SQLite still runs, give."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, connections, transaction
from django.db.models import Model
from django.db.models.functions import Now

from tokens.domain import actors
from tokens.domain.aap import credentials, instances, policies
from tokens.domain.aap import requests as aap_requests
from tokens.domain.keys import key_digest
from tokens.models import AapInstance, AapPolicy, AapRequest, TokenEvent
from tokens.persistence import aap_paths


@pytest.fixture(autouse=True)
def _postgresql_only():
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL (bin/test)"


def _fields(instance: Model) -> dict[str, object]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _instance(environment, name="paths") -> tuple[AapInstance, str]:
    return instances.instance_create_for_environment(environment=environment, name=name)


def _created(instance: AapInstance, key: str = "k1") -> AapRequest:
    request, new = aap_requests.request_create(
        instance=instance,
        key=key,
        body={
            "tool": "send_email",
            "server": "mail",
            "arguments": {"to": "c@example.com", "n": 4000, "nested": {"é": [1, 2]}},
            "timeout": "10m",
            "agent_reasoning": "announce",
            "context": {"call_id": "c1"},
        },
        actor=actors.Actor(channel=TokenEvent.Channel.AAP),
    )
    assert new
    return request


@pytest.mark.django_db
def test_the_credential_lookup_matches_the_orm(environment):
    instance, secret = _instance(environment)
    found = aap_paths.instance_by_credential(key_digest(secret))
    expected = AapInstance.objects.select_related("environment__project").get(pk=instance.pk)
    assert found is not None
    assert _fields(found) == _fields(expected)
    assert _fields(found.environment) == _fields(expected.environment)
    assert _fields(found.environment.project) == _fields(expected.environment.project)
    assert credentials.authenticate(f"Bearer {secret}").instance == expected


@pytest.mark.django_db
def test_the_credential_lookup_refuses_revoked_and_unknown_credentials(environment):
    instance, secret = _instance(environment)
    unknown = credentials.CREDENTIAL_PREFIX + "0" * 40
    assert aap_paths.instance_by_credential(key_digest(unknown)) is None
    AapInstance.objects.filter(pk=instance.pk).update(credential_revoked_at=Now())
    assert aap_paths.instance_by_credential(key_digest(secret)) is None


@pytest.mark.django_db
def test_the_locked_instance_matches_the_orm_and_only_live_ones_are_found(environment):
    instance, _secret = _instance(environment)
    with transaction.atomic():
        locked = aap_paths.instance_locked(instance.pk)
    expected = AapInstance.objects.select_related("environment").get(pk=instance.pk)
    assert locked is not None
    assert _fields(locked) == _fields(expected)
    assert _fields(locked.environment) == _fields(expected.environment)
    assert aap_paths.instance_locked(uuid.uuid4()) is None
    AapInstance.objects.filter(pk=instance.pk).update(deleted_at=Now(), credential_revoked_at=Now())
    assert aap_paths.instance_locked(instance.pk) is None


@pytest.mark.django_db(transaction=True)
def test_the_locked_instance_holds_its_row_until_the_transaction_ends(environment):
    """A second connection's lock of the same instance waits for the first to commit: deleting
    an instance can never race a creation."""
    instance, _secret = _instance(environment)
    locked_by_other = threading.Event()

    def other() -> None:
        try:
            with transaction.atomic():
                aap_paths.instance_locked(instance.pk)
                locked_by_other.set()
        finally:
            connections.close_all()

    with transaction.atomic():
        assert aap_paths.instance_locked(instance.pk) is not None
        thread = threading.Thread(target=other)
        thread.start()
        # The other connection cannot take the lock while this transaction holds it.
        assert not locked_by_other.wait(0.5)
    assert locked_by_other.wait(10)
    thread.join(10)


@pytest.mark.django_db
def test_the_request_reads_match_the_orm(environment):
    instance, _secret = _instance(environment)
    created = _created(instance)
    found = aap_paths.request_with_token(created.pk, instance.pk)
    expected = AapRequest.objects.select_related("token").get(pk=created.pk)
    assert found is not None
    assert _fields(found) == _fields(expected)
    assert _fields(found.token) == _fields(expected.token)
    assert found.token.tags == expected.token.tags and found.token.tags  # JSON decoded
    assert found.db_now.tzinfo is not None  # type: ignore[attr-defined]
    assert found.token.db_now == found.db_now  # type: ignore[attr-defined]
    by_key = aap_paths.request_by_key(instance.pk, created.key_digest)
    assert by_key is not None and _fields(by_key) == _fields(expected)


@pytest.mark.django_db
def test_the_request_reads_stay_with_their_instance(environment):
    instance, _secret = _instance(environment)
    other, _ = _instance(environment, name="other")
    created = _created(instance)
    assert aap_paths.request_with_token(created.pk, other.pk) is None
    assert aap_paths.request_by_key(other.pk, created.key_digest) is None
    assert aap_paths.request_with_token(uuid.uuid4(), instance.pk) is None


@pytest.mark.django_db
def test_the_policy_read_matches_the_orm(environment, other_environment):
    assert aap_paths.policy_of(environment.pk) is None
    policies.window_set(environment=environment, value="45m")
    found = aap_paths.policy_of(environment.pk)
    expected = AapPolicy.objects.get(environment=environment)
    assert found is not None and _fields(found) == _fields(expected)
    assert found.approval_valid_for is not None and found.approval_valid_for.total_seconds() == 2700
    assert aap_paths.policy_of(other_environment.pk) is None


@pytest.mark.django_db
def test_a_create_touches_its_instance(environment):
    instance, _secret = _instance(environment)
    assert AapInstance.objects.get(pk=instance.pk).last_used_at is None
    created = _created(instance)
    assert AapInstance.objects.get(pk=instance.pk).last_used_at == created.created_at
