"""Celery tasks called as plain functions, and the management commands."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tokens import tasks
from tokens.domain import actors, lifecycle
from tokens.models import ApiKey, Environment, Membership, Project, Token, TokenEvent

SYSTEM = actors.Actor.system()


def overdue(environment, count):
    past = timezone.now() - timedelta(minutes=5)
    return [
        lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1m", now=past).token
        for _ in range(count)
    ]


def test_it_expires_timed_out_tokens(environment):
    due = overdue(environment, 3)
    waiting = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token
    assert tasks.expire_timed_out_tokens() == 3
    assert {Token.objects.get(pk=t.pk).status for t in due} == {Token.Status.TIMED_OUT}
    assert Token.objects.get(pk=waiting.pk).status == Token.Status.WAITING
    assert tasks.expire_timed_out_tokens() == 0
    assert TokenEvent.objects.filter(kind="timed_out", channel="system").count() == 3


def test_it_expires_tokens_from_the_command(environment):
    overdue(environment, 2)
    out = StringIO()
    call_command("expire_tokens", stdout=out)
    assert out.getvalue().strip() == "Timed out 2 token(s)."
    assert not Token.objects.filter(status=Token.Status.WAITING).exists()
    out = StringIO()
    call_command("expire_tokens", stdout=out)
    assert out.getvalue().strip() == "Timed out 0 token(s)."


def test_it_creates_a_working_api_key(db):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key",
        "--project",
        "billing",
        "--create-project",
        "--env",
        "dev",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip().splitlines()[-1]
    assert secret.startswith("tr_dev_")
    assert not secret.startswith("tr_dev_sk_")
    assert len(secret) >= len("tr_dev_") + 32
    assert secret not in err.getvalue()
    environment = Environment.objects.get(project__slug="billing", slug="dev")
    api_key = ApiKey.objects.get(environment=environment)
    assert secret not in (api_key.digest, api_key.encrypted_key)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.post("/api/v1/waitpoints/tokens", {}, format="json")
    assert response.status_code == 200
    assert Token.objects.get().environment == environment


@pytest.mark.parametrize(("env", "prefix"), [("staging", "tr_stg_"), ("prod", "tr_prod_")])
def test_it_creates_keys_for_other_environments(db, env, prefix):
    out = StringIO()
    call_command(
        "create_api_key",
        "--project",
        "billing",
        "--create-project",
        "--env",
        env,
        stdout=out,
        stderr=StringIO(),
    )
    assert out.getvalue().strip().splitlines()[-1].startswith(prefix)


def test_it_adds_keys_to_an_existing_environment(environment):
    out = StringIO()
    for _ in range(2):
        call_command(
            "create_api_key", "--project", "alice", "--env", "dev", stdout=out, stderr=StringIO()
        )
    first, second = out.getvalue().split()
    assert first != second
    assert ApiKey.objects.filter(environment=environment).count() == 2
    assert Environment.objects.count() == 1


@pytest.mark.parametrize("env", ["invalid", "production", ""])
def test_it_refuses_an_unknown_environment(db, env):
    with pytest.raises(CommandError):
        call_command(
            "create_api_key",
            "--project",
            "billing",
            "--create-project",
            "--env",
            env,
            stdout=StringIO(),
        )
    assert not ApiKey.objects.exists()
    assert not Environment.objects.exists()


def test_it_does_not_create_a_project_from_a_typo(environment, other_environment):
    # A mistyped --project used to create a new, empty project silently.
    with pytest.raises(CommandError) as refused:
        call_command("create_api_key", "--project", "alcie", "--env", "dev", stdout=StringIO())
    assert str(refused.value) == (
        "No project 'alcie'. Projects: alice, bob. To create a new project, add --create-project."
    )
    assert not Project.objects.filter(slug="alcie").exists()
    assert ApiKey.objects.count() == 0


def test_it_adds_a_missing_environment_to_an_existing_project(environment):
    out = StringIO()
    call_command(
        "create_api_key", "--project", "alice", "--env", "prod", stdout=out, stderr=StringIO()
    )
    assert out.getvalue().strip().startswith("tr_prod_")
    assert Environment.objects.filter(project__slug="alice", slug="prod").exists()


def test_it_says_when_there_is_no_project_yet(db):
    with pytest.raises(CommandError, match="No project 'demo'. There are no projects yet"):
        call_command("create_api_key", "--project", "demo", "--env", "dev", stdout=StringIO())


def add_member(*args: str, stdout=None) -> str:
    """``manage.py add_member`` with these arguments; its output."""
    out = stdout or StringIO()
    call_command("add_member", *args, stdout=out)
    return out.getvalue()


def test_add_member_invites_by_email_for_scripts(environment, settings):
    lines = add_member(
        "--project", "alice", "--email", "ann@example.com", "--role", "approver"
    ).splitlines()
    assert (
        lines[0] == "ann@example.com (new account, username ann@example.com) is approver in alice."
    )
    assert lines[1] == f"E-mailed a link to choose a password (through {settings.EMAIL_BACKEND})."
    assert Membership.objects.get(user__email="ann@example.com").role == "approver"
    [message] = mail.outbox
    assert "/accounts/reset/" in message.body
    # Again with another role: the role changes, no second account.
    add_member("--project", "alice", "--email", "ANN@example.com", "--role", "admin", "--no-email")
    assert Membership.objects.get(user__email="ann@example.com").role == "admin"
    assert len(mail.outbox) == 1


def test_add_member_names_the_projects_there_are(environment):
    with pytest.raises(CommandError) as refused:
        add_member("--project", "alcie", "--email", "a@example.com", "--role", "viewer")
    assert str(refused.value) == "No project 'alcie'. Projects: alice."
    with pytest.raises(CommandError, match="is not an e-mail address"):
        add_member("--project", "alice", "--email", "nope", "--role", "viewer")


def test_add_member_says_where_mail_lands_on_the_embedded_default(environment, settings, tmp_path):
    settings.EMAIL_BACKEND = "tokens.delivery.mailbox.EmailBackend"
    settings.WAITPOINTS_MAIL_DIR = tmp_path / "mail"
    out = add_member("--project", "alice", "--email", "ann@example.com", "--role", "viewer")
    assert f"a file in {tmp_path / 'mail'}" in out
    assert "http://testserver/admin/sent-mail/" in out
    [written] = (tmp_path / "mail").glob("*.eml")
    assert "You are invited to alice" in written.read_text()
