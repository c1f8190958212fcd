"""The AAP wire form of instances and requests. A request's state is its token's, read through
``deadline.effective`` (an overdue token already reads ``expired``): the only mapping from
token statuses to AAP ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from tokens.domain import deadline, decisions
from tokens.models import AapInstance, AapRequest, Token, iso

PENDING, APPROVED, DENIED, EXPIRED, CANCELLED = (
    "pending",
    "approved",
    "denied",
    "expired",
    "cancelled",
)
DELETED_REASON = "The instance was deleted."
TAG_REQUEST = "aap-request:"
# What a completion of an AAP request's token may say: a person's decision, as the dashboard
# and the confirmation page write it (tokens.domain.decisions.decision_output).
DECISION_KEYS = frozenset({"status", "comment", "by", "fields"})


def tagged_as_request(token: Token) -> bool:
    """Whether the token carries an ``aap-request:`` tag: no query, so only a tagged token is
    looked up (the tag alone proves nothing, the row does)."""
    return any(isinstance(tag, str) and tag.startswith(TAG_REQUEST) for tag in token.tags or [])


def is_aap_token(token: Token) -> bool:
    """Whether the token is an AAP request (its tag, then its row: tags are the caller's)."""
    if not tagged_as_request(token):
        return False
    return AapRequest.objects.filter(token_id=token.pk).exists()


def is_decision_output(data: Any) -> bool:
    """``{"status": "approved"|"rejected", "comment"?: str, …}``: what an AAP token takes."""
    return (
        isinstance(data, dict)
        and data.get("status") in decisions.DECISIONS
        and set(data) <= DECISION_KEYS
        and isinstance(data.get("comment", ""), str)
    )


def decision_valid_for() -> timedelta:
    """How long an approval may be acted on (``decision.expires_at - decided_at``)."""
    return timedelta(seconds=int(settings.WAITPOINTS_AAP_APPROVAL_VALID_SECONDS))


def status_of(token: Token, now: datetime) -> str:
    state = deadline.effective(token, now)
    if state.status == Token.Status.WAITING:
        return PENDING
    if state.status == Token.Status.TIMED_OUT:
        return EXPIRED
    if state.status == Token.Status.CANCELLED:
        return CANCELLED
    # COMPLETED: AAP tokens complete only with a person's decision (tokens.domain.lifecycle
    # refuses other output for them); anything else would not permit a call.
    return APPROVED if token.decision == "approved" else DENIED


def instance_wire(instance: AapInstance) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(instance.id), "name": instance.name}
    if instance.delivery_url:
        out["delivery"] = {
            "type": "webhook",
            "url": instance.delivery_url,
            "registration_id": str(instance.delivery_registration_id),
        }
    return out


def _note(token: Token, status: str) -> str:
    if status in (APPROVED, DENIED):
        comment = decisions.decision_of(token.output, token.output_type).get("comment")
        return comment.strip() if isinstance(comment, str) else ""
    if status == CANCELLED:
        return token.cancel_reason.strip()
    return ""


def request_wire(request: AapRequest, token: Token, now: datetime) -> dict[str, Any]:
    status = status_of(token, now)
    out: dict[str, Any] = {"id": str(request.id), "tool": request.tool}
    if request.server is not None:
        out["server"] = request.server
    out["arguments"] = request.arguments
    out["timeout"] = request.timeout
    if request.agent_reasoning is not None:
        out["agent_reasoning"] = request.agent_reasoning
    if request.context_json is not None:
        out["context"] = request.context
    out["status"] = status
    out["created_at"] = iso(request.created_at)
    assert token.timeout_at is not None  # noqa: S101 - every AAP request has a deadline
    out["deadline_at"] = iso(token.timeout_at)
    if status == PENDING:
        return out
    state = deadline.effective(token, now)
    # Never before the request's creation, whatever two clocks say (created_at is the web
    # process's, decisions the database's).
    decided_at = max(state.completed_at or token.timeout_at, request.created_at)
    decision: dict[str, Any] = {"status": status, "decided_at": iso(decided_at)}
    if note := _note(token, status):
        decision["note"] = note
    if status == APPROVED:
        expires_at = token.decision_expires_at or decided_at + decision_valid_for()
        decision["expires_at"] = iso(expires_at)
    out["decision"] = decision
    if status == APPROVED and token.consumed_at is not None:
        consumed_at = max(token.consumed_at, decided_at)
        consumption: dict[str, Any] = {"consumed_at": iso(consumed_at)}
        if token.outcome_status and token.outcome_reported_at is not None:
            outcome: dict[str, Any] = {
                "status": token.outcome_status,
                "reported_at": iso(max(token.outcome_reported_at, consumed_at)),
            }
            if token.outcome_note:
                outcome["note"] = token.outcome_note
            consumption["outcome"] = outcome
        out["consumption"] = consumption
    return out
