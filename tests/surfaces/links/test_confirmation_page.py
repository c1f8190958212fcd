"""The confirmation page behind an e-mailed callback URL (T17: mail scanners; T16: bad hashes)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tokens.domain import actors, lifecycle
from tokens.domain.links import callback_url
from tokens.models import Token, TokenEvent

SCANNER_AGENTS = [
    "Mozilla/5.0 (compatible; Microsoft Office Protocol Discovery; SafeLinks)",
    "Mozilla/5.0 (compatible; BingPreview/1.0b)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
]


@pytest.fixture
def browser() -> Client:
    # A real browser: CSRF is enforced (Django's test client skips it by default).
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def token(make_token) -> Token:
    return make_token(timeout="9m30s", tags=["refund", "customer:4812"])


def path_of(token: Token) -> str:
    return callback_url(token, base="")


def status_of(token: Token) -> str:
    token.refresh_from_db()
    return token.status


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def stored_output(token: Token) -> object:
    token.refresh_from_db()
    assert token.output_type == "application/super+json"
    return json.loads(token.output)["json"]


def assert_private_headers(response) -> None:
    assert response["Cache-Control"] == "no-store"
    # same-origin, not no-referrer: see tokens.surfaces.links.views._private (T17 allows either).
    assert response["Referrer-Policy"] == "same-origin"
    assert "noindex" in response["X-Robots-Tag"]
    assert response["X-Frame-Options"] == "DENY"


def test_it_never_changes_the_token_for_scanners_and_previews(browser: Client, token: Token):
    url = path_of(token)
    assert browser.head(url).status_code == 200
    for agent in SCANNER_AGENTS:  # three GETs, as scanners do before and at click time
        response = browser.get(url, headers={"user-agent": agent}, follow=True)
        assert response.status_code == 200
    assert browser.options(url).status_code == 405
    assert browser.get(url + "?decision=approved").status_code == 200
    assert browser.get(url + "?decision=rejected").status_code == 200

    assert status_of(token) == Token.Status.WAITING
    kinds = set(token.events.values_list("kind", flat=True))
    assert kinds == {TokenEvent.Kind.CREATED}


def test_it_renders_a_form_that_posts_with_a_csrf_token(browser: Client, token: Token):
    response = browser.get(path_of(token))

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert_private_headers(response)
    assert re.search(r'<form method="post"', html)
    assert csrf_from(html)
    assert 'name="decision" value="approved"' in html
    assert 'name="decision" value="rejected"' in html
    assert 'name="comment"' in html
    # Summary: project, environment, tags, created, time left.
    assert "alice" in html
    assert "Development" in html
    assert "refund" in html and "customer:4812" in html
    assert "Created" in html
    assert "in 9\xa0minutes" in html
    # No script at all (so nothing can auto-submit) and nothing from another origin.
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_it_only_preselects_a_decision(browser: Client, token: Token):
    html = browser.get(path_of(token) + "?decision=rejected").content.decode()

    reject = re.search(r"<button[^>]*value=\"rejected\"[^>]*>", html).group(0)
    approve = re.search(r"<button[^>]*value=\"approved\"[^>]*>", html).group(0)
    assert "preselected" in reject and "autofocus" in reject
    assert "preselected" not in approve and "autofocus" not in approve
    # The decision is carried only by the pressed button, never by a field sent by default.
    assert not re.search(r'<input[^>]*name="decision"', html)
    assert status_of(token) == Token.Status.WAITING


def test_it_approves_from_the_page_and_then_says_so(browser: Client, token: Token):
    url = path_of(token)
    csrf = csrf_from(browser.get(url + "?decision=approved").content.decode())

    response = browser.post(
        url + "?decision=approved",
        {"csrfmiddlewaretoken": csrf, "decision": "approved", "comment": "Looks right."},
        headers={"user-agent": "Mozilla/5.0 (iPhone)"},
    )

    assert response.status_code == 302
    assert response["Location"] == url
    assert status_of(token) == Token.Status.COMPLETED
    assert stored_output(token) == {"status": "approved", "comment": "Looks right."}
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert event.channel == TokenEvent.Channel.CALLBACK
    assert event.user_agent == "Mozilla/5.0 (iPhone)"
    assert event.ip == "127.0.0.1"

    page = browser.get(url)
    html = page.content.decode()
    assert_private_headers(page)
    assert "Approved" in html
    assert "Looks right." in html
    assert "Through an approval link" in html
    assert "<form" not in html


def test_it_rejects_from_the_page(browser: Client, token: Token):
    url = path_of(token)
    csrf = csrf_from(browser.get(url + "?decision=rejected").content.decode())

    browser.post(url, {"csrfmiddlewaretoken": csrf, "decision": "rejected", "comment": ""})

    assert status_of(token) == Token.Status.COMPLETED
    assert stored_output(token) == {"status": "rejected"}
    assert "Rejected" in browser.get(url).content.decode()


def test_it_refuses_a_post_without_the_csrf_token(browser: Client, token: Token):
    url = path_of(token)
    browser.get(url)  # the cookie alone is not enough

    response = browser.post(url, {"decision": "approved"})

    assert response.status_code == 403
    assert status_of(token) == Token.Status.WAITING


def test_it_refuses_a_post_with_a_forged_csrf_token(browser: Client, token: Token):
    url = path_of(token)
    browser.get(url)

    response = browser.post(url, {"csrfmiddlewaretoken": "x" * 64, "decision": "approved"})

    assert response.status_code == 403
    assert status_of(token) == Token.Status.WAITING


def test_it_decides_nothing_when_a_bot_submits_the_form_without_a_button(
    browser: Client, token: Token
):
    # Safe Links has been seen submitting forms: without a pressed button there is no decision.
    url = path_of(token)
    csrf = csrf_from(browser.get(url + "?decision=approved").content.decode())

    response = browser.post(url + "?decision=approved", {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 200
    assert "Choose Approve or Reject." in response.content.decode()
    assert status_of(token) == Token.Status.WAITING


def test_it_keeps_the_first_decision_and_tells_the_second(browser: Client, token: Token):
    url = path_of(token)
    csrf = csrf_from(browser.get(url).content.decode())
    browser.post(url, {"csrfmiddlewaretoken": csrf, "decision": "approved"})

    response = browser.post(url, {"csrfmiddlewaretoken": csrf, "decision": "rejected"})

    assert response.status_code == 302
    assert stored_output(token) == {"status": "approved"}
    html = browser.get(response["Location"]).content.decode()
    assert "Your decision was not recorded" in html
    assert "Approved" in html
    assert token.events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 1


def test_it_shows_the_friendly_page_for_a_bad_hash(browser: Client, token: Token):
    url = path_of(token)
    flipped = url[:-1] + ("0" if url[-1] != "0" else "1")

    prefix, digest = url.rsplit("/", 1)
    for bad in (flipped, url[:-10], f"{prefix}/{digest.upper()}", url + "00"):
        response = browser.get(bad)
        assert response.status_code == 404
        assert "This link is not valid" in response.content.decode()
        assert_private_headers(response)
    unknown = browser.get("/api/v1/waitpoints/tokens/waitpoint_cunknown0000/callback/" + "a" * 64)
    assert unknown.status_code == 404
    assert "This link is not valid" in unknown.content.decode()
    assert status_of(token) == Token.Status.WAITING


def test_it_says_when_a_token_was_resolved_elsewhere(
    browser: Client, token: Token, django_user_model
):
    user = django_user_model.objects.create_user(username="carol")
    actor = actors.Actor(channel=TokenEvent.Channel.DASHBOARD, user=user)
    lifecycle.token_complete(token=token, actor=actor, data={"status": "rejected", "by": "carol"})

    html = browser.get(path_of(token) + "?decision=approved").content.decode()

    assert "Rejected" in html
    assert "By carol" in html
    assert "<form" not in html


def test_it_says_when_a_token_timed_out(browser: Client, make_token):
    token = make_token(timeout="1h")
    Token.objects.filter(pk=token.pk).update(timeout_at=timezone.now() - timedelta(seconds=1))

    html = browser.get(path_of(token)).content.decode()

    assert "Timed out" in html
    assert "Nobody decided in time" in html
    assert "<form" not in html


def test_it_says_when_a_token_was_cancelled(browser: Client, token: Token):
    lifecycle.token_cancel(token=token, actor=actors.Actor.system(), reason="Order withdrawn")

    response = browser.get(path_of(token))

    html = response.content.decode()
    assert "Cancelled" in html
    assert "Order withdrawn" in html
    assert "<form" not in html
    assert_private_headers(response)


def test_it_answers_json_clients_with_upstreams_405(browser: Client, token: Token):
    response = browser.get(path_of(token), headers={"accept": "application/json"})

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
    assert response["Allow"] == "POST"
    assert status_of(token) == Token.Status.WAITING
