"""The dashboard's Agent approvals page: admins create and revoke provisioner tokens (shown
once) and delete instances; nobody else sees it."""

from __future__ import annotations

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post
from tokens.domain import actors, keys
from tokens.domain.aap import instances
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapInstance, AapProvisioner, Token

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/aap"


def test_only_admins_see_or_change_it(viewer, approver, outsider, admin_member):
    for user in (viewer, approver, outsider):
        client = client_for(user)
        assert client.get(PAGE).status_code == 404
        assert csrf_post(client, f"{PAGE}/provisioners", {"name": "ci"}).status_code == 404
    assert not AapProvisioner.objects.exists()
    assert client_for(None).get(PAGE).status_code == 302  # to the login page


def test_a_provisioner_token_is_shown_once_then_revoked(admin_member, environment):
    client = client_for(admin_member)
    created = csrf_post(client, f"{PAGE}/provisioners", {"name": "ci"})
    assert created.status_code == 200
    row = AapProvisioner.objects.get(environment=environment)
    html = created.content.decode()
    secret = html.split('id="aap-secret-value" class="code" type="text" readonly value="')[1]
    secret = secret.split('"')[0]
    assert secret.startswith("aapp_") and keys.key_digest(secret) == row.digest
    assert secret not in client.get(PAGE).content.decode()  # never again
    assert row.prefix in client.get(PAGE).content.decode()
    revoked = csrf_post(client, f"{PAGE}/provisioners/{row.pk}/revoke", {})
    assert revoked.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_deleting_an_instance_retires_it_and_cancels_its_requests(admin_member, environment):
    instance, _secret = instances.instance_create_for_environment(environment=environment, name="a")
    request, _ = aap_requests.request_create(
        instance=instance,
        key="k1",
        body={"tool": "refund", "arguments": {}, "timeout": "1h"},
        actor=actors.Actor.system(),
    )
    client = client_for(admin_member)
    assert "refund" not in client.get(PAGE).content.decode()
    assert f"{instance.credential_prefix}" in client.get(PAGE).content.decode()
    response = csrf_post(client, f"{PAGE}/instances/{instance.pk}/delete", {})
    assert response.status_code == 302
    assert AapInstance.objects.get(pk=instance.pk).deleted_at is not None
    assert Token.objects.get(pk=request.token_id).status == Token.Status.CANCELLED
    assert instance.credential_prefix not in client.get(PAGE).content.decode()


def test_the_token_list_links_admins_to_the_page(admin_member, approver):
    assert (
        f'href="{PAGE}"'.encode()
        in client_for(admin_member).get("/projects/alice/dev/tokens").content
    )
    assert b"/aap" not in client_for(approver).get("/projects/alice/dev/tokens").content
