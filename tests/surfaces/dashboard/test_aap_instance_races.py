"""A rename on the dashboard racing the instance's deletion, on real PostgreSQL connections
through the full HTTP stack: the rename lands before the deletion or answers 404; it never
renames a deleted instance, and nothing answers 500."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.domain.test_races import run_together
from tests.surfaces.dashboard.conftest import member
from tokens.domain.aap import instances
from tokens.domain.aap.errors import AapError
from tokens.models import AapInstance, Membership

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "/projects/alice/dev/aap"


def test_a_rename_racing_deletion_never_renames_a_deleted_instance(environment) -> None:
    admin = member(environment, "adam", Membership.Role.ADMIN)
    for _round in range(12):
        instance, _ = instances.instance_create_for_environment(environment=environment, name="a")

        def post(action: str, data: dict[str, str], pk=instance.pk) -> int:
            client = Client()  # one per thread: its own session and connection
            client.force_login(admin)
            return client.post(f"{PAGE}/instances/{pk}/{action}", data).status_code

        renamed, deleted = run_together(
            [lambda: post("rename", {"name": "b"}), lambda: post("delete", {})]
        )
        assert deleted == 302 and renamed in (302, 404)
        row = AapInstance.objects.get(pk=instance.pk)
        assert row.deleted_at is not None and row.credential_revoked_at is not None
        # Renamed only if the rename came first: the deletion is always the last change.
        assert row.name == ("b" if renamed == 302 else "a")
        assert row.updated_at == row.deleted_at


def test_the_domain_refuses_to_rename_an_instance_deleted_meanwhile(environment) -> None:
    instance, _ = instances.instance_create_for_environment(environment=environment, name="a")
    stale = AapInstance.objects.get(pk=instance.pk)  # read before the deletion
    instances.instance_retire(instance=instance)
    with pytest.raises(AapError) as refused:
        instances.instance_rename(instance=stale, name="b")
    assert refused.value.http_status == 404 and refused.value.code == "not_found"
    assert AapInstance.objects.get(pk=instance.pk).name == "a"
