"""A token's life: create, complete, cancel, force a timeout, extend, and the timeout sweep.

Every exit from WAITING goes through ``tokens.domain.resolution``; a person's decision comes
through ``tokens.domain.decide`` first. A completion of a token already resolved is not an
error: the result says nothing was applied, and the attempt is audited.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens.delivery import chat
from tokens.domain import (
    approvals,
    audit,
    deadline,
    decisions,
    inputs,
    keys,
    markup,
    outcomes,
    proposals,
    resolution,
)
from tokens.domain.aap import representation as aap_representation
from tokens.domain.actors import Actor
from tokens.domain.durations import resolve_timeout, resolve_ttl
from tokens.domain.exceptions import InvalidInput, NotWaiting, OutputRefused
from tokens.models import Environment, Token, TokenEvent, iso
from tokens.persistence import fast_paths, selectors

CANCELLED_CODE = "WAITPOINT_CANCELLED"
NO_OUTPUT = object()  # "data" absent: the token completes without output


@dataclass(frozen=True)
class CreateResult:
    token: Token
    is_cached: bool


@dataclass(frozen=True)
class TransitionResult:
    token: Token
    applied: bool
    # Who resolved the token, for "already resolved" messages on human surfaces.
    resolution: TokenEvent | None = field(default=None)


def cancelled_output(reason: str) -> str:
    message = f"Cancelled: {reason}" if reason else "Cancelled"
    return json.dumps({"code": CANCELLED_CODE, "message": message}, separators=(",", ":"))


def encode_output(data: Any) -> tuple[str | None, str]:
    """Store output the way the SDK decodes it: strings as text/plain, the rest as super+json."""
    if data is NO_OUTPUT or data == "":
        return None, "application/json"
    if isinstance(data, str):
        return data, "text/plain"
    return json.dumps({"json": data}, separators=(",", ":"), ensure_ascii=False), (
        "application/super+json"
    )


def _default_timeout(now: datetime) -> datetime | None:
    default = (settings.WAITPOINTS_DEFAULT_TIMEOUT or "").strip()
    if default.lower() in ("", "none"):
        return None
    return resolve_timeout(default, now=now, field="WAITPOINTS_DEFAULT_TIMEOUT")


def token_create(
    *,
    environment: Environment,
    actor: Actor,
    timeout: Any = None,
    idempotency_key: Any = None,
    idempotency_key_ttl: Any = None,
    tags: Any = None,
    approvers: Any = None,
    title: Any = None,
    description: Any = None,
    context: Any = None,
    decision: Any = None,
    required_approvals: Any = None,
    requested_by: Any = None,
    remind_after: Any = None,
    escalate_after: Any = None,
    escalate_to: Any = None,
    slack_channel: Any = None,
    decision_valid_for: Any = None,
    on_timeout: Any = None,
    proposal: Any = None,
    proposal_schema: Any = None,
    proposal_editable: Any = None,
    now: datetime | None = None,
) -> CreateResult:
    """Nothing → WAITING token, or the original token while its idempotency key is active."""
    now = now or timezone.now()
    timeout_at = _default_timeout(now) if timeout is None else resolve_timeout(timeout, now=now)
    idempotency_key = inputs.clean_idempotency_key(idempotency_key)
    ttl = (
        settings.WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL
        if idempotency_key_ttl is None
        else idempotency_key_ttl  # "" is invalid like any other bad TTL, not "use the default"
    )
    key_expires_at = resolve_ttl(ttl, now=now) if idempotency_key else None
    if idempotency_key_ttl is not None and not idempotency_key:
        resolve_ttl(idempotency_key_ttl, now=now)  # still reject nonsense
    clean = inputs.clean_tags(tags)
    addresses = inputs.clean_approvers(approvers)
    request = inputs.RequestInfo(
        title=markup.clean_title(title),
        description=markup.clean_description(description),
        context=markup.clean_context(context),
        decision=decisions.clean_decision(decision),
        required_approvals=inputs.clean_required_approvals(required_approvals),
        requested_by=inputs.clean_requested_by(requested_by),
        decision_valid_for=inputs.clean_decision_valid_for(decision_valid_for),
    )
    follow_ups = inputs.clean_follow_ups(
        remind_after=remind_after,
        escalate_after=escalate_after,
        escalate_to=escalate_to,
        now=now,
        timeout_at=timeout_at,
    )
    routing = _chat_routing(environment, slack_channel, addresses)
    at_deadline = outcomes.plan(
        asked=on_timeout, environment=environment, tags=clean, timeout_at=timeout_at
    )
    offer = proposals.clean(proposal, proposal_schema, proposal_editable)

    # A create that writes nothing but its one statement (PostgreSQL: token, tags and event
    # together) is atomic by itself; BEGIN and COMMIT around it were two of its three round
    # trips. Anything else it writes (idempotency look-up, e-mails, follow-ups) needs the
    # transaction.
    alone = (
        not idempotency_key
        and not addresses
        and follow_ups.remind_at is None
        and follow_ups.escalate_at is None
        and at_deadline.escalate_at is None
        and fast_paths.insert_is_one_statement()
    )
    for _attempt in range(3):
        with contextlib.nullcontext() if alone else transaction.atomic():
            if idempotency_key:
                cached = _take_idempotent(environment, idempotency_key, now)
                if cached is not None:
                    return CreateResult(token=cached, is_cached=True)
            try:
                # A savepoint only with a key, where a concurrent insert may win it: without
                # one no constraint can fail, and the savepoint cost two round trips.
                with transaction.atomic() if idempotency_key else contextlib.nullcontext():
                    token = _insert_token(
                        environment,
                        actor,
                        now,
                        timeout_at,
                        idempotency_key,
                        key_expires_at,
                        clean,
                        addresses,
                        request,
                        follow_ups,
                        routing,
                        at_deadline,
                        offer,
                    )
            except IntegrityError:
                if not idempotency_key:
                    raise
                continue  # another request created it first: the next round returns that one
        return CreateResult(token=token, is_cached=False)
    raise RuntimeError("could not create or find the token for this idempotency key")


def _take_idempotent(environment: Environment, key: str, now: datetime) -> Token | None:
    """The active token for this key, or None after rotating an expired one out of the way."""
    existing = (
        Token.objects.select_for_update()
        .filter(environment=environment, active_key_digest=keys.idempotency_digest(key))
        .first()
    )
    if existing is None:
        return None
    expires_at = existing.idempotency_key_expires_at
    if expires_at is None or expires_at > now:
        return existing
    # Expired: the old token keeps `idempotency_key` for display but no longer deduplicates.
    Token.objects.filter(pk=existing.pk).update(active_key_digest=None)
    return None


def _insert_token(
    environment: Environment,
    actor: Actor,
    now: datetime,
    timeout_at: datetime | None,
    idempotency_key: str | None,
    key_expires_at: datetime | None,
    tags: list[str],
    approvers: list[str],
    request: inputs.RequestInfo,
    follow_ups: inputs.FollowUps,
    routing: dict[str, str],
    at_deadline: outcomes.Plan,
    offer: proposals.Proposal | None = None,
) -> Token:
    digest = keys.idempotency_digest(idempotency_key) if idempotency_key else None
    token = Token(
        environment=environment,
        timeout_at=at_deadline.timeout_at,
        on_timeout=at_deadline.spec,
        timeout_outcome=at_deadline.outcome,
        idempotency_key=idempotency_key,
        idempotency_key_digest=digest,
        active_key_digest=digest,
        idempotency_key_expires_at=key_expires_at,
        tags=tags,
        approvers=approvers,
        title=request.title,
        description=request.description,
        context_json=_json_text(request.context),
        decision_json=_json_text(request.decision),
        required_approvals=request.required_approvals,
        requested_by=request.requested_by,
        decision_valid_for=request.decision_valid_for,
        created_at=now,
    )
    if offer is not None:
        token.proposal_json = _json_text(offer.value) if offer.value else "{}"
        token.proposal_schema_json = _json_text(offer.schema)
        token.proposal_editable = offer.editable
    event = audit.build(token.pk, TokenEvent.Kind.CREATED, actor, now)
    fast_paths.insert_token(token, tags, event)
    if approvers:
        approvals.enqueue_approval_emails(token, approvers, now)
        chat.request_created(token, requested=routing, now=now)
    approvals.schedule_follow_ups(token, follow_ups, now)
    approvals.schedule_deadline_escalation(token, at_deadline, now)
    return token


def _chat_routing(
    environment: Environment, slack_channel: Any, approvers: list[str]
) -> dict[str, str]:
    """Where the request itself asks to be posted (``slackChannel``), checked before creating."""
    channel = inputs.clean_slack_channel(slack_channel)
    if channel and not approvers:
        raise InvalidInput(
            "Invalid slackChannel: only the request's approvers decide in Slack; "
            "name them in approvers."
        )
    if channel and not chat.connected(environment, "slack"):
        raise InvalidInput(
            "Invalid slackChannel: this environment is not connected to Slack "
            "(a project admin connects it on the dashboard)."
        )
    return {"slack": channel} if channel else {}


def _json_text(value: dict[str, Any] | None) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else ""


def _transition(
    *, token: Token, actor: Actor, outcome: resolution.Outcome, ignored: str, now: datetime | None
) -> TransitionResult:
    """Apply ``outcome`` through the one resolution function, or report why nothing changed."""
    try:
        with transaction.atomic():
            event = resolution.resolve_one(token=token, outcome=outcome, actor=actor, now=now)
    except IntegrityError as error:
        if not deadline.is_deadline_refusal(error):
            raise
        event = None  # committed too late: the deadline passed while this transaction ran
    if event is not None:
        return TransitionResult(token=token, applied=True, resolution=event)
    with transaction.atomic():
        return refused(token, ignored, actor, now)


def refused(token: Token, kind: str, actor: Actor, now: datetime | None) -> TransitionResult:
    """Nothing applied: persist an overdue timeout, audit the attempt, report who resolved it."""
    token.refresh_from_db()  # the in-memory row may hold a transition that was rolled back
    vars(token).pop("db_now", None)  # the clock of the read that found it is stale now
    # Refused while WAITING: the deadline passed (on the database's clock, or ``now``).
    waiting = token.status == Token.Status.WAITING and token.timeout_at is not None
    if waiting and resolution.expire_due(now=now, limit=1, token_ids=[token.pk]):
        token.refresh_from_db()
    audit.record(token, kind, actor, now or timezone.now(), status=token.status)
    return TransitionResult(
        token=token, applied=False, resolution=selectors.token_resolution_event(token=token)
    )


def token_complete(
    *,
    token: Token,
    actor: Actor,
    data: Any = NO_OUTPUT,
    now: datetime | None = None,
    detail: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> TransitionResult:
    """WAITING → COMPLETED with this output; the first writer wins, later ones change nothing.

    An output shaped as a person's decision (``{"status": "approved"|"rejected", …}``, what the
    dashboard and the confirmation page write) records that decision on the token. An Agent
    Approval Protocol request's token takes only that (``OutputRefused`` otherwise)."""
    if not aap_representation.is_decision_output(data) and aap_representation.is_aap_token(token):
        raise OutputRefused(
            'This token is an Agent Approval Protocol request: complete it with {"status": '
            '"approved" or "rejected", "comment": "…"} (the comment is optional). Nothing changed.'
        )
    output, output_type = encode_output(data)
    said = data.get("status") if isinstance(data, dict) else None
    outcome = resolution.Outcome(
        status=Token.Status.COMPLETED,
        event_kind=TokenEvent.Kind.COMPLETED,
        output=output,
        output_type=output_type,
        decision=said if said in decisions.DECISIONS else "",
        # What the completing event records besides, and columns written with it (a person's
        # edited proposal: domain.decide).
        detail=detail or {},
        fields=fields or {},
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.COMPLETE_IGNORED, now=now
    )


def token_cancel(
    *, token: Token, actor: Actor, reason: str = "", now: datetime | None = None
) -> TransitionResult:
    """WAITING → CANCELLED with an optional reason."""
    reason = inputs.clean_reason(reason)
    outcome = resolution.Outcome(
        status=Token.Status.CANCELLED,
        event_kind=TokenEvent.Kind.CANCELLED,
        output=cancelled_output(reason),
        output_is_error=True,
        cancel_reason=reason,
        detail={"reason": reason},
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.CANCEL_IGNORED, now=now
    )


def token_force_timeout(
    *, token: Token, actor: Actor, now: datetime | None = None
) -> TransitionResult:
    """WAITING → TIMED_OUT now (support staff and admins), as upstream's "Force timeout"."""
    outcome = resolution.Outcome(
        status=Token.Status.TIMED_OUT,
        event_kind=TokenEvent.Kind.TIMED_OUT,
        output_is_error=True,  # derived from completed_at (deadline.effective)
        detail={"forced": True},
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.TIMEOUT_IGNORED, now=now
    )


def token_extend(*, token: Token, actor: Actor, timeout: Any, now: datetime | None = None) -> Token:
    """Move a WAITING token's deadline to ``timeout`` (a duration from now or an ISO date).

    One conditional UPDATE: only while the token is WAITING and its old deadline has not passed,
    on the database's clock (as ``resolution.resolve_one``), so an extension never revives a
    token that readers already see as timed out, and a concurrent sweep either skips the row
    (it is locked) or resolves it first (then this refuses). Raises ``NotWaiting`` otherwise,
    audited as a refused extension."""
    moment = now or timezone.now()
    if timeout is None:
        raise InvalidInput('Invalid timeout: required, e.g. "1h" or an ISO-8601 date.')
    new_deadline = resolve_timeout(timeout, now=moment)
    with transaction.atomic():
        old = token.timeout_at
        updated = Token.objects.filter(deadline.waiting_q(now), pk=token.pk).update(
            timeout_at=new_deadline
        )
        if updated:
            token.refresh_from_db()
            audit.record(
                token,
                TokenEvent.Kind.EXTENDED,
                actor,
                moment,
                **{"from": iso(old) if old else "none", "to": iso(new_deadline)},
            )
            return token
    current = refused(token, TokenEvent.Kind.EXTEND_IGNORED, actor, now).token
    status = Token.Status(current.status).label.lower()
    raise NotWaiting(
        f"Cannot extend {current.friendly_id}: it is already {status}. "
        "Only a waiting token's deadline can move."
    )


def token_expire_due(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """WAITING tokens past timeout_at → TIMED_OUT, one statement and one transaction per batch;
    safe with several sweepers (see ``resolution.expire_due``)."""
    batch_size = batch_size or settings.WAITPOINTS_SWEEP_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            fast_paths.relax_durability()
            expired = resolution.expire_due(now=now, limit=batch_size)
        total += len(expired)
        if len(expired) < batch_size:
            return total


def token_action_denied(
    *, token: Token, actor: Actor, action: str, now: datetime | None = None
) -> TokenEvent:
    """Nothing changes: audit an attempt the caller's role does not allow (a forged POST)."""
    return audit.record(token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=action)


CREDENTIAL_AUDIT_INTERVAL = timedelta(minutes=1)


@transaction.atomic
def token_credential_refused(
    *, token: Token, actor: Actor, credential: str, now: datetime | None = None
) -> TokenEvent | None:
    """Nothing changes: audit a refused credential for this token (a wrong callback hash), at
    most once a minute per token, so that a flood of guesses cannot flood the audit trail."""
    now = now or timezone.now()
    recent = TokenEvent.objects.filter(
        token=token,
        kind=TokenEvent.Kind.AUTH_FAILED,
        created_at__gt=now - CREDENTIAL_AUDIT_INTERVAL,
    )
    if recent.exists():
        return None
    return audit.record(token, TokenEvent.Kind.AUTH_FAILED, actor, now, refused=credential)
