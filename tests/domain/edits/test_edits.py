"""Approve with edits (tokens.domain.proposals through tokens.domain.decide): what create
accepts, what an edit may change, what the output and the audit keep, and a quorum's approvals
binding to the version they approved."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import actors, chain, decide
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused, InvalidInput
from tokens.models import OutboxMessage, Token, TokenEvent, Vote

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()
ANN = decide.Voter.for_email("ann@example.com")
BOB = decide.Voter.for_email("bob@example.com")
CAT = decide.Voter.for_email("cat@example.com")
PROPOSAL = {"to": "customer@example.com", "amount": 120, "note": "refund"}
SCHEMA = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "format": "email"},
        "amount": {"type": "integer", "minimum": 1, "maximum": 500},
        "note": {"type": "string", "maxLength": 20},
    },
    "required": ["to", "amount"],
    "additionalProperties": False,
}


def make(make_token, **kwargs) -> Token:
    kwargs.setdefault("proposal", PROPOSAL)
    kwargs.setdefault("proposal_schema", SCHEMA)
    kwargs.setdefault("approvers", ["ann@example.com", "bob@example.com", "cat@example.com"])
    return make_token(timeout="1h", **kwargs)


def approve(token: Token, voter=ANN, **kwargs):
    return decide.decide(
        token=token,
        actor=SYSTEM,
        authority=decide.Authority.recipient(),
        voter=voter,
        decision=kwargs.pop("decision", "approved"),
        **kwargs,
    )


def output_of(token: Token) -> dict:
    token.refresh_from_db()
    return json.loads(token.output)["json"]


# ------------------------------------------------------------------------------------------------
# Create
# ------------------------------------------------------------------------------------------------


def test_create_stores_the_proposal_in_the_callers_order(make_token):
    token = make(make_token, proposal_editable=["amount"])
    assert list(token.proposal) == ["to", "amount", "note"]
    stored = Token.objects.get(pk=token.pk)
    assert stored.proposal == PROPOSAL and stored.proposal_schema == SCHEMA
    assert (stored.proposal_editable, stored.proposal_version) == (["amount"], 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"proposal": [1, 2]}, "Invalid proposal: must be a JSON object"),
        ({"proposal": {"x": "y" * 40_000}, "proposal_schema": None}, "too large"),
        (
            {"proposal_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}},
            "not a valid JSON Schema at properties/a/type",
        ),
        ({"proposal_schema": {"type": "array"}}, 'its "type" must be "object"'),
        ({"proposal_schema": "object"}, "must be a JSON Schema object"),
        (
            {"proposal": {"to": "x@example.com", "amount": 900}},
            "amount: 900 is greater than the maximum of 500",
        ),
        ({"proposal_editable": "amount"}, "Invalid proposalEditable"),
        ({"proposal_editable": [1]}, "Invalid proposalEditable"),
        ({"proposal": None, "proposal_schema": SCHEMA}, "send proposal too"),
    ],
)
def test_create_refuses_bad_proposals_with_a_clear_message(make_token, kwargs, message):
    before = Token.objects.count()
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        make(make_token, **kwargs)
    assert Token.objects.count() == before


# ------------------------------------------------------------------------------------------------
# One approval
# ------------------------------------------------------------------------------------------------


def test_an_approval_without_edits_carries_the_proposal(make_token):
    token = make(make_token)
    result = approve(token)
    assert result.resolved and not result.edited
    assert output_of(token) == {
        "status": "approved",
        "by": "ann@example.com",
        "proposal": PROPOSAL,
        "edited": False,
    }


def test_an_edited_approval_carries_the_final_proposal_and_the_audit_the_patch(make_token):
    token = make(make_token)
    edited = {**PROPOSAL, "amount": 80}
    del edited["note"]
    result = approve(token, proposal=edited, proposal_version=1)
    assert result.resolved and result.edited
    output = output_of(token)
    assert output["proposal"] == edited and output["edited"] is True
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert event.detail["proposal"] == {
        "original": PROPOSAL,
        "final": edited,
        "patch": [
            {"op": "remove", "path": "/note"},
            {"op": "replace", "path": "/amount", "value": 80},
        ],
    }
    token.refresh_from_db()
    assert (token.proposal, token.proposal_original, token.proposal_version) == (
        edited,
        PROPOSAL,
        2,
    )
    assert chain.verify(token) is None


def test_a_schema_invalid_edit_names_each_field_and_changes_nothing(make_token):
    token = make(make_token)
    with pytest.raises(DecisionInvalid) as invalid:
        approve(token, proposal={"to": "c@example.com", "amount": 0, "extra": True})
    assert invalid.value.problem == "proposal"
    assert invalid.value.field_errors == {
        "proposal.(proposal)": "Additional properties are not allowed ('extra' was unexpected)",
        "proposal.amount": "0 is less than the minimum of 1",
    }
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal == PROPOSAL


@pytest.mark.parametrize(
    ("editable", "edit", "message"),
    [
        (False, {"amount": 80}, "This request's proposal cannot be edited"),
        (["amount"], {"to": "me@example.com"}, "Only amount may be edited, not to"),
        (["amount"], {"amount": 90, "note": "x"}, "Only amount may be edited, not note"),
    ],
)
def test_forbidden_edits_are_refused_audited_and_change_nothing(
    make_token, editable, edit, message
):
    token = make(make_token, proposal_editable=editable)
    with pytest.raises(DecisionRefused, match=message) as refused:
        approve(token, proposal={**PROPOSAL, **edit})
    assert refused.value.problem == "proposal_forbidden"
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and token.proposal == PROPOSAL
    assert token.events.filter(kind=TokenEvent.Kind.DENIED).count() == 1


def test_an_allowed_field_may_change(make_token):
    token = make(make_token, proposal_editable=["amount"])
    assert approve(token, proposal={**PROPOSAL, "amount": 99}).edited


def test_an_edit_goes_with_an_approval_not_a_rejection(make_token):
    token = make(make_token)
    with pytest.raises(DecisionInvalid, match="An edit goes with an approval"):
        approve(token, decision="rejected", proposal={**PROPOSAL, "amount": 5})
    assert approve(token, decision="rejected", proposal=PROPOSAL).resolved  # unchanged: fine


def test_an_edit_after_the_deadline_changes_nothing(make_token):
    token = make(make_token)
    late = token.timeout_at + timedelta(seconds=1)
    result = approve(token, proposal={**PROPOSAL, "amount": 7}, now=late)
    assert not result.applied and not result.edited
    token.refresh_from_db()
    assert token.status == Token.Status.TIMED_OUT and token.proposal == PROPOSAL
    assert token.proposal_version == 1


def test_a_token_without_a_proposal_refuses_one(make_token):
    token = make_token()
    with pytest.raises(DecisionInvalid, match="no proposal to edit"):
        decide.decide(
            token=token,
            actor=SYSTEM,
            authority=decide.Authority.link(),
            voter=None,
            decision="approved",
            proposal={"a": 1},
        )


# ------------------------------------------------------------------------------------------------
# A quorum: approvals bind to the version they approved
# ------------------------------------------------------------------------------------------------


def test_an_edit_under_a_quorum_asks_earlier_approvers_again(make_token):
    token = make(make_token, required_approvals=2)
    mail.outbox.clear()
    assert approve(token, ANN).approvals == 1
    edited = {**PROPOSAL, "amount": 60}
    result = approve(token, BOB, proposal=edited, proposal_version=1)
    assert result.edited and not result.resolved and result.approvals == 1  # Ann must re-approve
    token.refresh_from_db()
    assert token.proposal == edited and token.proposal_version == 2
    assert list(Vote.objects.filter(token=token).values_list("voter", "proposal_version")) == [
        ("bob@example.com", 2)
    ]
    event = token.events.get(kind=TokenEvent.Kind.PROPOSAL_EDITED)
    assert event.detail["asked_again"] == ["ann@example.com"]
    assert event.detail["patch"] == [{"op": "replace", "path": "/amount", "value": 60}]
    again = OutboxMessage.objects.filter(kind="approval_email", payload__purpose="edited")
    assert [m.payload["to"] for m in again] == ["ann@example.com"]
    outbox.deliver_due(now=timezone.now())
    assert any("changed" in m.subject.lower() for m in mail.outbox if m.to == ["ann@example.com"])
    # Ann saw version 1: her old page is stale now.
    with pytest.raises(DecisionInvalid, match="changed while you were deciding"):
        approve(token, ANN, proposal_version=1)
    final = approve(token, ANN, proposal_version=2)
    assert final.resolved
    output = output_of(token)
    assert output["proposal"] == edited and output["edited"] is True
    assert (
        token.events.get(kind=TokenEvent.Kind.COMPLETED).detail["proposal"]["original"] == PROPOSAL
    )
    assert chain.verify(token) is None


def test_an_approver_who_voted_cannot_edit_afterwards(make_token):
    token = make(make_token, required_approvals=2)
    approve(token, ANN)
    with pytest.raises(DecisionRefused, match="already decided"):
        approve(token, ANN, proposal={**PROPOSAL, "amount": 1})
    token.refresh_from_db()
    assert token.proposal == PROPOSAL
