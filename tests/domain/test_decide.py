"""tokens.domain.decide: the one path for a person's decision, checked directly.

Every problem is raised with its code (each surface words it), refusals are audited as DENIED
with what was attempted, invalid decisions change nothing and are not audited, and ``check``
predicts what ``decide`` does without recording anything."""

from __future__ import annotations

import pytest

from tokens.domain import actors, decide
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused
from tokens.domain.limits import MAX_COMMENT_LENGTH
from tokens.models import Membership, Token, TokenEvent

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()
ALICE = decide.Voter.for_email("alice@example.com")
FIELDS = {
    "fields": {
        "type": "object",
        "properties": {"amount": {"type": "integer"}},
        "required": ["amount"],
    }
}


def run(token: Token, *, authority=None, voter=ALICE, decision="approved", **kwargs):
    return decide.decide(
        token=token,
        actor=SYSTEM,
        authority=authority or decide.Authority.link(),
        voter=voter,
        decision=decision,
        **kwargs,
    )


def denied(token: Token) -> list[dict]:
    return list(token.events.filter(kind=TokenEvent.Kind.DENIED).values_list("detail", flat=True))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": ""}, "decision"),
        ({"comment": "x" * (MAX_COMMENT_LENGTH + 1)}, "comment_too_long"),
        ({"comment": "a\x00b"}, "comment_nul"),
        ({"comment": 42}, "comment"),
    ],
)
def test_an_invalid_decision_changes_nothing(make_token, kwargs, problem):
    token = make_token(timeout="1h")
    with pytest.raises(DecisionInvalid) as invalid:
        run(token, **kwargs)
    assert invalid.value.problem == problem
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert list(token.events.values_list("kind", flat=True)) == [TokenEvent.Kind.CREATED]


def test_a_required_field_is_required_to_approve_not_to_reject(make_token):
    token = make_token(timeout="1h", decision=FIELDS)
    with pytest.raises(DecisionInvalid) as invalid:
        run(token)
    assert invalid.value.problem == "fields"
    assert set(invalid.value.field_errors) == {"amount"}
    with pytest.raises(DecisionInvalid):
        run(token, fields={"amount": "a lot"})
    result = run(token, fields={"amount": "12"})
    assert result.resolved
    other = make_token(timeout="1h", decision=FIELDS)
    assert run(other, decision="rejected").resolved


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(None, False), (Membership.Role.VIEWER, False), (Membership.Role.APPROVER, True)],
)
def test_a_member_decides_only_with_a_deciding_role(make_token, role, allowed):
    token = make_token(timeout="1h")
    authority = decide.Authority.member(role)
    if allowed:
        assert run(token, authority=authority).resolved
        return
    with pytest.raises(DecisionRefused) as refused:
        run(token, authority=authority)
    assert refused.value.problem == "role"
    assert denied(token) == [{"action": "approve"}]


def test_the_role_is_checked_before_the_decision_is(make_token):
    """A viewer's forged POST is refused (and audited) as such, whatever it carried."""
    token = make_token(timeout="1h")
    with pytest.raises(DecisionRefused):
        run(token, authority=decide.Authority.member(Membership.Role.VIEWER), comment="a\x00")
    assert denied(token) == [{"action": "approve"}]


def test_a_recipient_must_be_one_the_request_was_sent_to(make_token):
    token = make_token(timeout="1h", approvers=["bob@example.com"])
    with pytest.raises(DecisionRefused) as refused:
        run(token, authority=decide.Authority.recipient(), voter=ALICE)
    assert refused.value.problem == "not_approver"
    bob = decide.Voter.for_email("BOB@example.com")
    assert run(token, authority=decide.Authority.recipient(), voter=bob).resolved


def test_identity_rules(make_token):
    quorum = make_token(timeout="1h", required_approvals=2)
    with pytest.raises(DecisionRefused) as refused:
        run(quorum, voter=None)
    assert refused.value.problem == "anonymous"
    own = make_token(timeout="1h", requested_by="alice@example.com")
    with pytest.raises(DecisionRefused) as refused:
        run(own)
    assert refused.value.problem == "own_request"
    assert run(own, decision="rejected").resolved  # withdrawing one's own request is fine
    run(quorum)
    with pytest.raises(DecisionRefused) as refused:
        run(quorum)
    assert refused.value.problem == "voted_twice"
    assert [d["action"] for d in denied(quorum)] == ["decide anonymously", "vote twice"]


def test_check_predicts_decide_and_records_nothing(make_token):
    cases = [
        (make_token(timeout="1h"), {"decision": "maybe"}, "decision"),
        (make_token(timeout="1h", decision=FIELDS), {}, "fields"),
        (make_token(timeout="1h", requested_by="alice@example.com"), {}, "own_request"),
        (
            make_token(timeout="1h"),
            {"authority": decide.Authority.member(Membership.Role.VIEWER)},
            "role",
        ),
        (make_token(timeout="1h"), {}, None),
    ]
    for token, kwargs, problem in cases:
        authority = kwargs.pop("authority", decide.Authority.link())
        predicted = decide.check(
            token=token,
            authority=authority,
            voter=ALICE,
            decision=kwargs.get("decision", "approved"),
        )
        assert (predicted.problem if predicted else None) == problem
        assert token.events.count() == 1  # created: check records nothing
        if problem is None:
            assert run(token, authority=authority).resolved
        else:
            with pytest.raises((DecisionInvalid, DecisionRefused)) as raised:
                run(token, authority=authority, **kwargs)
            assert raised.value.problem == problem
