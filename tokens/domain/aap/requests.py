"""AAP approval requests: create, read, cancel, consume, report the outcome.

A request is created as one waitpoint token of the instance's environment (through
``lifecycle.token_create``, so approvers, "waiting for me", e-mails and Slack see it as any
token), with the tags ``aap-request:<id>``, ``aap-tool:<tool>`` and ``aap-instance:<id>``, a
deadline of the requested window (shortened to ``WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS``) and an
approval window (``decision_valid_for``, the environment's) so that an approval carries its
``expires_at``. The environment's policy (``policies``) is asked first: its first matching
rule routes the token to named approvers, or approves or denies it before anyone sees it. The
token, its ``AapRequest`` row and a rule's decision are written in one transaction that holds
the instance's row lock (deletion takes it too). Creation is idempotent per instance and key:
the same parsed body returns the existing request in its current state (the policy is not asked
again), a different one ``409 idempotency_conflict``.

Everything after creation is the token's: cancel is ``lifecycle.token_cancel``, consume and
outcome are ``domain.consumption`` (the one implementation of single use), decisions come
through ``domain.decide``, the token API or a policy rule, expiry through the sweep or on read.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tokens.domain import consumption, lifecycle
from tokens.domain.aap import inputs, policies, representation
from tokens.domain.aap.errors import AapError, conflict, not_found
from tokens.domain.actors import Actor
from tokens.domain.exceptions import InvalidInput
from tokens.models import AapInstance, AapRequest
from tokens.persistence import aap_paths

TAG_REQUEST, TAG_TOOL, TAG_INSTANCE = (
    representation.TAG_REQUEST,
    "aap-tool:",
    "aap-instance:",
)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def request_create(
    *,
    instance: AapInstance,
    key: str,
    body: dict[str, Any],
    actor: Actor,
    now: datetime | None = None,
) -> tuple[AapRequest, bool]:
    """A new pending request (True), or the existing one for this key and body (False)."""
    submission = inputs.clean_submission(body)
    key_digest = inputs.key_digest(key)
    with transaction.atomic():
        locked = aap_paths.instance_locked(instance.pk)
        if locked is None:
            raise AapError(
                "The credential is invalid, expired or revoked.",
                status=401,
                code="invalid_credential",
            )
        existing = aap_paths.request_by_key(locked.pk, key_digest)
        if existing is not None:
            if existing.body_digest != submission.digest:
                raise conflict(
                    "The idempotency key was already used for a different request.",
                    code="idempotency_conflict",
                )
            return existing, False
        moment = now or timezone.now()
        request = AapRequest(
            instance=locked,
            key_digest=key_digest,
            body_digest=submission.digest,
            tool=submission.tool,
            server=submission.server,
            arguments_json=_json_text(submission.arguments),
            timeout=submission.timeout,
            agent_reasoning=submission.agent_reasoning,
            context_json=_json_text(submission.context) if submission.context is not None else None,
            created_at=moment,
        )
        verdict = policies.evaluate(instance=locked, tool=submission.tool, server=submission.server)
        route = verdict.route
        window = policies.deadline_for(verdict, submission.window)
        try:
            token = lifecycle.token_create(
                environment=locked.environment,
                actor=actor,
                timeout=f"{int(window.total_seconds())}s",
                tags=[
                    f"{TAG_REQUEST}{request.id}",
                    f"{TAG_TOOL}{submission.tool}",
                    f"{TAG_INSTANCE}{locked.pk}",
                ],
                title=f"{locked.name} asks to run {submission.tool}"[:200],
                requested_by=f"aap:{locked.name}"[:254],
                approvers=route.approvers if route is not None else None,
                required_approvals=route.required_approvals if route is not None else None,
                decision_valid_for=f"{int(verdict.window.total_seconds())}s",
                now=moment,
                **policies.follow_ups(verdict, window),
            ).token
        except InvalidInput as error:
            raise AapError(error.message, status=400, code="invalid_request") from None
        request.token = token
        request.save(force_insert=True)
        if verdict.rule is not None and verdict.decides:
            # In this transaction, after the request row exists (its request.resolved event
            # needs it): nobody ever reads the request pending.
            policies.decide_by_rule(rule=verdict.rule, token=token, now=now)
        aap_paths.instance_touch(locked.pk, moment)
        return request, True


def request_get(*, instance: AapInstance | uuid.UUID, request_id: str) -> AapRequest:
    """The instance's own request, its token read with the database's clock; 404 alike for
    a malformed id, an unknown one and another instance's."""
    parsed = inputs.parse_id(request_id)
    if parsed is None:
        raise not_found()
    instance_id = instance.pk if isinstance(instance, AapInstance) else instance
    request = aap_paths.request_with_token(parsed, instance_id)
    if request is None:
        raise not_found()
    return request


def request_reread(request: AapRequest) -> AapRequest:
    """The request read again for a waiter already authorised for it (its instance is the
    one it was read with, not loaded again)."""
    return request_get(instance=request.instance_id, request_id=str(request.pk))


def request_cancel(*, instance: AapInstance, request_id: str, actor: Actor) -> AapRequest:
    """Pending → cancelled; cancelled again → the same; otherwise 409 ``already_terminal``."""
    request = request_get(instance=instance, request_id=request_id)
    lifecycle.token_cancel(token=request.token, actor=actor, reason="Withdrawn by the agent.")
    request = request_get(instance=instance, request_id=request_id)
    status = representation.status_of(request.token, timezone.now())
    if status != representation.CANCELLED:
        raise conflict(f"The request is already {status}.", code="already_terminal")
    return request


def _refused(error: consumption.ConsumptionRefused) -> AapError:
    return conflict(error.message, code=error.code)


def request_consume(
    *, instance: AapInstance, request_id: str, key: str, actor: Actor
) -> AapRequest:
    """Approved, within ``expires_at``, not yet consumed → consumed (the same key: a replay)."""
    request = request_get(instance=instance, request_id=request_id)
    try:
        consumption.token_consume(
            token=request.token, actor=actor, consumer=f"aap:{instance.name}"[:300], key=key
        )
    except consumption.ConsumptionRefused as error:
        raise _refused(error) from None
    return request_get(instance=instance, request_id=request_id)


def request_report_outcome(
    *, instance: AapInstance, request_id: str, body: dict[str, Any], actor: Actor
) -> AapRequest:
    """Consumed → the outcome (``succeeded`` / ``failed``); the same again: a replay."""
    report = inputs.clean_outcome(body)
    request = request_get(instance=instance, request_id=request_id)
    try:
        consumption.token_report_outcome(
            token=request.token, actor=actor, status=report.status, note=report.note
        )
    except consumption.ConsumptionRefused as error:
        raise _refused(error) from None
    except InvalidInput as error:
        raise AapError(error.message, status=400, code="invalid_field", param="note") from None
    return request_get(instance=instance, request_id=request_id)
