"""Requests approvers can decide (4): requiredApprovals (N distinct people), requestedBy (never
approves their own request), votes audited, and two concurrent final votes applied exactly once."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from django.test import Client

from tests.domain.test_races import run_together
from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, url_of
from tokens.delivery import outbox
from tokens.domain import actors, decide, lifecycle
from tokens.domain.exceptions import DecisionRefused
from tokens.domain.links import callback_url
from tokens.models import Membership, Token, TokenEvent, Vote

ALICE, BOB, CAROL = (decide.Voter.for_email(f"{n}@example.com") for n in ("alice", "bob", "carol"))
SYSTEM = actors.Actor.system()


def output_of(token: Token) -> dict:
    token.refresh_from_db()
    return json.loads(token.output)["json"]


def vote(token: Token, voter, decision: str = "approved", **kwargs) -> decide.DecideResult:
    return decide.decide(
        authority=decide.Authority.link(),
        token=token,
        actor=SYSTEM,
        voter=voter,
        decision=decision,
        **kwargs,
    )


def test_the_api_takes_and_returns_required_approvals_and_requested_by(api_client):
    body = {"requiredApprovals": 2, "requestedBy": "rita@example.com"}
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200, response.content
    data = api_client.get(url_of(response.json()["id"])).json()
    assert (data["requiredApprovals"], data["requestedBy"]) == (2, "rita@example.com")
    plain = api_client.post(TOKENS, {}, format="json").json()["id"]
    assert not {"requiredApprovals", "requestedBy"} & set(api_client.get(url_of(plain)).json())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"requiredApprovals": 0}, "Invalid requiredApprovals: expected an integer from 1 to 20."),
        (
            {"requiredApprovals": "2"},
            "Invalid requiredApprovals: expected an integer from 1 to 20.",
        ),
        (
            {"requiredApprovals": True},
            "Invalid requiredApprovals: expected an integer from 1 to 20.",
        ),
        ({"requestedBy": ""}, "Invalid requestedBy: expected an e-mail address or a username"),
        ({"requestedBy": 7}, "Invalid requestedBy: expected an e-mail address or a username"),
    ],
)
def test_it_refuses_bad_values(api_client, body, message):
    error = assert_error(api_client.post(TOKENS, body, format="json"), 400)["error"]
    assert error.startswith(message)


def test_two_of_three_completes_at_the_second_distinct_approval(make_token):
    token = make_token(required_approvals=2, approvers=["alice@example.com", "bob@example.com"])
    first = vote(token, ALICE, comment="fine by me")
    assert (first.applied, first.resolved, first.approvals, first.required) == (True, False, 1, 2)
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    with pytest.raises(DecisionRefused, match="each person counts once"):
        vote(token, decide.Voter.for_email("ALICE@example.com"))  # the same person
    second = vote(token, BOB)
    assert (second.applied, second.resolved) == (True, True)
    output = output_of(token)
    assert output["status"] == "approved" and output["by"] == "bob@example.com"
    assert [(v["by"], v["status"]) for v in output["votes"]] == [
        ("alice@example.com", "approved"),
        ("bob@example.com", "approved"),
    ]
    assert output["votes"][0]["comment"] == "fine by me"
    kinds = list(token.events.values_list("kind", flat=True))
    assert kinds.count("voted") == 2 and kinds.count("completed") == 1
    denied = token.events.get(kind=TokenEvent.Kind.DENIED)
    assert denied.detail == {"action": "vote twice"}


def test_the_first_rejection_closes_the_request(make_token):
    token = make_token(required_approvals=3)
    vote(token, ALICE)
    result = vote(token, BOB, "rejected", comment="not now")
    assert result.resolved
    output = output_of(token)
    assert (output["status"], output["by"], output["comment"]) == (
        "rejected",
        "bob@example.com",
        "not now",
    )
    assert len(output["votes"]) == 2
    late = vote(token, CAROL)
    assert (late.applied, late.resolved) == (False, False)
    assert Vote.objects.filter(token=token).count() == 2


def test_the_requester_can_never_approve_their_own_request(make_token):
    token = make_token(requested_by="Alice@Example.com")
    with pytest.raises(DecisionRefused, match=r"You requested this \(Alice@Example.com\)"):
        vote(token, ALICE)
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert token.events.get(kind=TokenEvent.Kind.DENIED).detail == {"action": "approve own request"}
    assert vote(token, ALICE, "rejected").resolved  # withdrawing is fine


def test_a_user_matches_requested_by_by_username_or_email(make_token):
    token = make_token(requested_by="april")
    voter = decide.Voter.for_user(username="april", email="april@example.com")
    with pytest.raises(DecisionRefused):
        vote(token, voter)


def test_the_plain_url_cannot_decide_where_the_request_needs_to_know_who(make_token):
    token = make_token(required_approvals=2)
    with pytest.raises(DecisionRefused, match="needs to know who decides"):
        vote(token, None)


@pytest.fixture(autouse=True)
def _inline_sender(settings) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1


def personal_links(token: Token) -> dict[str, str]:
    outbox.deliver_due()
    links = {}
    for email in mail.outbox:
        match = re.search(r"http://testserver(/\S+/decide/\S+?)\?decision=approved", email.body)
        assert match
        links[email.to[0]] = match.group(1)
    return links


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match.group(1)


def approve_through(path: str, decision: str = "approved") -> tuple[Client, str]:
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(path).content.decode()
    if 'name="decision"' not in html:
        return browser, html  # nothing to press: decided already, or closed
    response = browser.post(path, {"csrfmiddlewaretoken": csrf_from(html), "decision": decision})
    if response.status_code == 302:
        return browser, browser.get(response["Location"]).content.decode()
    return browser, response.content.decode()


def test_two_of_three_through_personal_links(make_token):
    addresses = ["alice@example.com", "bob@example.com", "carol@example.com"]
    token = make_token(required_approvals=2, approvers=addresses, title="Deploy")
    links = personal_links(token)
    _, page = approve_through(links["alice@example.com"])
    assert "Your approval is recorded" in page and "1 of 2" in page
    assert "You approved this request" in page and 'name="decision"' not in page
    _, page = approve_through(links["bob@example.com"])
    assert "Approved" in page and "alice@example.com: approved" in page
    token.refresh_from_db()
    assert token.status == Token.Status.COMPLETED
    _, page = approve_through(links["carol@example.com"])
    assert "This request is closed" in page
    assert Vote.objects.filter(token=token).count() == 2


def test_the_confirmation_page_refuses_a_self_approval_with_a_clear_message(make_token):
    token = make_token(requested_by="alice@example.com", approvers=["alice@example.com"])
    _, page = approve_through(personal_links(token)["alice@example.com"])
    assert "You requested this (alice@example.com), so you cannot approve it" in page
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_the_plain_callback_page_asks_for_a_personal_link_when_votes_count(make_token):
    token = make_token(required_approvals=2)
    _, page = approve_through(callback_url(token, base=""))
    assert "needs to know who decides" in page
    assert not Vote.objects.exists()


def test_the_dashboard_counts_a_user_and_their_email_link_as_one_person(environment, make_token):
    april = member(environment, "april", Membership.Role.APPROVER)
    token = make_token(required_approvals=2, approvers=["april@example.com"])
    client = client_for(april)
    response = csrf_post(client, f"/tokens/{token.friendly_id}/approve", {}, follow=True)
    assert "Your approval of" in response.content.decode() and "1 of 2" in response.content.decode()
    _, page = approve_through(personal_links(token)["april@example.com"])
    assert "You approved this request" in page  # the same person, whichever surface
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


def test_the_dashboard_refuses_a_self_approval(environment, make_token):
    april = member(environment, "april", Membership.Role.APPROVER)
    token = make_token(requested_by="april@example.com")
    response = csrf_post(client_for(april), f"/tokens/{token.friendly_id}/approve", {}, follow=True)
    assert "Not recorded: You requested this (april@example.com)" in response.content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_final_votes_apply_exactly_once(environment):
    for round_ in range(5):
        token = lifecycle.token_create(
            environment=environment, actor=SYSTEM, timeout="1h", required_approvals=2
        ).token
        vote(token, ALICE)
        results = run_together(
            [
                lambda t=token: vote(Token.objects.get(pk=t.pk), BOB),
                lambda t=token: vote(Token.objects.get(pk=t.pk), CAROL),
            ]
        )
        resolved = [r for r in results if r.resolved]
        assert len(resolved) == 1, (round_, results)
        loser = next(r for r in results if not r.resolved)
        assert not loser.applied  # recorded nowhere: the token was resolved first
        assert Vote.objects.filter(token=token).count() == 2
        assert token.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1
        assert len(output_of(token)["votes"]) == 2
