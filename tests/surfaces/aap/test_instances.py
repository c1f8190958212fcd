"""Provisioning over real HTTP: create (idempotent), read, rename, delete (revoking the
credential, cancelling pending requests, racing creation), within the provisioner's scope."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from agentapprovalprotocol import Client, CredentialRefused
from django.db import connection

from tests.surfaces.aap.conftest import complete, new_key, raw
from tests.surfaces.aap.test_requests import BODY, assert_spec_error
from tokens.domain.aap import credentials
from tokens.models import AapInstance, AapRequest, OutboxMessage, Token

pytestmark = pytest.mark.django_db(transaction=True)


def provision(base: str, provisioner: str, body: object, key: str | None = None) -> httpx.Response:
    return raw(
        base,
        "POST",
        "/v1/instances",
        provisioner,
        json=body,
        headers={"Idempotency-Key": key or new_key()},
    )


def test_it_provisions_an_instance_whose_credential_makes_requests(
    base, provisioner, environment
) -> None:
    response = provision(base, provisioner, {"instance_name": "codex-chris-laptop"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"instance", "credential"}
    assert body["instance"]["name"] == "codex-chris-laptop" and set(body["instance"]) == {
        "id",
        "name",
    }
    token = body["credential"]["token"]
    instance = AapInstance.objects.get(pk=body["instance"]["id"])
    assert instance.environment == environment
    assert token not in instance.credential_digest and instance.credential_prefix == token[:12]
    created = Client(base, token).create(BODY, new_key())
    assert created.status == "pending"
    # The instance answers reads without its credential.
    read = raw(base, "GET", f"/v1/instances/{instance.pk}", provisioner)
    assert read.status_code == 200 and read.json() == body["instance"]


def test_a_provisioning_replay_returns_the_same_instance_and_credential(base, provisioner) -> None:
    key = new_key()
    first = provision(base, provisioner, {"instance_name": "a"}, key)
    again = provision(base, provisioner, {"instance_name": "a"}, key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert AapInstance.objects.count() == 1
    assert_spec_error(
        provision(base, provisioner, {"instance_name": "b"}, key), 409, "idempotency_conflict"
    )
    instance_id = first.json()["instance"]["id"]
    assert raw(base, "DELETE", f"/v1/instances/{instance_id}", provisioner).status_code == 204
    assert_spec_error(
        provision(base, provisioner, {"instance_name": "a"}, key), 409, "instance_deleted"
    )
    assert AapInstance.objects.count() == 1


def test_an_instance_without_a_name_gets_one(base, provisioner) -> None:
    response = provision(base, provisioner, {})
    assert response.status_code == 201 and response.json()["instance"]["name"]


def test_renaming_is_idempotent_and_never_overwrites_a_later_update(base, provisioner) -> None:
    instance_id = provision(base, provisioner, {"instance_name": "old"}).json()["instance"]["id"]
    path = f"/v1/instances/{instance_id}"
    first_key = new_key()
    renamed = raw(
        base,
        "PATCH",
        path,
        provisioner,
        json={"instance_name": "new"},
        headers={"Idempotency-Key": first_key},
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "new"
    later = raw(
        base,
        "PATCH",
        path,
        provisioner,
        json={"instance_name": "newer"},
        headers={"Idempotency-Key": new_key()},
    )
    assert later.json()["name"] == "newer"
    replay = raw(
        base,
        "PATCH",
        path,
        provisioner,
        json={"instance_name": "new"},
        headers={"Idempotency-Key": first_key},
    )
    assert replay.status_code == 200 and replay.json()["name"] == "new"  # the original answer
    assert AapInstance.objects.get().name == "newer"  # … without applying it again
    conflicting = raw(
        base,
        "PATCH",
        path,
        provisioner,
        json={"instance_name": "x"},
        headers={"Idempotency-Key": first_key},
    )
    assert_spec_error(conflicting, 409, "idempotency_conflict")
    assert_spec_error(
        raw(base, "PATCH", path, provisioner, json={}, headers={"Idempotency-Key": new_key()}),
        400,
        "missing_field",
    )
    assert_spec_error(
        raw(base, "PATCH", path, provisioner, json={"instance_name": "y"}),
        400,
        "missing_idempotency_key",
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x"}, 400, "unknown_field"),
        ({"instance_name": None}, 400, "null_field"),
        ({"instance_name": ""}, 400, "invalid_field"),
        (
            {
                "delivery": {
                    "type": "socket",
                    "url": "https://a.example",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "whsec_" + "A" * 43 + "=",
                }
            },
            400,
            "unsupported_delivery_type",
        ),
        (
            {
                "delivery": {
                    "type": "webhook",
                    "url": "http://127.0.0.1:9/x",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                }
            },
            400,
            "invalid_webhook_url",
        ),
        (
            {
                "delivery": {
                    "type": "webhook",
                    "url": "https://10.0.0.1/x",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                }
            },
            400,
            "invalid_webhook_url",
        ),
        (
            {
                "delivery": {
                    "type": "webhook",
                    "url": "https://a.example/x#f",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                }
            },
            400,
            "invalid_webhook_url",
        ),
        (
            {
                "delivery": {
                    "type": "webhook",
                    "url": "https://a.example/x",
                    "registration_id": "nope",
                    "signing_secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                }
            },
            400,
            "invalid_field",
        ),
        (
            {
                "delivery": {
                    "type": "webhook",
                    "url": "https://a.example/x",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "short",
                }
            },
            400,
            "invalid_field",
        ),
    ],
)
def test_bad_provisioning_input_creates_nothing(
    strict_base, provisioner, body, status, code
) -> None:
    assert_spec_error(provision(strict_base, provisioner, body), status, code)
    assert not AapInstance.objects.exists()


def test_other_environments_instances_are_not_found_as_unknown_ones(
    base, provisioner, other_environment
) -> None:
    _row, theirs = credentials.provisioner_create(environment=other_environment)
    instance_id = provision(base, theirs, {"instance_name": "bob"}).json()["instance"]["id"]
    for method in ("GET", "PATCH", "DELETE"):
        for target in (instance_id, str(uuid.uuid4()), "not-a-uuid"):
            response = raw(
                base,
                method,
                f"/v1/instances/{target}",
                provisioner,
                json={"instance_name": "mine"},
                headers={"Idempotency-Key": new_key()},
            )
            assert_spec_error(response, 404, "not_found")
    assert AapInstance.objects.get().name == "bob" and AapInstance.objects.get().deleted_at is None


def test_a_revoked_provisioner_token_manages_nothing(base, provisioner) -> None:
    from tokens.models import AapProvisioner

    credentials.provisioner_revoke(provisioner=AapProvisioner.objects.get())
    assert_spec_error(provision(base, provisioner, {}), 401, "invalid_credential")


def test_deletion_revokes_cancels_pending_and_keeps_terminal_outcomes(
    aap_web, base, provisioner, api_key
) -> None:
    body = provision(base, provisioner, {"instance_name": "doomed"}).json()
    instance_id, token = body["instance"]["id"], body["credential"]["token"]
    client = Client(base, token)
    pending = client.create(BODY, new_key())
    decided = client.create({**BODY, "tool": "other"}, new_key())
    request = AapRequest.objects.select_related("token").get(pk=decided.id)
    assert complete(aap_web.url, api_key, request, {"status": "rejected"}).status_code == 200
    assert raw(base, "DELETE", f"/v1/instances/{instance_id}", provisioner).status_code == 204
    assert raw(base, "DELETE", f"/v1/instances/{instance_id}", provisioner).status_code == 204
    assert_spec_error(
        raw(base, "GET", f"/v1/instances/{instance_id}", provisioner), 404, "not_found"
    )
    assert_spec_error(
        raw(
            base,
            "PATCH",
            f"/v1/instances/{instance_id}",
            provisioner,
            json={"instance_name": "back"},
            headers={"Idempotency-Key": new_key()},
        ),
        404,
        "not_found",
    )
    with pytest.raises(CredentialRefused):
        client.get(pending.id)
    tokens = {r.pk: r.token for r in AapRequest.objects.select_related("token")}
    assert tokens[uuid.UUID(pending.id)].status == Token.Status.CANCELLED
    assert tokens[uuid.UUID(decided.id)].decision == "rejected"
    assert not OutboxMessage.objects.filter(kind=OutboxMessage.Kind.AAP_EVENT).exists()
    assert_spec_error(
        raw(base, "DELETE", f"/v1/instances/{uuid.uuid4()}", provisioner), 404, "not_found"
    )


def test_deletion_racing_creation_leaves_nothing_pending(base, provisioner) -> None:
    body = provision(base, provisioner, {"instance_name": "racer"}).json()
    instance_id, token = body["instance"]["id"], body["credential"]["token"]
    start = threading.Barrier(9)

    def create(_: int) -> int:
        start.wait()
        statuses = []
        for _round in range(5):
            response = raw(
                base,
                "POST",
                "/v1/requests",
                token,
                json=BODY,
                headers={"Idempotency-Key": new_key()},
            )
            statuses.append(response.status_code)
        return max(statuses)

    def delete() -> int:
        start.wait()
        return raw(base, "DELETE", f"/v1/instances/{instance_id}", provisioner).status_code

    with ThreadPoolExecutor(9) as pool:
        creators = [pool.submit(create, i) for i in range(8)]
        deleted = pool.submit(delete)
        results = [c.result() for c in creators]
    assert deleted.result() == 204
    assert set(results) <= {201, 401}
    connection.close()
    assert not Token.objects.filter(
        aap_request__instance_id=instance_id, status=Token.Status.WAITING
    ).exists()
    late = raw(
        base, "POST", "/v1/requests", token, json=BODY, headers={"Idempotency-Key": new_key()}
    )
    assert_spec_error(late, 401, "invalid_credential")


def test_concurrent_submissions_with_one_key_create_one_instance(base, provisioner) -> None:
    key = new_key()
    start = threading.Barrier(6)

    def submit(_: int) -> tuple[int, str]:
        start.wait()
        response = provision(base, provisioner, {"instance_name": "once"}, key)
        return response.status_code, response.json()["credential"]["token"]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(submit, range(6)))
    assert sorted(status for status, _ in results) == [200] * 5 + [201]
    assert len({token for _, token in results}) == 1
    assert AapInstance.objects.count() == 1
