"""The error pages in headless Chromium, used as people would: each offers a way back that works
(at desktop width and on a 390 px phone). tests/browser/test_a11y.py checks their accessibility;
tests/surfaces/common/test_error_pages.py their statuses and the JSON on API paths."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PASSWORD, add_member
from tokens.domain import actors, lifecycle, tenancy
from tokens.domain.links import callback_url
from tokens.models import Membership, Token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture(autouse=True)
def _error_urls(settings):
    settings.ROOT_URLCONF = "tests.error_urls"  # a view that crashes on demand


@pytest.fixture
def environment(db):
    return tenancy.environment_get_or_create(project_slug="payments", slug="prod")


def wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, 10)


def error_heading(driver) -> str:
    # By its id: an <h1> could still be the previous page's while the next one loads.
    return wait(driver).until(ec.presence_of_element_located((By.ID, "error-title"))).text


def no_sideways_scroll(driver) -> None:
    width, scroll = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert scroll <= width, f"{driver.current_url} scrolls sideways: {scroll}px in {width}px"


def test_a_member_on_a_phone_finds_the_way_back_from_a_404(
    browser, live_server, environment
) -> None:
    add_member(environment, "april", Membership.Role.APPROVER)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(f"{live_server.url}/accounts/login/?next=/tokens/waitpoint_nosuchtoken")
    browser.find_element(By.ID, "id_username").send_keys("april")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    assert error_heading(browser) == "We could not find that page"
    assert browser.find_element(By.CLASS_NAME, "error-code").text.upper() == "ERROR 404"
    assert (
        browser.find_element(By.CLASS_NAME, "account-name").get_attribute("title").endswith("april")
    )
    no_sideways_scroll(browser)
    browser.find_element(By.LINK_TEXT, "Go to Waiting for me").click()
    wait(browser).until(ec.url_to_be(f"{live_server.url}/"))
    assert not browser.find_elements(By.ID, "error-title")


def test_an_expired_approval_form_leads_back_to_the_request(
    browser, live_server, environment
) -> None:
    token = lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), title="Deploy 2.4 to prod"
    ).token
    url = callback_url(token, base=live_server.url)
    browser.get(url)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "form.confirm-form")))
    browser.delete_cookie("csrftoken")  # as when cookies are blocked or the session moved on
    browser.find_element(By.CSS_SELECTOR, "form.confirm-form button.approve").click()
    assert error_heading(browser) == "This form expired, nothing was changed"
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING
    browser.find_element(By.LINK_TEXT, "Open the request again").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "form.confirm-form")))
    browser.find_element(By.CSS_SELECTOR, "form.confirm-form button.approve").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result")))
    assert Token.objects.get(pk=token.pk).status == Token.Status.COMPLETED


def test_the_500_page_on_a_phone_offers_the_login(browser, live_server, environment) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(f"{live_server.url}/test-errors/crash")
    assert error_heading(browser) == "Something went wrong on our side"
    # Its stylesheet loaded: the card is laid out, not bare HTML.
    radius = browser.execute_script(
        "return getComputedStyle(document.querySelector('.error-card')).borderTopLeftRadius"
    )
    assert radius == "10px"
    no_sideways_scroll(browser)
    browser.find_element(By.LINK_TEXT, "Log in").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "id_username")))
