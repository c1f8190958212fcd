"""The Trigger.dev wire shape of a token: how it reads in the v1 API (retrieve, list, the answer
of complete and cancel), on the callback URL and in webhook bodies. camelCase, optional fields
omitted (never null), ISO dates. Three surfaces speak this one contract, so its status mapping
(a cancelled token reads as TIMED_OUT, the only terminal statuses the SDK knows) lives here
once; the dashboard, admin and AAP render statuses their own way."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokens.domain import deadline, keys, outcomes
from tokens.domain.durations import format_duration
from tokens.domain.links import callback_urls
from tokens.models import Token, iso
from tokens.persistence.rows import TokenRow


def v1_status(status: str) -> str:
    """The SDK accepts only three statuses: a cancelled token reads as TIMED_OUT."""
    return Token.Status.TIMED_OUT.value if status == Token.Status.CANCELLED else status


def v1_filter_statuses() -> dict[str, list[str]]:
    """The stored statuses each name of the v1 list's ``filter[status]`` selects: a status by
    the name the v1 API shows it under (TIMED_OUT: timed out and cancelled), and CANCELLED by
    its own name too."""
    selects: dict[str, list[str]] = {"CANCELLED": [Token.Status.CANCELLED]}
    for status in Token.Status.values:
        selects.setdefault(v1_status(status), []).append(status)
    return selects


def transition_body(token: Token, *, applied: bool, now: datetime) -> dict[str, Any]:
    """The answer of complete, callback and cancel: upstream's ``{"success": true}`` plus ours."""
    status = deadline.effective(token, now).status
    return {
        "success": True,
        "applied": applied,
        "status": v1_status(status),
        "statusDetail": status,
    }


class TokenOutputSerializer:
    """Renders a token for list items (``detail=False``) and retrieve (``detail=True``)."""

    def __init__(self, *, now: datetime, base: str, detail: bool) -> None:
        self.now, self.base, self.detail = now, base, detail
        self.callback_url = callback_urls(base=base)

    def to_representation(self, token: Token | TokenRow) -> dict[str, Any]:
        """A model instance, or (list items only) a row of ``persistence.rows``."""
        state: deadline.EffectiveState | None = None
        if self.detail:
            assert isinstance(token, Token)  # rows carry no output
            state = deadline.effective(token, self.now)
            status, completed_at = state.status, state.completed_at
        else:
            at = getattr(token, "db_now", None) or self.now
            status, completed_at = deadline.reads_as(
                token.status, token.timeout_at, token.timeout_outcome, token.completed_at, at
            )
        cancelled = status == Token.Status.CANCELLED
        data: dict[str, Any] = {
            "id": token.friendly_id,
            "url": self.callback_url(token),
            "status": v1_status(status),
            "statusDetail": status,
        }
        if completed_at:
            data["completedAt"] = iso(completed_at)
        if token.timeout_at:
            data["timeoutAt"] = iso(token.timeout_at)
            data["completedAfter"] = iso(token.timeout_at)
        if isinstance(token, Token) and self.detail:
            data["type"] = "MANUAL"  # upstream's waitpoint type for tokens
            data.update(_idempotency_of_retrieve(token))
        elif token.idempotency_key:  # list items: the caller's key only (upstream's list)
            data["idempotencyKey"] = token.idempotency_key
        if token.idempotency_key and token.idempotency_key_expires_at:
            data["idempotencyKeyExpiresAt"] = iso(token.idempotency_key_expires_at)
        data["tags"] = list(token.tags)
        # Our extensions (the SDK ignores fields it does not know); omitted when absent.
        if token.title:
            data["title"] = token.title
        if token.description:
            data["description"] = token.description
        if token.context:
            data["context"] = token.context
        if token.decision_spec:
            data["decision"] = token.decision_spec
        if token.required_approvals > 1:
            data["requiredApprovals"] = token.required_approvals
        if token.requested_by:
            data["requestedBy"] = token.requested_by
        if token.proposal_json:  # its latest version, edited or not (domain.proposals)
            data["proposal"] = token.proposal
            data["proposalVersion"] = token.proposal_version
            data["proposalEditable"] = token.proposal_editable
            if token.proposal_schema_json:
                data["proposalSchema"] = token.proposal_schema
        data["createdAt"] = iso(token.created_at)
        if cancelled and token.cancelled_at:
            data["cancelledAt"] = iso(token.cancelled_at)
        if token.on_timeout:
            data["onTimeout"] = outcomes.shown(token.on_timeout)
            escalates = outcomes.escalates_at(token.on_timeout)
            if escalates is not None:
                data["escalatesAt"] = iso(escalates)
        data.update(consumption_fields(token))
        if state is not None:  # detail
            if state.output is not None:
                data["output"] = state.output
            data["outputType"] = state.output_type
            data["outputIsError"] = state.output_is_error
        return data


def _idempotency_of_retrieve(token: Token) -> dict[str, Any]:
    """Upstream's retrieve always says ``idempotencyKey`` and ``userProvidedIdempotencyKey``:
    the caller's key while it deduplicates; a random one when none was given; after the key
    expired and a new token took it over, a random one again, with the caller's key as
    ``inactiveIdempotencyKey``."""
    placeholder = keys.placeholder_idempotency_key(token.id)
    if not token.idempotency_key:
        return {"idempotencyKey": placeholder, "userProvidedIdempotencyKey": False}
    if token.active_key_digest is None:  # rotated (lifecycle._take_idempotent)
        return {
            "idempotencyKey": placeholder,
            "userProvidedIdempotencyKey": True,
            "inactiveIdempotencyKey": token.idempotency_key,
        }
    return {"idempotencyKey": token.idempotency_key, "userProvidedIdempotencyKey": True}


def consumption_fields(token: Token | TokenRow) -> dict[str, Any]:
    """Our extensions for single use (``tokens.domain.consumption``): how long an approval may
    be acted on (``decisionValidFor`` as asked on create, e.g. ``15m``; ``decisionExpiresAt``,
    fixed when it was approved) and its first consumption. Omitted when absent."""
    data: dict[str, Any] = {}
    if token.decision_valid_for is not None:
        data["decisionValidFor"] = format_duration(token.decision_valid_for)
    if token.decision_expires_at is not None:
        data["decisionExpiresAt"] = iso(token.decision_expires_at)
    if token.consumed_at is not None:
        data["consumedAt"] = iso(token.consumed_at)
        if token.consumed_by:
            data["consumedBy"] = token.consumed_by
    return data
