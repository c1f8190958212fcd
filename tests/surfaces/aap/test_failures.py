"""Failures inside the provider still answer the spec's error: 500 ``internal`` for a crash
(nothing internal in it), 503 ``dependency`` with Retry-After for a database outage."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import OperationalError
from django.test import Client

from tokens.domain.aap import credentials
from tokens.domain.aap import instances as aap_instances

pytestmark = pytest.mark.django_db


@pytest.fixture
def provisioner(environment) -> str:
    _row, token = credentials.provisioner_create(environment=environment)
    return token


def get_instance(token: str):
    return Client(raise_request_exception=False).get(
        f"/api/aap/v1/instances/{uuid.uuid4()}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_a_crash_is_a_500_internal_without_details(provisioner, monkeypatch) -> None:
    def crash(**_: object) -> None:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    monkeypatch.setattr(aap_instances, "instance_get", crash)
    response = get_instance(provisioner)
    assert response.status_code == 500
    error = json.loads(response.content)["error"]
    assert error["type"] == "internal" and error["request_id"] == response["X-Request-ID"]
    assert (
        "secret" not in response.content.decode() and provisioner not in response.content.decode()
    )


def test_a_database_outage_is_a_503_dependency(provisioner, monkeypatch) -> None:
    def down(**_: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(aap_instances, "instance_get", down)
    response = get_instance(provisioner)
    assert response.status_code == 503 and response["Retry-After"]
    error = json.loads(response.content)["error"]
    assert error["type"] == "dependency" and "refused" not in error["message"]


def test_startup_checks_guard_the_aap_settings(settings) -> None:
    from tokens.checks import waitpoints_settings_check

    settings.WEBHOOKS_TOTAL_TIMEOUT = 30
    settings.WAITPOINTS_AAP_APPROVAL_VALID_SECONDS = 0
    ids = {problem.id for problem in waitpoints_settings_check(None)}
    assert {"tokens.W002", "tokens.E003"} <= ids
    settings.WEBHOOKS_TOTAL_TIMEOUT = 10
    settings.WAITPOINTS_AAP_APPROVAL_VALID_SECONDS = 600
    ids = {problem.id for problem in waitpoints_settings_check(None)}
    assert not ids & {"tokens.W002", "tokens.E003"}
