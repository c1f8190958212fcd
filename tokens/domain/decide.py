"""A person's decision: the only path by which one is validated, authorised and applied.

Every surface where a person approves or rejects (the confirmation page behind a callback URL
or a personal link, the dashboard, bulk review, and any surface to come) calls ``decide``. It

1. checks the person's **authority**: a project member's role (``tenancy.role_allows``), one
   of the request's named approvers (a personal link), or the holder of the callback URL;
2. validates the **decision**: its value, the comment, the request's input fields;
3. applies the request's rules about **who**: no anonymous decision where the request needs to
   know who decides, no approval of one's own request, one vote per person;
4. hands the decision to resolution: at once, or as a vote until the quorum is reached.

It raises ``DecisionInvalid`` (the decision itself, 400) or ``DecisionRefused`` (this person
may not decide so, 403, audited), each with a ``problem`` code that the surfaces word their own
way. ``check`` answers the same question without recording anything, for pages that show in
advance what a decision would do (bulk review).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens.delivery import chat
from tokens.domain import (
    approvals,
    audit,
    deadline,
    decisions,
    lifecycle,
    proposals,
    resolution,
    tenancy,
)
from tokens.domain.actors import Actor
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused
from tokens.domain.limits import MAX_COMMENT_LENGTH
from tokens.models import Membership, Token, TokenEvent, Vote, iso


@dataclass(frozen=True)
class Voter:
    """A person deciding: ``key`` identifies them across surfaces (a lower-cased e-mail address
    when known), ``label`` names them in the output, ``aliases`` are matched against
    ``requestedBy`` (their address and username, lower-cased)."""

    key: str
    label: str
    aliases: frozenset[str]

    @classmethod
    def for_email(cls, address: str) -> Voter:
        return cls(key=address.lower(), label=address, aliases=frozenset({address.lower()}))

    @classmethod
    def for_user(cls, *, username: str, email: str) -> Voter:
        key = email.lower() if email else f"user:{username.lower()}"
        aliases = {username.lower()} | ({email.lower()} if email else set())
        return cls(key=key, label=username, aliases=frozenset(aliases))


@dataclass(frozen=True)
class Authority:
    """Why this person may decide at all.

    ``member``: signed in, with ``role`` in the token's project (None: not a member);
    ``recipient``: one of the request's named approvers, proven by a personal link;
    ``link``: whoever holds the token's callback URL (the URL is the credential).
    """

    kind: Literal["member", "recipient", "link"]
    role: str | None = None

    @classmethod
    def member(cls, role: str | None) -> Authority:
        return cls(kind="member", role=role)

    @classmethod
    def recipient(cls) -> Authority:
        return cls(kind="recipient")

    @classmethod
    def link(cls) -> Authority:
        return cls(kind="link")


@dataclass(frozen=True)
class DecideResult:
    token: Token
    applied: bool  # the vote or decision was recorded (False: the token was already resolved)
    resolved: bool  # this decision resolved the token
    approvals: int = 0
    required: int = 1
    resolution: TokenEvent | None = None
    edited: bool = False  # this decision changed the request's proposal


@dataclass(frozen=True)
class Decision:
    """A decision that passed validation: its value, comment and typed field values."""

    value: str
    comment: str
    fields: dict[str, Any]


def _action(value: str) -> str:
    return "reject" if value == "rejected" else "approve"


def _refusal(
    token: Token, authority: Authority, voter: Voter | None, value: str
) -> DecisionRefused | None:
    """Whether this person may decide this token this way (without recording anything)."""
    if authority.kind == "member" and not tenancy.role_allows(authority.role, _action(value)):
        label = Membership.Role(authority.role).label.lower() if authority.role else "no"
        return DecisionRefused(
            f"Not allowed: as {label} in {token.environment.project} you cannot "
            f"{_action(value)} tokens. Nothing was changed.",
            problem="role",
            audit_action=_action(value),
        )
    if authority.kind == "recipient" and (
        voter is None or voter.key not in {address.lower() for address in token.approvers}
    ):
        return DecisionRefused(
            "Only the people this request was sent to can decide it.",
            problem="not_approver",
            audit_action="decide without being asked",
        )
    if voter is None and (token.required_approvals > 1 or bool(token.requested_by)):
        return DecisionRefused(
            "This request needs to know who decides: use your personal link from the e-mail, "
            "or the dashboard.",
            problem="anonymous",
            audit_action="decide anonymously",
        )
    if voter is not None and value == "approved" and token.requested_by.lower() in voter.aliases:
        return DecisionRefused(
            f"You requested this ({token.requested_by}), so you cannot approve it: "
            "another approver must.",
            problem="own_request",
            audit_action="approve own request",
        )
    if voter is not None and token.required_approvals > 1 and _has_voted(token, voter):
        return _voted_twice()
    return None


def _voted_twice() -> DecisionRefused:
    return DecisionRefused(
        "You already decided on this request; each person counts once.",
        problem="voted_twice",
        audit_action="vote twice",
    )


def _has_voted(token: Token, voter: Voter) -> bool:
    return Vote.objects.filter(token=token, voter=voter.key).exists()


def validate(token: Token, value: Any, comment: Any, fields: Mapping[str, Any] | None) -> Decision:
    """The decision as the request asks for it; ``DecisionInvalid`` saying what is wrong."""
    if value not in decisions.DECISIONS:
        raise DecisionInvalid("Choose Approve or Reject.", problem="decision")
    text = comment.strip() if isinstance(comment, str) else ""
    if not isinstance(comment, str | None):
        raise DecisionInvalid("The comment must be text.", problem="comment")
    if "\x00" in text:
        raise DecisionInvalid(
            "Comments cannot contain null characters (\\u0000).", problem="comment_nul"
        )
    if len(text) > MAX_COMMENT_LENGTH:
        raise DecisionInvalid(
            f"The comment is too long (at most {MAX_COMMENT_LENGTH} characters).",
            problem="comment_too_long",
        )
    typed, errors = decisions.clean_field_values(token.decision_spec, fields or {}, decision=value)
    if errors:
        raise DecisionInvalid(
            "Check the highlighted fields.", problem="fields", field_errors=errors
        )
    return Decision(value=value, comment=text, fields=typed)


def check(
    *,
    token: Token,
    authority: Authority,
    voter: Voter | None,
    decision: str,
    comment: str = "",
    fields: Mapping[str, Any] | None = None,
) -> DecisionInvalid | DecisionRefused | None:
    """What ``decide`` would refuse, without recording anything (None: it would go ahead)."""
    refusal = _refusal(token, authority, voter, decision)
    if refusal is not None:
        return refusal
    try:
        validate(token, decision, comment, fields)
    except DecisionInvalid as invalid:
        return invalid
    return None


def decide(
    *,
    token: Token,
    actor: Actor,
    authority: Authority,
    voter: Voter | None,
    decision: str,
    comment: str = "",
    fields: Mapping[str, Any] | None = None,
    proposal: Any = None,
    proposal_version: int | None = None,
    now: datetime | None = None,
) -> DecideResult:
    """A person approves or rejects.

    ``fields`` holds the request's input fields by name (strings from a form, or JSON values).
    ``proposal``: the request's proposal as this person approves it, edited or not (None: as
    it stands); ``proposal_version``: the version they saw, refused if it changed since. An
    edit is checked by ``proposals.check_edit`` (allowed fields, the schema) and kept in the
    audit trail as a JSON Patch; under a quorum it asks those who approved before it again.
    With ``required_approvals`` 1 the decision completes the token at once; otherwise it is a
    vote, and the N-th distinct approval (or the first rejection) resolves the token through
    ``resolution.resolve_one``, in the same transaction, with every vote in the output. A token
    already resolved is not an error: nothing is applied and the attempt is audited."""
    refusal = _refusal(token, authority, voter, decision)
    if refusal is not None and refusal.problem == "role":
        raise _audited(refusal, token, actor, now)
    valid = validate(token, decision, comment, fields)
    if refusal is not None:
        raise _audited(refusal, token, actor, now)
    edit = _edit_of(token, valid.value, proposal, proposal_version, actor, now)
    if token.required_approvals <= 1:
        by = voter.label if voter else None
        output = decisions.decision_output(valid.value, valid.comment, by=by, fields=valid.fields)
        detail, columns = _with_proposal(token, output, valid.value, edit)
        result = lifecycle.token_complete(
            token=token, actor=actor, data=output, now=now, detail=detail, fields=columns
        )
        return DecideResult(
            token=result.token,
            applied=result.applied,
            resolved=result.applied,
            approvals=int(result.applied and valid.value == "approved"),
            resolution=result.resolution,
            edited=result.applied and edit is not None,
        )
    assert voter is not None  # _refusal: a quorum needs to know who votes
    try:
        with transaction.atomic():
            return _vote(token, actor, voter, valid, edit, now)
    except IntegrityError as error:
        if not deadline.is_deadline_refusal(error):
            raise
    except _TooLate:
        pass
    except _AlreadyVoted:
        raise _audited(_voted_twice(), token, actor, now) from None
    except _Stale as stale:
        raise _stale(stale.version) from None
    with transaction.atomic():
        refused = lifecycle.refused(token, TokenEvent.Kind.COMPLETE_IGNORED, actor, now)
    return DecideResult(
        token=refused.token,
        applied=False,
        resolved=False,
        required=token.required_approvals,
        resolution=refused.resolution,
    )


class _TooLate(Exception):  # noqa: N818 - internal: roll a vote back with its transaction
    pass


class _Stale(Exception):  # noqa: N818 - internal: the proposal changed before the lock
    def __init__(self, version: int) -> None:
        self.version = version


def _stale(version: int) -> DecisionInvalid:
    return DecisionInvalid(
        f"The proposal changed while you were deciding (it is now version {version}): "
        "review it again. Nothing was recorded.",
        problem="proposal_stale",
    )


def _edit_of(
    token: Token,
    value: str,
    proposal: Any,
    version: int | None,
    actor: Actor,
    now: datetime | None,
) -> proposals.Edit | None:
    """What this decision changes in the proposal (None: nothing), or why it may not."""
    if version is not None and token.proposal is not None and version != token.proposal_version:
        raise _stale(token.proposal_version)
    try:
        edit = proposals.check_edit(token, proposal)
    except DecisionRefused as refused:
        raise _audited(refused, token, actor, now) from None
    if edit is not None and value != "approved":
        raise DecisionInvalid(
            "An edit goes with an approval: approve the edited proposal, or reject it as it "
            "stands. Nothing was recorded.",
            problem="proposal_with_rejection",
        )
    return edit


def _with_proposal(
    token: Token, output: dict[str, Any], value: str, edit: proposals.Edit | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put the final proposal into an approval's output; the audit detail and the columns
    that record an edit."""
    if token.proposal is None or value != "approved":
        return {}, {}
    final = edit.final if edit is not None else token.proposal
    edited = final != token.proposal_original
    output["proposal"] = final
    output["edited"] = edited
    if edit is None:
        return ({"proposal": _proposal_record(token, final)} if edited else {}), {}
    columns = {
        "proposal_current_json": json.dumps(final, ensure_ascii=False, separators=(",", ":")),
        "proposal_version": token.proposal_version + 1,
    }
    return {"proposal": _proposal_record(token, final)}, columns


def _proposal_record(token: Token, final: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of an approved, edited proposal: the original, the final version
    and the change between them as a JSON Patch (RFC 6902)."""
    return {
        "original": token.proposal_original,
        "final": final,
        "patch": proposals.patch_from_original(token, final),
    }


class _AlreadyVoted(Exception):  # noqa: N818 - internal: refused after the lock, audited after
    pass


def _vote(
    token: Token,
    actor: Actor,
    voter: Voter,
    decision: Decision,
    edit: proposals.Edit | None,
    now: datetime | None,
) -> DecideResult:
    # The row lock serialises the votes on one token: two final votes cannot both resolve it,
    # and neither is recorded against a token the other one resolved.
    locked = Token.objects.select_for_update().filter(deadline.waiting_q(now), pk=token.pk).first()
    if locked is None:
        raise _TooLate
    if locked.proposal_version != token.proposal_version:
        raise _Stale(locked.proposal_version)  # an edit won the lock: this one saw another
    if _has_voted(token, voter):
        raise _AlreadyVoted  # a concurrent vote of the same person won the lock
    moment = now or timezone.now()
    if edit is not None:
        _apply_edit(token, actor, voter, edit, moment)
    Vote.objects.create(
        token=token,
        voter=voter.key,
        label=voter.label,
        decision=decision.value,
        comment=decision.comment,
        fields=decision.fields,
        proposal_version=token.proposal_version,
        created_at=moment,
    )
    votes = list(Vote.objects.filter(token=token).order_by("id"))
    approvals = sum(
        vote.decision == "approved" and vote.proposal_version == token.proposal_version
        for vote in votes
    )
    required = token.required_approvals
    audit.record(
        token,
        TokenEvent.Kind.VOTED,
        actor,
        moment,
        decision=decision.value,
        by=voter.label,
        approvals=f"{approvals} of {required}",
    )
    if decision.value == "approved" and approvals < required:
        chat.voted(token, now=moment)  # the chat messages show the approvals so far
        return DecideResult(
            token=token,
            applied=True,
            resolved=False,
            approvals=approvals,
            required=required,
            edited=edit is not None,
        )
    output = decisions.decision_output(
        decision.value, decision.comment, by=voter.label, fields=decision.fields
    )
    detail, _columns = _with_proposal(token, output, decision.value, None)
    output["votes"] = [_vote_json(vote) for vote in votes]
    encoded, output_type = lifecycle.encode_output(output)
    outcome = resolution.Outcome(
        status=Token.Status.COMPLETED,
        event_kind=TokenEvent.Kind.COMPLETED,
        output=encoded,
        output_type=output_type,
        decision=decision.value,
        detail=detail,
    )
    event = resolution.resolve_one(token=token, outcome=outcome, actor=actor, now=now)
    if event is None:
        raise _TooLate  # the deadline passed between the lock and the update
    return DecideResult(
        token=token,
        applied=True,
        resolved=True,
        approvals=approvals,
        required=required,
        resolution=event,
        edited=edit is not None,
    )


def _apply_edit(
    token: Token, actor: Actor, voter: Voter, edit: proposals.Edit, moment: datetime
) -> None:
    """A new version of the proposal (under the token's lock): the approvals given to the
    version before no longer count, and those who gave them are asked again."""
    previous = token.proposal
    stale = list(Vote.objects.filter(token=token, decision="approved").exclude(voter=voter.key))
    Vote.objects.filter(pk__in=[vote.pk for vote in stale]).delete()
    token.proposal_current_json = json.dumps(edit.final, ensure_ascii=False, separators=(",", ":"))
    token.proposal_version += 1
    Token.objects.filter(pk=token.pk).update(
        proposal_current_json=token.proposal_current_json,
        proposal_version=token.proposal_version,
    )
    audit.record(
        token,
        TokenEvent.Kind.PROPOSAL_EDITED,
        actor,
        moment,
        by=voter.label,
        version=token.proposal_version,
        previous=previous,
        final=edit.final,
        patch=edit.patch,
        asked_again=[vote.label for vote in stale],
    )
    again = {vote.voter for vote in stale}
    addresses = [address for address in token.approvers if address.lower() in again]
    if addresses:
        approvals.enqueue_approval_emails(token, addresses, moment, purpose="edited")


def _vote_json(vote: Vote) -> dict[str, Any]:
    data: dict[str, Any] = {"by": vote.label, "status": vote.decision, "at": iso(vote.created_at)}
    if vote.comment:
        data["comment"] = vote.comment
    if vote.fields:
        data["fields"] = vote.fields
    return data


def _audited(
    refusal: DecisionRefused, token: Token, actor: Actor, now: datetime | None
) -> DecisionRefused:
    """Audit a refused decision (nothing else changes) and return the error to raise."""
    audit.record(
        token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=refusal.audit_action
    )
    return refusal
