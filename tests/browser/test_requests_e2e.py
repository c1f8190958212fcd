"""Requests approvers can decide, end to end in headless Chromium: a titled request with Markdown,
context and custom labels approved from a personal e-mail link on a 390 px phone; a 2-of-3
approval; a self-approval refused; an extended deadline on the dashboard."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import PHONE, flash, log_in, shoot, wait
from tokens.delivery import outbox
from tokens.domain import actors, lifecycle
from tokens.models import Token, TokenEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESCRIPTION = (
    "Customer **ACME GmbH** asks for a refund of order "
    "[4812](https://shop.example.com/orders/4812).\n\n"
    "- 2 × A-1 arrived damaged\n- photos attached in the ticket\n\n<script>alert(1)</script>"
)
CONTEXT = {
    "customer": "ACME GmbH",
    "amount": "3,400 EUR",
    "order": 4812,
    "lines": [{"sku": "A-1", "qty": 2, "price": 1700}],
}
DECISION = {
    "approve": "Refund",
    "reject": "Decline",
    "fields": {
        "properties": {
            "amount": {"type": "number", "title": "Amount to refund (EUR)"},
            "reason": {"type": "string", "enum": ["damaged", "late", "other"]},
        },
        "required": ["amount"],
    },
}


def create(environment, **kwargs) -> Token:
    return lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), timeout="2h", **kwargs
    ).token


def personal_links(live_server) -> dict[str, str]:
    mail.outbox.clear()
    outbox.deliver_due()
    links = {}
    for email in mail.outbox:
        match = re.search(r"http://testserver(/\S+/decide/\S+?)\?decision=approved", email.body)
        assert match, email.body
        links[email.to[0]] = f"{live_server.url}{match.group(1)}?decision=approved"
    return links


def stored(token: Token) -> dict:
    token.refresh_from_db()
    return json.loads(token.output)["json"]


def test_a_titled_request_is_approved_from_a_personal_link_on_a_phone(
    browser, live_server, payments, settings
) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1
    token = create(
        payments,
        approvers=["alice@example.com", "bob@example.com"],
        title="Refund order 4812 (3,400 EUR)",
        description=DESCRIPTION,
        context=CONTEXT,
        decision=DECISION,
    )
    links = personal_links(live_server)
    subjects = {email.subject for email in mail.outbox}
    assert subjects == {"Decision needed: Refund order 4812 (3,400 EUR) (Payments/prod)"}

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(links["alice@example.com"])
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    wait(browser).until(ec.presence_of_element_located((By.ID, "confirm-title")))
    inner, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert inner == 390 and scroll <= inner, f"horizontal scroll: {scroll}px in {inner}px"
    assert browser.find_element(By.ID, "confirm-title").text == "Refund order 4812 (3,400 EUR)"
    description = browser.find_element(By.CSS_SELECTOR, ".request-description")
    assert description.find_element(By.TAG_NAME, "strong").text == "ACME GmbH"
    assert "<script>alert(1)</script>" in description.text  # shown as text, never run
    link = description.find_element(By.TAG_NAME, "a")
    assert link.get_attribute("href") == "https://shop.example.com/orders/4812"
    rows = browser.find_elements(By.CSS_SELECTOR, ".request-context tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == list(CONTEXT)
    folded = browser.find_element(By.CSS_SELECTOR, ".request-context details")
    assert folded.find_element(By.TAG_NAME, "summary").text == "1 item"
    assert not folded.find_element(By.TAG_NAME, "pre").is_displayed()
    assert (
        "You are deciding as alice@example.com" in browser.find_element(By.ID, "deciding-as").text
    )
    refund = browser.find_element(By.CSS_SELECTOR, "button.approve")
    assert refund.text.endswith("Refund")
    assert browser.find_element(By.CSS_SELECTOR, "button.reject").text.endswith("Decline")
    # On a phone the request comes before the buttons.
    assert description.location["y"] < refund.location["y"]
    shoot(browser, "confirm-request-phone.png")

    refund.click()  # the amount is required: the server says so, nothing is decided
    error = wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".decision-field .error"))
    )
    assert "Amount to refund (EUR) is required." in error.text
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING

    browser.find_element(By.ID, "field_amount").send_keys("3400")
    Select(browser.find_element(By.ID, "field_reason")).select_by_visible_text("damaged")
    browser.find_element(By.ID, "comment").send_keys("Photos confirm the damage")
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    result = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result-title")))
    assert "Approved (Refund)" in result.text
    assert "By alice@example.com" in browser.find_element(By.CSS_SELECTOR, ".result").text
    shoot(browser, "confirm-request-approved-phone.png")
    assert stored(token) == {
        "status": "approved",
        "comment": "Photos confirm the damage",
        "by": "alice@example.com",
        "fields": {"amount": 3400, "reason": "damaged"},
    }
    event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (event.credential, event.email) == ("personal_link", "alice@example.com")


def press_approve(browser, url: str) -> str:
    browser.get(url)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "button.approve")))
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".result, .notice, .confirm .error")
    )
    return browser.find_element(By.CSS_SELECTOR, ".confirm").text


def test_two_of_three_approvers_approve_through_their_links(
    browser, live_server, payments, settings
) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1
    people = ["alice@example.com", "bob@example.com", "carol@example.com"]
    token = create(
        payments, approvers=people, title="Deploy 4.2 to production", required_approvals=2
    )
    links = personal_links(live_server)

    page = press_approve(browser, links["alice@example.com"])
    assert "Your approval is recorded" in page and "1 of 2" in page
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    shoot(browser, "confirm-one-of-two.png")

    page = press_approve(browser, links["bob@example.com"])
    assert "Approved" in page and "alice@example.com: approved" in page
    output = stored(token)
    assert [(v["by"], v["status"]) for v in output["votes"]] == [
        ("alice@example.com", "approved"),
        ("bob@example.com", "approved"),
    ]
    browser.get(links["carol@example.com"])
    assert "This request is closed" in browser.find_element(By.CSS_SELECTOR, ".confirm").text
    assert not browser.find_elements(By.CSS_SELECTOR, "button.approve")


def test_the_requester_cannot_approve_their_own_request(
    browser, live_server, payments, settings
) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1
    token = create(
        payments,
        approvers=["alice@example.com", "bob@example.com"],
        title="Raise my own credit limit",
        requested_by="alice@example.com",
    )
    links = personal_links(live_server)
    page = press_approve(browser, links["alice@example.com"])
    assert "You requested this (alice@example.com), so you cannot approve it" in page
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    assert token.events.get(kind=TokenEvent.Kind.DENIED).detail == {"action": "approve own request"}
    page = press_approve(browser, links["bob@example.com"])
    assert "Approved" in page and "By bob@example.com" in page


def test_an_admin_extends_the_deadline_on_the_dashboard(browser, live_server, payments) -> None:
    add_member(payments, "adam", "admin")
    token = create(payments, title="Nightly payout batch")
    old = token.timeout_at
    log_in(browser, live_server, "adam")
    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Nightly payout batch"
    browser.find_element(By.CSS_SELECTOR, "details.admin-actions summary").click()
    field = wait(browser).until(ec.visibility_of_element_located((By.ID, "extend-timeout")))
    field.send_keys("6h")
    browser.find_element(By.XPATH, "//button[normalize-space()='Extend deadline']").click()
    assert f"Extended {token.friendly_id} until" in flash(browser)
    token.refresh_from_db()
    assert token.timeout_at is not None and old is not None and token.timeout_at > old
    trail = browser.find_element(By.CSS_SELECTOR, ".timeline").text
    assert "Deadline extended" in trail
    shoot(browser, "dashboard-extended.png")


def test_the_decision_buttons_close_at_the_deadline(browser, live_server, payments) -> None:
    add_member(payments, "april", "approver")
    log_in(browser, live_server, "april")
    token = lifecycle.token_create(
        environment=payments, actor=actors.Actor.system(), timeout="4s", title="Short fuse"
    ).token
    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    approve = browser.find_element(By.CSS_SELECTOR, "form.decide-form button.approve")
    assert approve.is_enabled()
    wait(browser, 20).until(lambda d: not approve.is_enabled())
    note = browser.find_element(By.CSS_SELECTOR, "form.decide-form .deadline-passed").text
    assert note == "The deadline has passed: this request can no longer be decided."
    assert not browser.find_element(By.CSS_SELECTOR, "form.decide-form button.reject").is_enabled()
