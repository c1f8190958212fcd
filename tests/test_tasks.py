"""Celery tasks called as plain functions, and the management commands."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tokens import tasks
from tokens.domain import actors, lifecycle
from tokens.models import ApiKey, Environment, Token, TokenEvent

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
    call_command("create_api_key", "--project", "billing", "--env", "dev", stdout=out, stderr=err)
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
        "create_api_key", "--project", "billing", "--env", env, stdout=out, stderr=StringIO()
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
        call_command("create_api_key", "--project", "billing", "--env", env, stdout=StringIO())
    assert not ApiKey.objects.exists()
    assert not Environment.objects.exists()
