"""The AAP operations. Each view parses (body, Idempotency-Key, ids), authenticates within
limits (``answers.authenticate``), calls ``tokens.domain.aap`` and answers; ``answers.aap_view``
turns every failure into the spec's error with ``X-Request-ID``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.utils import timezone

from tokens.domain.aap import credentials, inputs, instances, representation
from tokens.domain.aap import requests as aap_requests
from tokens.domain.aap.errors import AapError
from tokens.domain.actors import Actor
from tokens.models import AapInstance, AapProvisioner, TokenEvent
from tokens.surfaces.aap import answers, wait
from tokens.surfaces.aap.answers import Answer, aap_view
from tokens.surfaces.common import ratelimit
from tokens.surfaces.common.http import actor_from_request


def _caller(request: HttpRequest) -> credentials.Caller:
    return answers.authenticate(
        request.META.get("HTTP_AUTHORIZATION", ""), ratelimit.client_ip(request)
    )


def _body(request: HttpRequest) -> dict[str, Any]:
    return inputs.parse_body(request.body)


def _key(request: HttpRequest) -> str:
    return inputs.clean_key(request.headers.get("Idempotency-Key"))


def _verification_allowed(body: dict[str, Any], provisioner: AapProvisioner) -> None:
    """Receiver verifications are limited per destination host (across provisioners,
    instances and URL paths) and per provisioning account (the environment, whichever of its
    provisioner tokens asks), before any is sent. The delivery rates of the destination
    (``delivery.aap``) count them too."""
    delivery = body.get("delivery")
    if not isinstance(delivery, dict) or not isinstance(delivery.get("url"), str):
        return
    host = (urlsplit(delivery["url"]).hostname or "").lower()
    per_host, per_account = ratelimit.check(
        ratelimit.Check(ratelimit.AAP_VERIFICATIONS, f"host:{host}", hit=True),
        ratelimit.Check(
            ratelimit.AAP_ACCOUNT_VERIFICATIONS, f"env:{provisioner.environment_id}", hit=True
        ),
    )
    if per_host is not None and not per_host.allowed:
        raise answers.rate_limited(per_host, "receiver verifications for this host")
    if per_account is not None and not per_account.allowed:
        raise answers.rate_limited(per_account, "receiver verifications for this environment")


def _creation_allowed(instance: AapInstance) -> None:
    """Approval requests are limited per provisioning account (the instance's environment),
    across its instances, besides each credential's own budget (``answers.authenticate``):
    more instances get no more."""
    decision = ratelimit.hit(ratelimit.AAP_ACCOUNT_REQUESTS, f"env:{instance.environment_id}")
    if decision is not None and not decision.allowed:
        raise answers.rate_limited(decision, "approval requests for this environment")


def _not_allowed(*methods: str) -> Answer:
    error = AapError("Method not allowed.", status=405, code="method_not_allowed")
    error.kind = "invalid_request"
    return answers.from_error(error, Allow=", ".join(methods))


def _actor(request: HttpRequest) -> Actor:
    return actor_from_request(
        request, TokenEvent.Channel.AAP, credential=TokenEvent.Credential.AAP_CREDENTIAL
    )


def _request_answer(request: Any, status: int = 200) -> Answer:
    return Answer(status, representation.request_wire(request, request.token, timezone.now()))


@aap_view
def instance_collection(request: HttpRequest) -> Answer:
    """``POST /v1/instances``: provision an instance (provisioner token, Idempotency-Key)."""
    if request.method != "POST":
        return _not_allowed("POST")
    provisioner = credentials.as_provisioner(_caller(request))
    key, body = _key(request), _body(request)
    _verification_allowed(body, provisioner)
    status, answer = instances.instance_provision(provisioner=provisioner, key=key, body=body)
    return Answer(status, answer)


@aap_view
def instance_detail(request: HttpRequest, instance_id: str) -> Answer:
    """``GET`` / ``PATCH`` / ``DELETE /v1/instances/{id}`` (provisioner token)."""
    if request.method not in ("GET", "PATCH", "DELETE"):
        return _not_allowed("GET", "PATCH", "DELETE")
    provisioner = credentials.as_provisioner(_caller(request))
    if request.method == "GET":
        found: AapInstance = instances.instance_get(
            provisioner=provisioner, instance_id=instance_id
        )
        return Answer(200, representation.instance_wire(found))
    if request.method == "DELETE":
        instances.instance_delete(provisioner=provisioner, instance_id=instance_id)
        return Answer(204, None)
    key, body = _key(request), _body(request)
    _verification_allowed(body, provisioner)
    updated = instances.instance_update(
        provisioner=provisioner, instance_id=instance_id, key=key, body=body
    )
    return Answer(200, updated)


@aap_view
def request_collection(request: HttpRequest) -> Answer:
    """``POST /v1/requests``: ask whether one tool call may run (instance credential)."""
    if request.method != "POST":
        return _not_allowed("POST")
    instance = credentials.as_instance(_caller(request))
    key, body = _key(request), _body(request)
    _creation_allowed(instance)
    created, new = aap_requests.request_create(
        instance=instance, key=key, body=body, actor=_actor(request)
    )
    found = aap_requests.request_get(instance=instance, request_id=str(created.pk))
    return _request_answer(found, 201 if new else 200)


@aap_view
def request_detail(request: HttpRequest, request_id: str) -> Answer:
    """``GET /v1/requests/{id}[?wait=30s]`` (read, long poll) and ``DELETE`` (cancel)."""
    if request.method == "GET":
        if "wait" in request.GET:
            return wait.read_view(request, request_id)
        reader = credentials.as_instance(_caller(request))
        return _request_answer(aap_requests.request_get(instance=reader, request_id=request_id))
    if request.method != "DELETE":
        return _not_allowed("GET", "DELETE")
    instance = credentials.as_instance(_caller(request))
    cancelled = aap_requests.request_cancel(
        instance=instance, request_id=request_id, actor=_actor(request)
    )
    return _request_answer(cancelled)


@aap_view
def request_consume(request: HttpRequest, request_id: str) -> Answer:
    """``POST /v1/requests/{id}/consume`` (Idempotency-Key): use the approval, once."""
    if request.method != "POST":
        return _not_allowed("POST")
    instance = credentials.as_instance(_caller(request))
    key = _key(request)
    if request.body.strip() not in (b"", b"{}"):
        inputs.parse_body(request.body)  # a body, if any, must be JSON
        raise AapError("consume takes no body.", status=400, code="unknown_field")
    consumed = aap_requests.request_consume(
        instance=instance, request_id=request_id, key=key, actor=_actor(request)
    )
    return _request_answer(consumed)


@aap_view
def request_outcome(request: HttpRequest, request_id: str) -> Answer:
    """``POST /v1/requests/{id}/outcome``: how running the approved call went, once."""
    if request.method != "POST":
        return _not_allowed("POST")
    instance = credentials.as_instance(_caller(request))
    reported = aap_requests.request_report_outcome(
        instance=instance, request_id=request_id, body=_body(request), actor=_actor(request)
    )
    return _request_answer(reported)


@aap_view
def unknown(request: HttpRequest, rest: str = "") -> Answer:
    """Any other path under ``/api/aap/``: the spec's 404, not the v1 API's."""
    raise AapError("No such operation.", status=404, code="not_found")
