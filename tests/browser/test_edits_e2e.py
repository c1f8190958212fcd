"""In headless Chromium on a 390 px phone: an approver edits a proposal on the confirmation
page (the generated form, then the raw JSON) and on the dashboard before approving."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import PHONE, log_in, shoot, wait
from tests.browser.test_review_and_links import keep_size
from tokens.domain import actors, lifecycle
from tokens.domain.links import personal_url
from tokens.models import Token
from tokens.persistence import selectors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROPOSAL = {
    "recipient": "customer-4411@example.com",
    "amount": 340,
    "currency": "EUR",
    "notify": True,
    "lines": [{"sku": "A-1", "qty": 2}],
}
SCHEMA = {
    "type": "object",
    "properties": {
        "recipient": {"type": "string", "title": "Refund to"},
        "amount": {"type": "integer", "minimum": 1, "maximum": 500, "title": "Amount"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "notify": {"type": "boolean", "title": "E-mail the customer"},
        "lines": {"type": "array"},
    },
    "required": ["recipient", "amount"],
}


def create(environment, **kwargs) -> Token:
    return lifecycle.token_create(
        environment=environment,
        actor=actors.Actor.system(),
        timeout="2h",
        title="Refund order 4411",
        proposal=PROPOSAL,
        proposal_schema=SCHEMA,
        **kwargs,
    ).token


def output_of(token: Token) -> dict:
    token.refresh_from_db()
    return json.loads(token.output)["json"]


def field(browser, name: str):
    return browser.find_element(By.CSS_SELECTOR, f"[name='{name}']")


def test_an_approver_edits_on_the_confirmation_page_of_a_phone(browser, live_server, payments):
    token = create(payments, approvers=["ann@example.com"], proposal_editable=["amount", "notify"])
    (recipient,) = selectors.recipient_list_for_token(token=token)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(personal_url(token, recipient, base=live_server.url))
    amount = wait(browser).until(ec.presence_of_element_located((By.NAME, "proposal.amount")))
    keep_size(browser, "phone")
    assert field(browser, "proposal.recipient").get_attribute("readonly") == "true"
    assert amount.get_attribute("type") == "number"
    # Too much: the server says so at the field, nothing is decided.
    amount.clear()
    amount.send_keys("900")
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    error = wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".proposal-field .error"))
    )
    assert error.text == "900 is greater than the maximum of 500"
    keep_size(browser, "phone")
    shoot(browser, "confirm-edit-error-phone.png")
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    # Within the schema: approved with the edit.
    amount = field(browser, "proposal.amount")
    amount.clear()
    amount.send_keys("300")
    field(browser, "proposal.notify").click()  # untick
    shoot(browser, "confirm-edit-phone.png")
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(browser).until(lambda d: "?" not in d.current_url or "voted" in d.current_url)
    wait(browser).until(lambda _d: Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED)
    output = output_of(token)
    assert output["proposal"] == {**PROPOSAL, "amount": 300, "notify": False}
    assert output["edited"] is True


def test_an_approver_edits_the_raw_json_on_the_dashboard_of_a_phone(browser, live_server, payments):
    add_member(payments, "april", "approver")
    token = create(payments)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    log_in(browser, live_server, "april")
    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    wait(browser).until(ec.presence_of_element_located((By.NAME, "proposal.amount")))
    keep_size(browser, "phone")
    raw = browser.find_element(By.CSS_SELECTOR, "details.proposal-raw")
    assert raw.get_attribute("open") == "true"  # "lines" is only editable as JSON
    textarea = field(browser, "proposal_json")
    edited = {**PROPOSAL, "lines": [{"sku": "A-1", "qty": 1}]}
    textarea.clear()
    textarea.send_keys(json.dumps(edited))
    keep_size(browser, "phone")
    shoot(browser, "dashboard-edit-json-phone.png")
    browser.find_element(By.CSS_SELECTOR, "form.decide-form button.approve").click()
    wait(browser).until(lambda _d: Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED)
    assert output_of(token)["proposal"] == edited
    assert output_of(token)["by"] == "april"
