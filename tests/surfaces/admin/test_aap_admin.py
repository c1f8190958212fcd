"""Support staff and scripts manage AAP provisioner tokens and instances; secrets shown once."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tokens.domain import actors
from tokens.domain.aap import credentials, instances
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapInstance, AapProvisioner, Token

pytestmark = pytest.mark.django_db

BODY = {"tool": "deploy", "arguments": {"service": "api"}, "timeout": "30m"}


@pytest.fixture
def support(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    client = Client()
    client.force_login(user)
    return client


def test_the_command_prints_a_working_provisioner_token_last(environment) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "create_aap_provisioner", "--project", "alice", "--env", "dev", stdout=out, stderr=err
    )
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("aapp_") and token not in err.getvalue()
    row = AapProvisioner.objects.get()
    assert row.environment == environment and token not in row.digest
    response = Client().post(
        "/api/aap/v1/instances",
        data=json.dumps({"instance_name": "from-a-script"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 201, response.content
    assert AapInstance.objects.get().environment == environment


def test_the_command_refuses_an_unknown_project(db) -> None:
    with pytest.raises(CommandError, match="--create-project"):
        call_command(
            "create_aap_provisioner", "--project", "nope", "--env", "dev", stdout=StringIO()
        )
    assert not AapProvisioner.objects.exists()


def test_support_creates_a_provisioner_token_shown_once_and_revokes_it(
    support, environment
) -> None:
    page = support.post(
        "/admin/tokens/aapprovisioner/add/", {"environment": environment.pk, "name": "platform"}
    )
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    row = AapProvisioner.objects.get()
    token = next(w for w in page.content.decode().split('"') if w.startswith("aapp_"))
    assert credentials.authenticate(f"Bearer {token}").provisioner == row
    listing = support.get("/admin/tokens/aapprovisioner/").content.decode()
    assert token not in listing and f"{row.prefix}…" in listing
    support.post(
        "/admin/tokens/aapprovisioner/",
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_support_deletes_an_instance_as_the_protocol_does(support, environment) -> None:
    instance, secret = instances.instance_create_for_environment(environment=environment, name="x")
    request, _new = aap_requests.request_create(
        instance=instance, key="k", body=BODY, actor=actors.Actor.system()
    )
    for path in (
        "/admin/tokens/aapinstance/",
        f"/admin/tokens/aapinstance/{instance.pk}/change/",
        "/admin/tokens/aaprequest/",
        f"/admin/tokens/aaprequest/{request.pk}/change/",
    ):
        page = support.get(path)
        assert page.status_code == 200, path
        assert secret not in page.content.decode()
    support.post(
        "/admin/tokens/aapinstance/",
        {"action": "delete_instances", "_selected_action": [instance.pk]},
    )
    instance.refresh_from_db()
    assert instance.deleted_at is not None and instance.credential_revoked_at is not None
    assert Token.objects.get().status == Token.Status.CANCELLED
    with pytest.raises(Exception, match="invalid"):
        credentials.authenticate(f"Bearer {secret}")


def test_support_creates_an_instance_credential_shown_once(support, environment) -> None:
    page = support.post(
        "/admin/tokens/aapinstance/add/", {"environment": environment.pk, "name": "ci"}
    )
    assert page.status_code == 200
    secret = next(w for w in page.content.decode().split('"') if w.startswith("aapi_"))
    assert credentials.authenticate(f"Bearer {secret}").instance == AapInstance.objects.get()


@pytest.mark.parametrize(
    ("path", "fields", "label", "prefix"),
    [
        ("/admin/tokens/aapprovisioner/add/", {"name": "p"}, "AAP provisioner token", "aapp_"),
        ("/admin/tokens/aapinstance/add/", {"name": "i"}, "AAP instance credential", "aapi_"),
        ("/admin/tokens/apikey/add/", {"name": "k"}, "Secret key", "tr_dev_"),
    ],
)
def test_every_new_secret_is_shown_once_on_the_same_page(
    support, environment, path, fields, label, prefix
) -> None:
    page = support.post(path, {"environment": environment.pk, **fields})
    html = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert f'<label for="secret">{label}</label>' in html
    assert f'id="secret" type="text" value="{prefix}' in html and "readonly" in html
    assert "It is shown only this once" in html and "admin-extras/secret.css" in html
    changelist = path.removesuffix("add/")
    assert f'<a class="button" href="{changelist}">Done: I have copied' in html
    assert f'&rsaquo; <a href="{changelist}">' in html  # the breadcrumbs back to the list


def test_the_revoke_and_delete_actions_say_what_they_did_and_what_already_was(
    support, environment
) -> None:
    provisioner, _token = credentials.provisioner_create(environment=environment, name="p")
    instance, _secret = instances.instance_create_for_environment(environment=environment, name="i")
    for path, action, pk, first, again in (
        (
            "/admin/tokens/aapprovisioner/",
            "revoke",
            provisioner.pk,
            "Revoked 1 provisioner token.",
            "Revoked 0 provisioner tokens. 1 provisioner token already revoked.",
        ),
        (
            "/admin/tokens/aapinstance/",
            "delete_instances",
            instance.pk,
            "Deleted 1 instance.",
            "Deleted 0 instances. 1 instance already deleted.",
        ),
    ):
        said = []
        for _ in range(2):
            page = support.post(path, {"action": action, "_selected_action": [pk]}, follow=True)
            said.append([(m.level_tag, str(m)) for m in page.context["messages"]])
        assert said == [[("success", first)], [("warning", again)]]
