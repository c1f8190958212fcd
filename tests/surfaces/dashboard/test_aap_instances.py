"""The dashboard's Agent approvals page creates and renames instances by the protocol's name
rule: the credential shown once with the next steps, every refusal under its field with
nothing saved, admins only, this environment's instances only."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post, messages_of
from tokens.domain import keys
from tokens.domain.aap import instances
from tokens.models import AapInstance, AapProvisioner

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/aap"


def shown_credential(response) -> str:
    """The credential the answer page shows (in its copy field), unescaped."""
    match = re.search(
        r'id="aap-credential-value" class="code" type="text" readonly value="([^"]*)"',
        response.content.decode(),
    )
    assert match, "no credential on the page"
    return html.unescape(match.group(1))


def error_under(response, field_id: str) -> str:
    """The error linked to the field (aria-describedby), as the page shows it."""
    page = response.content.decode()
    assert re.search(
        rf'id="{field_id}"[^>]*aria-invalid="true" aria-describedby="{field_id}-error"', page
    ), f"{field_id} is not marked invalid"
    match = re.search(rf'<p class="error" id="{field_id}-error" role="alert">([^<]*)</p>', page)
    assert match, f"no error for {field_id}"
    return html.unescape(match.group(1))


def test_a_new_instance_shows_its_credential_once_with_the_next_steps(
    admin_member, environment, settings
) -> None:
    settings.PUBLIC_BASE_URL = "https://approvals.example.com"
    client = client_for(admin_member)
    created = csrf_post(client, f"{PAGE}/instances", {"name": "codex-chris-laptop"})
    assert created.status_code == 200
    assert "no-cache" in created["Cache-Control"] and "no-store" in created["Cache-Control"]
    instance = AapInstance.objects.get()
    assert (instance.environment, instance.name, instance.provisioner) == (
        environment,
        "codex-chris-laptop",
        None,
    )
    assert instance.created_at == instance.updated_at and instance.last_used_at is None
    secret = shown_credential(created)
    assert secret.startswith("aapi_") and keys.key_digest(secret) == instance.credential_digest
    assert instance.credential_prefix == secret[:12]
    page = html.unescape(created.content.decode())
    assert (
        f"aap install claude-code --instance-token {secret} "
        "--base-url https://approvals.example.com/api/aap"
    ) in page
    assert f'Client("https://approvals.example.com/api/aap", "{secret}")' in page
    again = client.get(PAGE).content.decode()
    assert secret not in again  # never again: only its prefix
    assert f"{instance.credential_prefix}…" in again and "codex-chris-laptop" in again


def test_an_empty_name_gets_one_made_up_as_the_protocol_does(admin_member) -> None:
    created = csrf_post(client_for(admin_member), f"{PAGE}/instances", {"name": "  "})
    assert created.status_code == 200
    instance = AapInstance.objects.get()
    assert instance.name == f"instance-{str(instance.pk)[:8]}"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 201, "The name is longer than 200 characters."),
        ("refund\x07bot", "The name has control characters."),
        ("two\nlines", "The name has control characters."),
    ],
)
def test_a_refused_name_is_shown_under_the_field_and_nothing_is_created(
    admin_member, name, message
) -> None:
    response = csrf_post(client_for(admin_member), f"{PAGE}/instances", {"name": name})
    assert response.status_code == 400
    assert error_under(response, "instance-name") == message
    assert 'id="aap-credential"' not in response.content.decode()
    assert not AapInstance.objects.exists()


def test_renaming_keeps_the_credential_and_says_so(admin_member, environment) -> None:
    instance, secret = instances.instance_create_for_environment(environment=environment, name="a")
    client = client_for(admin_member)
    response = csrf_post(client, f"{PAGE}/instances/{instance.pk}/rename", {"name": " ci-runner "})
    assert response.status_code == 302 and response["Location"] == PAGE
    assert messages_of(response) == ["The instance is renamed to ci-runner."]
    renamed = AapInstance.objects.get()
    assert renamed.name == "ci-runner" and renamed.updated_at > instance.updated_at
    assert renamed.credential_digest == keys.key_digest(secret)  # still the same credential
    assert 'value="ci-runner"' in client.get(PAGE).content.decode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "The name must be a non-empty string."),
        ("x" * 201, "The name is longer than 200 characters."),
        ("a\x1bb", "The name has control characters."),
        ("a\x00b", "Null characters are not allowed."),
    ],
)
def test_a_refused_rename_is_shown_under_that_field_and_changes_nothing(
    admin_member, environment, name, message
) -> None:
    instance, _secret = instances.instance_create_for_environment(environment=environment, name="a")
    response = csrf_post(
        client_for(admin_member), f"{PAGE}/instances/{instance.pk}/rename", {"name": name}
    )
    assert response.status_code == 400
    assert error_under(response, f"rename-{instance.pk}") == message
    assert AapInstance.objects.get().name == "a"
    assert AapInstance.objects.get().updated_at == instance.updated_at


def test_another_environments_deleted_or_unknown_instance_is_not_found(
    admin_member, environment, other_environment
) -> None:
    theirs, _ = instances.instance_create_for_environment(environment=other_environment, name="b")
    gone, _ = instances.instance_create_for_environment(environment=environment, name="gone")
    instances.instance_retire(instance=gone)
    client = client_for(admin_member)
    for target in (theirs.pk, gone.pk, uuid.uuid4()):
        response = csrf_post(client, f"{PAGE}/instances/{target}/rename", {"name": "mine"})
        assert response.status_code == 404
    for target in (theirs.pk, uuid.uuid4()):  # deleting a deleted one again: nothing, no error
        assert csrf_post(client, f"{PAGE}/instances/{target}/delete", {}).status_code == 404
    assert AapInstance.objects.get(pk=theirs.pk).name == "b"
    assert AapInstance.objects.get(pk=theirs.pk).deleted_at is None
    assert AapInstance.objects.get(pk=gone.pk).name == "gone"
    # Another project's page is not there for this admin at all.
    assert csrf_post(client, "/projects/bob/dev/aap/instances", {"name": "x"}).status_code == 404
    assert AapInstance.objects.count() == 2


def test_only_admins_create_or_rename(viewer, approver, outsider, environment) -> None:
    instance, _ = instances.instance_create_for_environment(environment=environment, name="a")
    for user in (viewer, approver, outsider):
        client = client_for(user)
        assert csrf_post(client, f"{PAGE}/instances", {"name": "x"}).status_code == 404
        renamed = csrf_post(client, f"{PAGE}/instances/{instance.pk}/rename", {"name": "x"})
        assert renamed.status_code == 404
    anonymous = csrf_post(client_for(None), f"{PAGE}/instances", {"name": "x"})
    assert anonymous.status_code == 302  # to the login page
    assert list(AapInstance.objects.values_list("name", flat=True)) == ["a"]


def test_actions_are_post_only_and_need_the_csrf_token(admin_member, environment) -> None:
    instance, _ = instances.instance_create_for_environment(environment=environment, name="a")
    client = client_for(admin_member)
    assert client.get(f"{PAGE}/instances").status_code == 405
    assert client.get(f"{PAGE}/instances/{instance.pk}/rename").status_code == 405
    assert client.post(f"{PAGE}/instances", {"name": "x"}).status_code == 403
    assert client.post(f"{PAGE}/instances/{instance.pk}/rename", {"name": "x"}).status_code == 403
    assert list(AapInstance.objects.values_list("name", flat=True)) == ["a"]


def submission_of(response) -> str:
    match = re.search(r'name="submission" value="([^"]+)"', response.content.decode())
    assert match, "the form carries no submission value"
    return match.group(1)


@pytest.mark.parametrize(
    ("path", "data", "model", "notice"),
    [
        ("instances", {"name": "codex"}, AapInstance, "the instance was created then"),
        ("provisioners", {"name": "ci"}, AapProvisioner, "the provisioner token was created"),
    ],
)
def test_reloading_the_page_that_showed_a_secret_creates_nothing_twice(
    admin_member, path, data, model, notice
) -> None:
    client = client_for(admin_member)
    form = {**data, "submission": submission_of(client.get(PAGE))}
    first = csrf_post(client, f"{PAGE}/{path}", form)
    assert first.status_code == 200 and model.objects.count() == 1
    again = csrf_post(client, f"{PAGE}/{path}", form)  # the browser's "resend the form"
    assert again.status_code == 302 and again["Location"] == PAGE
    assert model.objects.count() == 1
    assert notice in " ".join(messages_of(again))
    fresh = {**data, "submission": submission_of(first)}  # the answer page's own form
    assert csrf_post(client, f"{PAGE}/{path}", fresh).status_code == 200
    assert model.objects.count() == 2
