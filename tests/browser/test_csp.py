"""The Content-Security-Policy in a real browser: it is enforced (an injected inline handler
does not run and is reported), and the pages that matter run under it without a single
violation: the dashboard as an admin (Copy buttons, typeahead, confirmations), the approval
link's confirmation page, and the support admin including the one-time API-key page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PASSWORD, add_member, policy_violations
from tokens.domain import actors, lifecycle, tenancy
from tokens.domain.links import callback_url
from tokens.models import Membership, Token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, 10)


@pytest.fixture
def environment(db):
    return tenancy.environment_get_or_create(project_slug="payments", slug="prod")


def log_in(driver, url: str, username: str) -> None:
    driver.get(url)
    wait(driver).until(ec.presence_of_element_located((By.ID, "id_username")))
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait(driver).until(lambda d: "login" not in d.current_url)


def test_the_policy_blocks_inline_script(browser, live_server, environment) -> None:
    browser.get(f"{live_server.url}/accounts/login/")
    browser.execute_script(
        "document.body.insertAdjacentHTML('beforeend',"
        ' \'<img src="/nowhere" onerror="window.__inline = 1">\')'
    )
    wait(browser).until(lambda d: policy_violations(d))
    assert browser.execute_script("return window.__inline === undefined")


def test_dashboard_pages_run_under_the_policy(browser, live_server, environment) -> None:
    add_member(environment, "adam", Membership.Role.ADMIN)
    token = lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), tags=["refund"], timeout="1h"
    ).token
    log_in(browser, f"{live_server.url}/", "adam")
    browser.get(f"{live_server.url}/projects/payments/prod/tokens?tag=refund")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-token]")))
    browser.find_element(By.ID, "id_tag").send_keys("re")  # the typeahead fetches /tags
    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy='#callback-url']")
    copy.click()
    wait(browser).until(lambda d: copy.text == "Copied")
    browser.get(f"{live_server.url}/projects/payments/prod/webhooks")
    wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert policy_violations(browser) == []


def test_the_approval_link_runs_under_the_policy(browser, live_server, environment) -> None:
    token = lifecycle.token_create(environment=environment, actor=actors.Actor.system()).token
    browser.get(callback_url(token, base=live_server.url))
    browser.find_element(By.CSS_SELECTOR, "form.confirm-form button.approve").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result")))
    assert Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED
    # The page's own stylesheet applied (it used to be an inline <style>).
    grid = browser.execute_script(
        "return getComputedStyle(document.querySelector('.confirm-summary') ||"
        " document.body).display"
    )
    assert grid in ("grid", "block")
    assert policy_violations(browser) == []


def test_the_admin_runs_under_the_policy(browser, live_server, environment, django_user_model):
    django_user_model.objects.create_superuser(username="sam", password=PASSWORD)
    log_in(browser, f"{live_server.url}/admin/", "sam")
    for path in ("/admin/", "/admin/tokens/token/", "/admin/tokens/apikey/add/"):
        browser.get(f"{live_server.url}{path}")
    browser.find_element(By.ID, "id_environment").send_keys("payments")
    browser.find_element(By.ID, "id_name").send_keys("ci")
    browser.find_element(By.NAME, "_save").click()
    secret = wait(browser).until(ec.presence_of_element_located((By.ID, "secret")))
    secret.click()  # static/admin-extras/select-on-focus.js selects it
    selected = browser.execute_script(
        "var e = document.getElementById('secret'); return e.selectionEnd - e.selectionStart"
    )
    assert selected == len(secret.get_attribute("value")) > 32
    assert secret.value_of_css_property("font-family") == "monospace"
    assert policy_violations(browser) == []


def test_the_api_docs_run_under_the_policy(browser, live_server) -> None:
    browser.get(f"{live_server.url}/api/docs/")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    assert policy_violations(browser) == []
