""" "Not now" on a personal link's confirmation page: aside for that address, never a decision;
the plain callback URL (anonymous) cannot, and GET never changes anything."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tokens.domain.links import callback_url, personal_url
from tokens.models import Recipient, Snooze, Token, TokenEvent

pytestmark = pytest.mark.django_db


def form_post(url: str, data: dict):
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf
    return browser, browser.post(url, {"csrfmiddlewaretoken": csrf.group(1), **data})


def test_a_personal_link_puts_it_aside_for_its_address(make_token):
    token = make_token(timeout="1d", approvers=["ann@example.com"])
    url = personal_url(token, Recipient.objects.get(token=token), base="")
    assert 'name="not_now" value="aside"' in Client().get(url).content.decode()
    browser, response = form_post(url, {"not_now": "aside", "until": "1d"})
    assert response.status_code == 302 and response["Location"] == url
    snooze = Snooze.objects.get()
    assert snooze.person == "ann@example.com"
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING and not token.votes.exists()
    event = token.events.get(kind=TokenEvent.Kind.SNOOZED)
    assert event.email == "ann@example.com" and event.credential == "personal_link"
    page = browser.get(url).content.decode()
    assert "You put this aside until" in page and 'value="approved"' in page

    _browser, back = form_post(url, {"not_now": "clear"})
    assert back.status_code == 302 and back["Location"] == f"{url}?back=1"
    assert not Snooze.objects.exists()


def test_the_plain_callback_url_cannot_put_it_aside(make_token):
    token = make_token(timeout="1d", approvers=["ann@example.com"])
    url = callback_url(token, base="")
    assert 'value="aside"' not in Client().get(url).content.decode()
    _browser, response = form_post(url, {"not_now": "aside", "until": "1d"})
    assert response.status_code == 200
    assert "Not put aside" in response.content.decode()
    assert not Snooze.objects.exists()


def test_a_bad_time_is_shown_and_nothing_changes(make_token):
    token = make_token(timeout="1d", approvers=["ann@example.com"])
    url = personal_url(token, Recipient.objects.get(token=token), base="")
    _browser, response = form_post(url, {"not_now": "aside", "until": "someday"})
    assert response.status_code == 200 and "Invalid until" in response.content.decode()
    assert not Snooze.objects.exists()
