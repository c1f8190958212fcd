"""Bulk approve and bulk reject go through a review page: what, how many, which environments
(production flagged), what is left out and why. Nothing is decided until Confirm; then each token
is decided on its own and the outcome is reported per token. A one-click approval in production
is reviewed the same way when the browser has not already asked."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member, messages_of, output_of
from tokens.domain import actors, decide, lifecycle, tenancy
from tokens.models import Membership, Token, TokenEvent

pytestmark = pytest.mark.django_db

NEEDS_INPUT = {
    "fields": {
        "type": "object",
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
    }
}


def hidden_ids(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="ids" value="([^"]+)">', html)


def rows_of(html: str, table: str) -> list[str]:
    """The data-token of each row of one review table ("review-included" / "review-excluded")."""
    match = re.search(rf'<table [^>]*id="{table}">(.*?)</table>', html, re.S)
    return re.findall(r'<tr data-token="([^"]+)"', match.group(1)) if match else []


@pytest.fixture
def prod(db):
    return tenancy.environment_get_or_create(project_slug="alice", slug="prod")


def only_created(token: Token) -> bool:
    token.refresh_from_db()
    kinds = set(token.events.values_list("kind", flat=True))
    return token.status == Token.Status.WAITING and kinds == {TokenEvent.Kind.CREATED}


# ------------------------------------------------------------------------------------------------
# The review step
# ------------------------------------------------------------------------------------------------


def test_it_reviews_before_deciding_and_lists_what_and_why_not(
    approver, make_token, other_environment, prod
) -> None:
    refund = make_token(prod, title="Refund 3,400 EUR", timeout="1h")
    deploy = make_token(title="Deploy api 2.4", timeout="30m")
    plain = make_token(timeout="2h")
    resolved = make_token(title="Old refund")
    lifecycle.token_complete(
        token=resolved, actor=actors.Actor.system(), data={"status": "approved"}
    )
    needs = make_token(title="Needs an amount", decision=NEEDS_INPUT)
    foreign = make_token(other_environment)
    selected = [refund, deploy, plain, resolved, needs, foreign]
    response = csrf_post(
        client_for(approver),
        "/tokens/bulk",
        {
            "ids": [t.friendly_id for t in selected],
            "decision": "approved",
            "comment": "batch of the day",
            "next": "/?env=prod",
        },
    )

    assert response.status_code == 200
    html = response.content.decode()
    for token in (refund, deploy, plain, needs, foreign):
        assert only_created(token), token.friendly_id
    assert '<h1 id="review-title">Approve 3 requests?</h1>' in html
    assert "Nothing has been decided yet." in html
    assert "<strong>3</strong> of 6 selected · 3 left out (below)" in html
    decidable = [refund.friendly_id, deploy.friendly_id, plain.friendly_id]
    assert rows_of(html, "review-included") == decidable
    assert hidden_ids(html) == decidable  # only those reach Confirm
    # What: titles and ids; which environment, production flagged; the deadline, machine-readable.
    assert "Refund 3,400 EUR" in html and f"<code>{refund.friendly_id}</code>" in html
    assert (
        '<span class="env-slug env-prod">Production</span> <span class="muted">· 1</span>' in html
    )
    assert (
        '<span class="env-slug env-dev">Development</span> <span class="muted">· 2</span>' in html
    )
    assert "<strong>Production:</strong> 1 of 3 requests is in a production environment." in html
    assert f'data-countdown datetime="{refund.timeout_at.isoformat()}"' in html
    # Left out, each with its reason.
    assert rows_of(html, "review-excluded") == [
        resolved.friendly_id,
        needs.friendly_id,
        foreign.friendly_id,
    ]
    assert "Already approved." in html
    assert "Approving it asks for input: open it to decide." in html
    assert "Not found in your projects." in html
    assert str(other_environment.project) not in html  # another tenant's token reveals nothing
    # Confirm carries the decision, the comment, where to go back and confirm=yes; Cancel goes back.
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert '<input type="hidden" name="next" value="/?env=prod">' in html
    assert 'value="batch of the day"' in html
    assert "Confirm: approve 3 requests" in html
    assert 'href="/?env=prod" id="review-cancel"' in html


def test_a_review_of_dev_tokens_flags_no_production(approver, make_token) -> None:
    tokens = [make_token(), make_token()]
    response = csrf_post(
        client_for(approver),
        "/tokens/bulk",
        {"ids": [t.friendly_id for t in tokens], "decision": "rejected"},
    )
    html = response.content.decode()
    assert '<h1 id="review-title">Reject 2 requests?</h1>' in html
    assert "review-production" not in html
    assert "Confirm: reject 2 requests" in html
    assert all(only_created(t) for t in tokens)


def test_it_leaves_out_my_own_request_and_one_i_already_voted_on(environment, make_token) -> None:
    april = member(environment, "april", Membership.Role.APPROVER)
    mine = make_token(title="My own", requested_by="april@example.com")
    voted = make_token(title="Two needed", required_approvals=2)
    decide.decide(
        authority=decide.Authority.link(),
        token=voted,
        actor=actors.Actor.system(),
        voter=decide.Voter.for_user(username="april", email="april@example.com"),
        decision="approved",
    )
    ok = make_token(title="Fine")
    ids = [mine.friendly_id, voted.friendly_id, ok.friendly_id]
    html = csrf_post(
        client_for(april), "/tokens/bulk", {"ids": ids, "decision": "approved"}
    ).content.decode()
    assert rows_of(html, "review-included") == [ok.friendly_id]
    assert "You requested it: another approver must approve it." in html
    assert "You already decided it." in html


def test_when_nothing_can_be_decided_there_is_no_confirm(approver, make_token) -> None:
    token = make_token()
    lifecycle.token_cancel(token=token, actor=actors.Actor.system(), reason="")
    html = csrf_post(
        client_for(approver), "/tokens/bulk", {"ids": [token.friendly_id], "decision": "approved"}
    ).content.decode()
    assert "Nothing to approve" in html
    assert "Already cancelled." in html
    assert 'name="confirm"' not in html and 'id="review-form"' not in html


# ------------------------------------------------------------------------------------------------
# Confirm
# ------------------------------------------------------------------------------------------------


def confirm(client, ids, decision="approved", **more):
    data = {"ids": ids, "decision": decision, "confirm": "yes", **more}
    return csrf_post(client, "/tokens/bulk", data)


def test_confirm_decides_each_token_and_reports_each_one(
    approver, make_token, other_environment
) -> None:
    first, second = make_token(title="Refund 12 EUR"), make_token()
    untouched = make_token()
    resolved = make_token()
    lifecycle.token_complete(token=resolved, actor=actors.Actor.system(), data="before")
    foreign = make_token(other_environment)
    ids = [t.friendly_id for t in (first, second, resolved, foreign)]
    response = confirm(
        client_for(approver), ids, comment="batch", next="/projects/alice/dev/tokens?tag=x"
    )
    assert response.status_code == 302
    assert response["Location"] == "/projects/alice/dev/tokens?tag=x"
    for token in (first, second):
        assert output_of(token) == {"status": "approved", "comment": "batch", "by": "april"}
    assert only_created(untouched)
    assert only_created(foreign)
    resolved.refresh_from_db()
    assert resolved.output == "before"
    assert messages_of(response) == [
        f"Approved 2 tokens: Refund 12 EUR ({first.friendly_id}); {second.friendly_id}.",
        f"Nothing changed on 1 token resolved meanwhile: {resolved.friendly_id}: completed.",
        f"Not found: {foreign.friendly_id}.",
    ]


def test_a_token_that_timed_out_after_the_review_is_reported_as_such(approver, make_token) -> None:
    token, other = make_token(title="Late one"), make_token()
    client = client_for(approver)
    ids = [token.friendly_id, other.friendly_id]
    review = csrf_post(client, "/tokens/bulk", {"ids": ids, "decision": "rejected"})
    assert hidden_ids(review.content.decode()) == ids
    lifecycle.token_force_timeout(token=token, actor=actors.Actor.system())  # meanwhile
    token.refresh_from_db()
    at = f"{token.completed_at:%H:%M}"
    response = confirm(client, ids, decision="rejected")
    assert messages_of(response) == [
        f"Rejected 1 token: {other.friendly_id}.",
        f"Nothing changed on 1 token resolved meanwhile: Late one ({token.friendly_id}): "
        f"timed out at {at} UTC.",
    ]
    assert output_of(other) == {"status": "rejected", "by": "april"}


def test_a_viewer_gets_a_review_with_everything_left_out_and_a_forged_confirm_is_audited(
    viewer, make_token
) -> None:
    tokens = [make_token(), make_token()]
    ids = [t.friendly_id for t in tokens]
    client = client_for(viewer)
    html = csrf_post(client, "/tokens/bulk", {"ids": ids, "decision": "approved"}).content.decode()
    assert rows_of(html, "review-excluded") == ids
    assert html.count("Your role in alice (viewer) cannot decide.") == 2
    assert 'id="review-form"' not in html
    assert all(only_created(t) for t in tokens)  # a review attempts nothing

    response = confirm(client, ids)
    for token in tokens:
        token.refresh_from_db()
        assert token.status == Token.Status.WAITING
        denied = token.events.get(kind=TokenEvent.Kind.DENIED)
        assert (denied.user, denied.detail) == (viewer, {"action": "approve"})
    assert messages_of(response) == [
        f"Not allowed for 2 tokens, your role there cannot decide: {ids[0]}; {ids[1]}."
    ]


def test_a_vote_on_a_request_that_needs_more_is_reported_with_the_count(
    approver, make_token
) -> None:
    token = make_token(required_approvals=2)
    response = confirm(client_for(approver), [token.friendly_id])
    assert messages_of(response) == [
        f"Your approval is recorded; more approvals needed on 1 token: {token.friendly_id}, 1 of 2."
    ]


def test_confirm_still_skips_a_request_that_needs_input(approver, make_token) -> None:
    token = make_token(decision=NEEDS_INPUT)
    response = confirm(client_for(approver), [token.friendly_id])
    assert messages_of(response) == [
        f"Not approved, approving asks for input (open each one): {token.friendly_id}."
    ]
    assert only_created(token)


def test_the_review_and_confirm_need_the_csrf_token(approver, make_token) -> None:
    token = make_token()
    client = client_for(approver)
    for data in (
        {"ids": [token.friendly_id], "decision": "approved"},
        {"ids": [token.friendly_id], "decision": "approved", "confirm": "yes"},
    ):
        assert client.post("/tokens/bulk", data).status_code == 403
    assert only_created(token)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"decision": "approved"}, "Select at least one token."),
        ({"ids": ["waitpoint_abc"], "decision": "maybe"}, "Select a valid choice."),
        ({"ids": ["not an id!"], "decision": "approved"}, "Select a valid choice."),
    ],
)
def test_bulk_refuses_bad_input(approver, data, error) -> None:
    response = csrf_post(client_for(approver), "/tokens/bulk", data)
    assert response.status_code == 302
    [message] = messages_of(response)
    assert message.startswith(error)


def test_bulk_is_post_only(approver) -> None:
    assert client_for(approver).get("/tokens/bulk").status_code == 405


# ------------------------------------------------------------------------------------------------
# One-click approval in production asks once more
# ------------------------------------------------------------------------------------------------


def test_a_quick_approval_in_production_is_reviewed_first_without_javascript(
    approver, make_token, prod
) -> None:
    token = make_token(prod, title="Refund 3,400 EUR", timeout="1h")
    client = client_for(approver)
    response = csrf_post(client, f"/tokens/{token.friendly_id}/approve", {"next": "/"})
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="review-title">Approve 1 request?</h1>' in html
    assert hidden_ids(html) == [token.friendly_id]
    assert "<strong>Production:</strong> 1 of 1 request is in a production environment." in html
    assert only_created(token)

    # The browser's own question answered (the script adds confirm=yes): decided at once.
    response = csrf_post(
        client, f"/tokens/{token.friendly_id}/approve", {"next": "/", "confirm": "yes"}
    )
    assert response["Location"] == "/"
    assert output_of(token) == {"status": "approved", "by": "april"}


def test_other_approvals_are_not_asked_again(approver, make_token, prod) -> None:
    dev = make_token()
    from_detail = make_token(prod)
    rejected = make_token(prod)
    client = client_for(approver)
    csrf_post(client, f"/tokens/{dev.friendly_id}/approve", {"next": "/"})  # not production
    csrf_post(client, f"/tokens/{from_detail.friendly_id}/approve", {})  # its own page
    csrf_post(client, f"/tokens/{rejected.friendly_id}/reject", {"next": "/"})  # a rejection
    assert output_of(dev)["status"] == output_of(from_detail)["status"] == "approved"
    assert output_of(rejected)["status"] == "rejected"


def test_one_token_selected_twice_is_listed_once(approver, make_token) -> None:
    token = make_token()
    bare = token.friendly_id.removeprefix("waitpoint_")
    data = {"ids": [token.friendly_id, bare], "decision": "approved"}
    html = csrf_post(client_for(approver), "/tokens/bulk", data).content.decode()
    assert hidden_ids(html) == [token.friendly_id]
    assert '<h1 id="review-title">Approve 1 request?</h1>' in html


def test_a_token_past_its_deadline_is_left_out_as_timed_out(approver, make_token) -> None:
    expired = make_token(timeout="1m", now=timezone.now() - timedelta(minutes=5))
    assert expired.status == Token.Status.WAITING  # no sweep has run: only the clock says so
    html = csrf_post(
        client_for(approver), "/tokens/bulk", {"ids": [expired.friendly_id], "decision": "approved"}
    ).content.decode()
    assert rows_of(html, "review-excluded") == [expired.friendly_id]
    assert f"Already timed out at {expired.timeout_at:%H:%M} UTC." in html
    assert 'id="review-form"' not in html
