"""Limits per provisioning account (an environment), across its instances and provisioner
tokens: new approval requests, and receiver verifications. More instances or more tokens get no
more; another environment is not held back. Over a limit: the spec's 429 with Retry-After and
nothing created. In-process (Django's test client): the limits are the surface's, no live
server needed."""

from __future__ import annotations

import json
import uuid

import pytest
from agentapprovalprotocol.receiver import new_secret
from django.test import Client

from tests.delivery.test_aap_rates import challenge_receiver
from tests.surfaces.aap.test_requests import BODY, assert_spec_error
from tokens.domain.aap import credentials, instances
from tokens.models import AapInstance, AapRequest, Environment

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/api/aap"


def post(path: str, token: str, body: dict) -> object:
    return Client().post(
        BASE + path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )


def instance_credential(environment: Environment, name: str) -> str:
    _instance, secret = instances.instance_create_for_environment(
        environment=environment, name=name
    )
    return secret


def test_approval_requests_are_limited_per_environment_across_instances(
    settings, environment, other_environment
) -> None:
    settings.WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS = "3/1m"
    first, second = (instance_credential(environment, name) for name in ("a", "b"))
    elsewhere = instance_credential(other_environment, "c")
    for credential in (first, first, second):
        assert post("/v1/requests", credential, BODY).status_code == 201
    # A fresh instance's own budget is untouched, the environment's is spent.
    refused = post("/v1/requests", second, BODY)
    error = assert_spec_error(refused, 429, "rate_limited")
    assert error["type"] == "rate_limit" and int(refused.headers["Retry-After"]) >= 1
    assert AapRequest.objects.count() == 3  # nothing created
    assert post("/v1/requests", elsewhere, BODY).status_code == 201


def delivery(url: str) -> dict:
    return {
        "delivery": {
            "type": "webhook",
            "url": url,
            "registration_id": str(uuid.uuid4()),
            "signing_secret": new_secret(),
        }
    }


def test_verifications_are_limited_per_environment_across_provisioner_tokens(
    settings, environment, other_environment
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WAITPOINTS_RATELIMIT_AAP_ACCOUNT_VERIFICATIONS = "2/10m"
    tokens = [
        credentials.provisioner_create(environment=environment, name=name)[1]
        for name in ("one", "two")
    ]
    _row, elsewhere = credentials.provisioner_create(environment=other_environment, name="x")
    with challenge_receiver() as receiver:
        # Other hosts each time, so the per-host limit is not what refuses.
        for token, host in zip(tokens, ("127.0.0.1", "localhost"), strict=True):
            created = post("/v1/instances", token, delivery(receiver.url(host, "/a")))
            assert created.status_code == 201, created.content
        refused = post("/v1/instances", tokens[1], delivery(receiver.url("127.0.0.1", "/b")))
        assert_spec_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        assert len(receiver.received) == 2  # the refused one was never sent
        assert AapInstance.objects.count() == 2
        other = post("/v1/instances", elsewhere, delivery(receiver.url("127.0.0.1", "/c")))
        assert other.status_code == 201
    assert len(receiver.received) == 3
