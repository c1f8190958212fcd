"""An AAP request's token, on the other surfaces: decided as any token (the dashboard's
approve writes the decision the request reports), completed only with a person's decision
(raw JSON from the dashboard or the callback URL is refused and changes nothing)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tokens.domain import actors, lifecycle
from tokens.domain.aap import instances, representation
from tokens.domain.aap import requests as aap_requests
from tokens.domain.exceptions import OutputRefused
from tokens.domain.links import callback_url
from tokens.models import AapRequest, Membership, Token

pytestmark = pytest.mark.django_db

BODY = {"tool": "refund", "arguments": {"amount": 10}, "timeout": "1h"}


@pytest.fixture
def aap_request(environment) -> AapRequest:
    instance, _secret = instances.instance_create_for_environment(environment=environment, name="a")
    request, _ = aap_requests.request_create(
        instance=instance, key="k1", body=BODY, actor=actors.Actor.system()
    )
    return AapRequest.objects.select_related("token").get(pk=request.pk)


def wire(request: AapRequest) -> dict:
    fresh = AapRequest.objects.select_related("token").get(pk=request.pk)
    return representation.request_wire(fresh, fresh.token, timezone.now())


def test_it_is_listed_and_decided_on_the_dashboard(environment, aap_request) -> None:
    approver = member(environment, "april", Membership.Role.APPROVER)
    client = client_for(approver)
    token = aap_request.token
    assert token.friendly_id in client.get("/").content.decode()  # waiting for the approvers
    response = csrf_post(
        client, f"/tokens/{token.friendly_id}/approve", {"comment": "Looks right."}
    )
    assert response.status_code == 302
    answer = wire(aap_request)
    assert answer["status"] == "approved"
    assert answer["decision"]["note"] == "Looks right."
    assert answer["decision"]["expires_at"] > answer["decision"]["decided_at"]


def test_raw_output_is_refused_on_every_surface(environment, aap_request, client) -> None:
    token = aap_request.token
    with pytest.raises(OutputRefused):
        lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"ok": True})
    admin = member(environment, "adam", Membership.Role.ADMIN)
    csrf_post(client_for(admin), f"/tokens/{token.friendly_id}/complete", {"data": '{"ok": 1}'})
    url = callback_url(token, base="http://testserver")
    answer = client.post(url, data=json.dumps({"ok": True}), content_type="application/json")
    assert answer.status_code == 422 and "Agent Approval Protocol" in answer.json()["error"]
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert wire(aap_request)["status"] == "pending"
    # The decision the callback's confirmation page writes is accepted.
    decided = client.post(
        url,
        data=json.dumps({"status": "rejected", "comment": "no"}),
        content_type="application/json",
    )
    assert decided.status_code == 200
    assert wire(aap_request)["decision"] == {
        "status": "denied",
        "decided_at": wire(aap_request)["decision"]["decided_at"],
        "note": "no",
    }


def test_a_cancel_from_another_surface_reads_cancelled(aap_request) -> None:
    lifecycle.token_cancel(token=aap_request.token, actor=actors.Actor.system(), reason="ops")
    answer = wire(aap_request)
    assert answer["status"] == "cancelled" and answer["decision"]["note"] == "ops"
    assert "expires_at" not in answer["decision"]
