"""Rate limits, on a web role of their own with small limits: 429 in the spec's shape with
Retry-After, per instance credential, per provisioner token, per verification destination and
for failed credentials per address."""

from __future__ import annotations

import uuid

import pytest

from tests.live import live_web
from tests.surfaces.aap.conftest import new_key, raw
from tests.surfaces.aap.test_requests import BODY, assert_spec_error

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_limit_answers_429_with_retry_after(tmp_path, credential, provisioner) -> None:
    with live_web(
        tmp_path,
        WAITPOINTS_RATELIMIT_AAP_CALLS="3/1m",
        WAITPOINTS_RATELIMIT_AAP_PROVISIONING="4/1m",
        WAITPOINTS_RATELIMIT_AAP_VERIFICATIONS="1/1m",
        WAITPOINTS_RATELIMIT_API_KEY_FAILURES="2/1m",
        WAITPOINTS_RATELIMIT_NAMESPACE=f"rl-aap-limits-{uuid.uuid4().hex}",
    ) as server:
        base = f"{server.url}/api/aap"
        for _ in range(3):
            created = raw(
                base,
                "POST",
                "/v1/requests",
                credential,
                json=BODY,
                headers={"Idempotency-Key": new_key()},
            )
            assert created.status_code == 201
        limited = raw(
            base,
            "POST",
            "/v1/requests",
            credential,
            json=BODY,
            headers={"Idempotency-Key": new_key()},
        )
        error = assert_spec_error(limited, 429, "rate_limited")
        assert error["type"] == "rate_limit" and int(limited.headers["Retry-After"]) >= 1

        def delivery(path: str) -> dict:
            return {
                "delivery": {
                    "type": "webhook",
                    "url": f"https://receiver.example.com/{path}",
                    "registration_id": str(uuid.uuid4()),
                    "signing_secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                }
            }

        first = raw(
            base,
            "POST",
            "/v1/instances",
            provisioner,
            json=delivery("a"),
            headers={"Idempotency-Key": new_key()},
        )
        assert first.status_code in (201, 422)  # verified or not: it was attempted
        other_path = raw(
            base,
            "POST",
            "/v1/instances",
            provisioner,
            json=delivery("b"),
            headers={"Idempotency-Key": new_key()},
        )
        assert_spec_error(other_path, 429, "rate_limited")  # the same host, another path
        for _ in range(2):
            raw(
                base,
                "POST",
                "/v1/instances",
                provisioner,
                json={},
                headers={"Idempotency-Key": new_key()},
            )
        assert_spec_error(
            raw(
                base,
                "POST",
                "/v1/instances",
                provisioner,
                json={},
                headers={"Idempotency-Key": new_key()},
            ),
            429,
            "rate_limited",
        )

        for _ in range(2):
            assert (
                raw(base, "GET", f"/v1/requests/{uuid.uuid4()}", "aapi_forged").status_code == 401
            )
        refused = raw(base, "GET", f"/v1/requests/{uuid.uuid4()}", "aapi_forged")
        assert_spec_error(refused, 429, "rate_limited")
        assert "Retry-After" in refused.headers
        # A valid credential from that address is not refused for others' failures.
        from tokens.domain.aap import instances
        from tokens.models import Environment

        _fresh, valid = instances.instance_create_for_environment(
            environment=Environment.objects.get(project__slug="alice"), name="fresh"
        )
        assert raw(base, "GET", f"/v1/requests/{uuid.uuid4()}", valid).status_code == 404
