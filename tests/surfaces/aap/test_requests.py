"""AAP requests over real HTTP: idempotency, single use under concurrency, isolation, and the
spec's error for every kind of bad input (never a 500, nothing changed)."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from agentapprovalprotocol import Client, ConflictError, CredentialRefused, NotFound
from agentapprovalprotocol._wire import parse_request
from django.db import connection

from tests.surfaces.aap.conftest import complete, new_key, raw
from tokens.domain import actors, consumption
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapInstance, AapRequest, Token

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "tool": "send_email",
    "arguments": {"to": "all@example.com", "count": 4000},
    "timeout": "30m",
}


def assert_spec_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert set(error) <= {"type", "code", "message", "param", "request_id"}
    assert error["type"] and error["message"]
    uuid.UUID(error["request_id"])
    return error


def create(
    base: str, credential: str, body: object = BODY, key: str | None = None
) -> httpx.Response:
    return raw(
        base,
        "POST",
        "/v1/requests",
        credential,
        headers={"Idempotency-Key": key or new_key()},
        content=json.dumps(body).encode() if not isinstance(body, bytes) else body,
    )


def approve(web_url: str, api_key: str, request_id: str, comment: str = "") -> None:
    request = AapRequest.objects.select_related("token").get(pk=request_id)
    data = {"status": "approved", **({"comment": comment} if comment else {})}
    response = complete(web_url, api_key, request, data)
    assert response.status_code == 200, response.text


def test_a_retry_after_a_lost_response_recovers_the_same_request(base, credential) -> None:
    key = new_key()
    first = create(base, credential, key=key)
    assert first.status_code == 201 and first.headers["X-Request-ID"]
    # The same fields, another order and spacing: the same request, 200.
    reordered = (
        b'{ "timeout": "30m", "arguments": {"count": 4000, "to": "all@example.com"},\n'
        b' "tool": "send_email" }'
    )
    again = create(base, credential, reordered, key=key)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert AapRequest.objects.count() == 1
    parse_request(again.json())  # the SDK's strict parser accepts it


def test_the_same_key_with_other_fields_is_a_conflict(base, credential) -> None:
    key = new_key()
    assert create(base, credential, key=key).status_code == 201
    changed = {**BODY, "arguments": {"to": "all@example.com", "count": 4001}}
    assert_spec_error(create(base, credential, changed, key=key), 409, "idempotency_conflict")
    assert AapRequest.objects.get().arguments["count"] == 4000


def test_keys_are_scoped_to_the_instance(base, credential, environment) -> None:
    from tokens.domain.aap import instances

    _other, second = instances.instance_create_for_environment(environment=environment, name="b")
    key = new_key()
    one, two = create(base, credential, key=key), create(base, second, key=key)
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


def test_a_terminal_replay_returns_the_request_in_its_current_state(
    aap_web, base, credential, api_key
) -> None:
    key = new_key()
    created = create(base, credential, key=key).json()
    approve(aap_web.url, api_key, created["id"], "fine")
    replay = create(base, credential, key=key)
    assert replay.status_code == 200
    request = parse_request(replay.json())
    assert request.status == "approved" and request.decision.note == "fine"
    assert request.decision.expires_at > request.decision.decided_at


def test_exactly_one_of_many_concurrent_consumers_wins(aap_web, base, credential, api_key) -> None:
    created = create(base, credential).json()
    approve(aap_web.url, api_key, created["id"])
    barrier = threading.Barrier(12)

    def consume(_: int) -> int:
        barrier.wait()
        response = raw(
            base,
            "POST",
            f"/v1/requests/{created['id']}/consume",
            credential,
            headers={"Idempotency-Key": new_key()},
        )
        return response.status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(consume, range(12)))
    assert statuses == [200] + [409] * 11
    later = raw(
        base,
        "POST",
        f"/v1/requests/{created['id']}/consume",
        credential,
        headers={"Idempotency-Key": new_key()},
    )
    assert_spec_error(later, 409, "already_consumed")


def test_consume_races_on_real_concurrent_database_connections(
    aap_web, base, credential, api_key
) -> None:
    """The domain's consume, from threads with a PostgreSQL connection each: one wins."""
    created = create(base, credential).json()
    approve(aap_web.url, api_key, created["id"])
    instance = AapInstance.objects.get()
    barrier = threading.Barrier(8)

    def consume(index: int) -> str:
        try:
            barrier.wait()
            aap_requests.request_consume(
                instance=instance,
                request_id=created["id"],
                key=f"k{index}",
                actor=actors.Actor.system(),
            )
            return "ok"
        except Exception as error:  # noqa: BLE001
            return getattr(error, "code", repr(error))
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(consume, range(8)))
    assert outcomes == ["already_consumed"] * 7 + ["ok"]


def test_consume_and_outcome_follow_the_sdk_contract(aap_web, base, credential, api_key) -> None:
    client = Client(base, credential)
    created = client.create(BODY, new_key())
    with pytest.raises(ConflictError) as refused:
        client.consume(created.id, new_key())
    assert refused.value.code == "not_approved"
    with pytest.raises(ConflictError) as early:
        client.report_outcome(created.id, "succeeded")
    assert early.value.code == "not_consumed"
    approve(aap_web.url, api_key, created.id)
    key = new_key()
    consumed = client.consume(created.id, key)
    assert consumed.consumption is not None and consumed.consumption.outcome is None
    assert client.consume(created.id, key).consumption == consumed.consumption  # replay
    reported = client.report_outcome(created.id, "failed", "SMTP down")
    assert reported.consumption.outcome.status == "failed"
    assert reported.consumption.outcome.note == "SMTP down"
    assert (
        client.report_outcome(created.id, "failed", "SMTP down").consumption == reported.consumption
    )
    with pytest.raises(ConflictError) as changed:
        client.report_outcome(created.id, "succeeded")
    assert changed.value.code == "outcome_conflict"


def test_an_expired_approval_cannot_be_consumed(aap_web, base, credential, api_key) -> None:
    created = create(base, credential).json()
    approve(aap_web.url, api_key, created["id"])
    token = AapRequest.objects.get(pk=created["id"]).token
    Token.objects.filter(pk=token.pk).update(decision_expires_at=token.completed_at)
    response = raw(
        base,
        "POST",
        f"/v1/requests/{created['id']}/consume",
        credential,
        headers={"Idempotency-Key": new_key()},
    )
    assert_spec_error(response, 409, "approval_expired")


def test_cancel_of_a_decided_request_is_already_terminal(
    aap_web, base, credential, api_key
) -> None:
    created = create(base, credential).json()
    approve(aap_web.url, api_key, created["id"])
    response = raw(base, "DELETE", f"/v1/requests/{created['id']}", credential)
    assert_spec_error(response, 409, "already_terminal")
    assert AapRequest.objects.get(pk=created["id"]).token.decision == "approved"


def test_other_output_for_an_aap_token_is_refused_and_changes_nothing(
    aap_web, base, credential, api_key
) -> None:
    created = create(base, credential).json()
    request = AapRequest.objects.select_related("token").get(pk=created["id"])
    for data in (
        {"approved": True},
        "yes",
        {"status": "approved", "extra": 1},
        {"status": "maybe"},
    ):
        response = complete(aap_web.url, api_key, request, data)
        assert response.status_code == 422, (data, response.text)
        assert "Agent Approval Protocol" in response.json()["error"]
    assert (
        raw(base, "GET", f"/v1/requests/{created['id']}", credential).json()["status"] == "pending"
    )


def test_another_instances_or_projects_request_is_not_found_as_an_unknown_one(
    base, credential, other_credential, environment
) -> None:
    from tokens.domain.aap import instances

    _sibling, sibling = instances.instance_create_for_environment(environment=environment, name="s")
    created = create(base, credential).json()
    unknown = str(uuid.uuid4())
    for who in (sibling, other_credential):
        for method, path in (
            ("GET", f"/v1/requests/{created['id']}"),
            ("GET", f"/v1/requests/{created['id']}?wait=1s"),
            ("DELETE", f"/v1/requests/{created['id']}"),
            ("POST", f"/v1/requests/{created['id']}/consume"),
        ):
            theirs = raw(base, method, path, who, headers={"Idempotency-Key": new_key()})
            missing = raw(
                base,
                method,
                path.replace(created["id"], unknown),
                who,
                headers={"Idempotency-Key": new_key()},
            )
            a = assert_spec_error(theirs, 404, "not_found")
            b = assert_spec_error(missing, 404, "not_found")
            assert (a["type"], a["message"]) == (b["type"], b["message"])
    with pytest.raises(NotFound):
        Client(base, sibling).get(created["id"])
    assert AapRequest.objects.get().token.status == Token.Status.WAITING


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**BODY, "surprise": 1}, "unknown_field"),
        ({**BODY, "agent_reasoning": None}, "null_field"),
        ({**BODY, "context": None}, "null_field"),
        ({"arguments": {}, "timeout": "1m"}, "missing_field"),
        ({**BODY, "tool": ""}, "invalid_field"),
        ({**BODY, "tool": "x" * 500}, "too_long"),
        ({**BODY, "arguments": []}, "invalid_field"),
        ({**BODY, "timeout": "0s"}, "invalid_duration"),
        ({**BODY, "timeout": "30"}, "invalid_duration"),
        ({**BODY, "timeout": "1d"}, "invalid_duration"),
        ({**BODY, "timeout": 30}, "invalid_duration"),
        ({**BODY, "timeout": "99999999999h"}, "invalid_duration"),
        ({**BODY, "arguments": {"big": "x" * 300_000}}, "body_too_large"),
        ([1, 2], "invalid_json"),
        (b'{"tool": "a", "tool": "b", "arguments": {}, "timeout": "1m"}', "invalid_json"),
        (b'{"tool": "a", "arguments": {"n": NaN}, "timeout": "1m"}', "invalid_json"),
        (b'{"tool": "a", "arguments": {"n": 1e999}, "timeout": "1m"}', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "invalid_json"),
    ],
)
def test_bad_input_gets_the_spec_error_and_creates_nothing(base, credential, body, code) -> None:
    assert_spec_error(create(base, credential, body), 400, code)
    assert not AapRequest.objects.exists()


def test_deeply_nested_arguments_are_refused(base, credential) -> None:
    deep: object = {}
    for _ in range(40):
        deep = {"a": deep}
    assert_spec_error(create(base, credential, {**BODY, "arguments": deep}), 400, "too_deep")
    very = (
        b'{"tool": "a", "timeout": "1m", "arguments": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001
    )
    assert create(base, credential, very).status_code == 400
    assert not AapRequest.objects.exists()


def test_a_create_without_an_idempotency_key_is_refused(base, credential) -> None:
    response = raw(base, "POST", "/v1/requests", credential, json=BODY)
    assert_spec_error(response, 400, "missing_idempotency_key")


@pytest.mark.parametrize("wait", ["0s", "abc", "30", "-1s", "1.5s", "10d"])
def test_a_bad_wait_is_refused(base, credential, wait) -> None:
    created = create(base, credential).json()
    response = raw(base, "GET", f"/v1/requests/{created['id']}?wait={wait}", credential)
    assert_spec_error(response, 400, "invalid_duration")


def test_a_wait_over_30_seconds_is_capped(base, credential) -> None:
    created = create(base, credential, {**BODY, "timeout": "2s"}).json()
    # Capped, and the deadline answers first: expired after about 2 s, not after 99 minutes.
    response = raw(base, "GET", f"/v1/requests/{created['id']}?wait=99m", credential)
    assert response.status_code == 200 and response.json()["status"] == "expired"


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic abc", "Bearer aapi_forged", "Bearer aapp_forged", "Bearer tr_dev_x"],
)
def test_forged_credentials_are_refused(base, header) -> None:
    response = httpx.post(
        f"{base}/v1/requests",
        json=BODY,
        timeout=10,
        headers={"Authorization": header, "Idempotency-Key": new_key()},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication"
    assert not AapRequest.objects.exists()


def test_a_provisioner_token_cannot_make_requests_nor_a_credential_manage_instances(
    base, credential, provisioner
) -> None:
    assert_spec_error(create(base, provisioner), 403, "instance_credential_required")
    response = raw(
        base, "POST", "/v1/instances", credential, json={}, headers={"Idempotency-Key": new_key()}
    )
    assert_spec_error(response, 403, "provisioner_token_required")
    with pytest.raises(CredentialRefused):
        Client(base, provisioner).create(BODY, new_key())


def test_unknown_paths_and_methods_answer_the_spec_shape(base, credential) -> None:
    assert_spec_error(raw(base, "GET", "/v1/nothing", credential), 404, "not_found")
    response = raw(base, "PUT", "/v1/requests", credential)
    assert_spec_error(response, 405, "method_not_allowed")


def test_a_retried_consumption_is_refused_once_a_token_is_consumed_elsewhere(
    aap_web, base, credential, api_key
) -> None:
    """AAP consume and the domain's consume are one implementation: the first use wins."""
    created = create(base, credential).json()
    approve(aap_web.url, api_key, created["id"])
    token = AapRequest.objects.get(pk=created["id"]).token
    consumption.token_consume(token=token, actor=actors.Actor.system(), consumer="billing")
    response = raw(
        base,
        "POST",
        f"/v1/requests/{created['id']}/consume",
        credential,
        headers={"Idempotency-Key": new_key()},
    )
    assert_spec_error(response, 409, "already_consumed")


def test_refusals_made_before_django_are_in_the_spec_shape_too(base, credential) -> None:
    huge = b'{"tool": "a", "timeout": "1m", "arguments": {"x": "' + b"x" * (4 << 20) + b'"}}'
    assert_spec_error(create(base, credential, huge), 400, "body_too_large")
    long_uri = raw(base, "GET", "/v1/requests/" + "a" * 9000, credential)
    assert_spec_error(long_uri, 400, "uri_too_long")
    assert not AapRequest.objects.exists()


def test_a_longer_window_than_the_provider_allows_is_shortened_never_lengthened(
    base, credential
) -> None:
    long = parse_request(create(base, credential, {**BODY, "timeout": "9999999h"}).json())
    assert long.timeout == "9999999h"  # as submitted
    assert long.deadline_at - long.created_at == timedelta(days=7)
    short = parse_request(create(base, credential, {**BODY, "timeout": "90s"}).json())
    assert short.deadline_at - short.created_at == timedelta(seconds=90)
