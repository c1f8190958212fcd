"""End to end in headless Chromium: log in, filter by tag, approve, see the SDK-visible output;
a viewer cannot approve; the phone layout. Screenshots go to $WAITPOINTS_SCREENSHOTS."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PASSWORD, SCREENSHOTS, add_member
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Token, TokenEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture
def world(payments, onboarding):
    """Realistic tokens for the pages and their screenshots."""
    now = timezone.now()

    def make(env, minutes_ago, timeout, tags, **kwargs):
        return lifecycle.token_create(
            environment=env,
            actor=actors.Actor.system(),
            timeout=timeout,
            tags=tags,
            now=now - timedelta(minutes=minutes_ago),
            **kwargs,
        ).token

    # Created oldest first: ids are time-ordered by the real clock, as in production.
    cancelled = make(payments, 120, "3h", ["payout", "vendor:globex"])
    lifecycle.token_cancel(token=cancelled, actor=actors.Actor.system(), reason="duplicate")
    done = make(payments, 90, "2h", ["refund", "customer:310"])
    lifecycle.token_complete(
        token=done,
        actor=actors.Actor(channel=TokenEvent.Channel.API),
        data={"status": "approved", "comment": "Within policy", "by": "sam"},
    )
    tokens = {"done": done}
    tokens["refund"] = make(
        payments,
        42,
        "2h",
        ["refund", "customer:4812", "high-value"],
        idempotency_key="refund-4812-2026-03",
    )
    tokens["payout"] = make(payments, 30, "50m", ["payout", "vendor:acme"])
    tokens["kyc"] = make(onboarding, 20, "3h", ["kyc", "manual-review"])
    tokens["invoice"] = make(payments, 12, "1h", ["invoice", "customer:77"])
    tokens["refund2"] = make(payments, 6, "15m", ["refund", "customer:1009"])
    return tokens


def wait(driver, seconds: float = 10) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def log_in(driver, live_server, username: str, *, screenshot: str = "") -> None:
    driver.get(f"{live_server.url}/")
    wait(driver).until(ec.presence_of_element_located((By.ID, "id_username")))
    assert "/accounts/login/" in driver.current_url
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    if screenshot:
        shoot(driver, screenshot)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait(driver).until(lambda d: "/accounts/login/" not in d.current_url)


def shoot(driver, name: str) -> None:
    """A full-page screenshot at the current width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]"
    )
    metrics = driver.execute_script("return window.__metrics || null")
    override = dict(metrics or {"width": width, "deviceScaleFactor": 1, "mobile": False})
    override["height"] = max(height, override.get("height", 0) or 0)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", override)
    time.sleep(0.2)
    driver.save_screenshot(str(SCREENSHOTS / name))
    if metrics:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    else:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def flash(driver) -> str:
    """The flash message's text once the page after a POST shows it. The element is found and
    read in one attempt, retried while the page is being replaced (a message found on the old
    document goes stale before its text can be read)."""

    def read(current) -> str | bool:
        try:
            return current.find_element(By.CSS_SELECTOR, ".message").text or False
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    return wait(driver).until(read)


def test_an_approver_logs_in_filters_by_tag_approves_and_the_sdk_sees_it(
    browser, live_server, payments, world
) -> None:
    add_member(payments, "april", "approver")
    _api_key, secret = tenancy.api_key_create(environment=payments)
    log_in(browser, live_server, "april", screenshot="dashboard-login.png")

    # Home → the project's list, then filter by the "refund" tag with the typeahead input.
    browser.find_element(By.CSS_SELECTOR, "a.env-card[href$='/payments/prod/tokens']").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "id_tag")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-token]")) == 6
    # The typeahead asks the tag endpoint and narrows the suggestions to the typed prefix.
    tag_input = browser.find_element(By.ID, "id_tag")
    tag_input.send_keys("ref")

    def suggestions(driver) -> list[str]:
        # The typeahead replaces the options as each response lands: an option read while it
        # is being replaced is stale, so read again (the wait retries).
        try:
            options = driver.find_elements(By.CSS_SELECTOR, "#tag-options option")
            return [o.get_attribute("value") for o in options]
        except StaleElementReferenceException:
            return []

    wait(browser).until(lambda d: suggestions(d) == ["refund"])
    tag_input.send_keys("und")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(browser).until(ec.url_contains("tag=refund"))
    shown = [
        r.get_attribute("data-token")
        for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-token]")
    ]
    expected = [world["refund2"], world["refund"], world["done"]]
    assert shown == [t.friendly_id for t in expected]
    shoot(browser, "dashboard-list.png")

    # The filtered URL is the state: reloading it shows the same rows and the checked tag.
    browser.get(browser.current_url)
    assert browser.find_element(By.CSS_SELECTOR, "input[name=tag][value=refund]").is_selected()

    browser.find_element(By.LINK_TEXT, world["refund"].friendly_id).click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "decision-comment")))
    shoot(browser, "dashboard-detail.png")
    # An approver sees no callback URL (a credential, for admins only); the id copies.
    assert browser.find_elements(By.ID, "callback-url") == []
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy='#token-id']")
    copy.click()
    wait(browser).until(lambda d: copy.text == "Copied")
    browser.find_element(By.ID, "decision-comment").send_keys("Within the refund policy")
    browser.find_element(By.CSS_SELECTOR, "form.decide-form button.approve").click()

    assert flash(browser) == f"Approved {world['refund'].friendly_id}."
    assert browser.find_element(By.CSS_SELECTOR, ".title-row .status").text == "Approved"
    assert browser.find_elements(By.CSS_SELECTOR, "form.decide-form") == []
    assert "By april (Dashboard)" in browser.find_element(By.CSS_SELECTOR, ".outcome").text
    shoot(browser, "dashboard-detail-approved.png")

    request = urllib.request.Request(
        f"{live_server.url}/api/v1/waitpoints/tokens/{world['refund'].friendly_id}",
        headers={"Authorization": f"Bearer {secret}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our live server
        body = json.load(response)
    assert body["status"] == "COMPLETED"
    assert body["output"] == (
        '{"json":{"status":"approved","comment":"Within the refund policy","by":"april"}}'
    )
    assert body["outputType"] == "application/super+json"
    assert body["outputIsError"] is False


def test_waiting_for_me_counts_down_soonest_first_and_bulk_approves(
    browser, live_server, payments, onboarding, world
) -> None:
    user = add_member(payments, "april", "approver")
    from tokens.models import Membership

    Membership.objects.create(user=user, project=onboarding.project, role="admin")
    log_in(browser, live_server, "april")

    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-token]")
    # A triage queue: the soonest deadline first (none of these e-mailed april).
    soonest_first = ["refund2", "payout", "invoice", "refund", "kyc"]
    assert [r.get_attribute("data-token") for r in rows] == [
        world[name].friendly_id for name in soonest_first
    ]
    countdown = browser.find_element(
        By.CSS_SELECTOR, f"tr[data-token='{world['refund2'].friendly_id}'] [data-countdown]"
    )
    wait(browser).until(lambda d: re.fullmatch(r"\d+m \d\ds left", countdown.text))
    first = countdown.text
    wait(browser, 5).until(lambda d: countdown.text != first)
    # About nine minutes left: not yet highlighted (that starts under five minutes).
    assert "countdown-soon" not in countdown.get_attribute("class")
    shoot(browser, "dashboard-waiting.png")

    # Bulk: select two rows, approve them with one click.
    bulk = browser.find_elements(By.CSS_SELECTOR, "[data-bulk-button]")
    assert all(not b.is_enabled() for b in bulk)
    for name in ("payout", "kyc"):
        browser.find_element(
            By.CSS_SELECTOR, f"input[name=ids][value='{world[name].friendly_id}']"
        ).click()
    assert browser.find_element(By.CSS_SELECTOR, "[data-bulk-count]").text == "2 selected"
    # A review page first (what, how many, which environment); Cancel decides nothing.
    browser.find_element(By.CSS_SELECTOR, "[data-bulk-button][value=approved]").click()
    title = wait(browser).until(ec.presence_of_element_located((By.ID, "review-title")))
    assert title.text == "Approve 2 requests?"
    assert (
        "Production: 1 of 2 requests is in a production environment"
        in browser.find_element(By.ID, "review-production").text
    )
    assert browser.find_element(By.ID, "review-envs").text.splitlines() == [
        "Payments PRODUCTION · 1",
        "Customer onboarding STAGING · 1",
    ]
    browser.find_element(By.ID, "review-cancel").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-bulk-button]")))
    world["payout"].refresh_from_db()
    assert world["payout"].status == Token.Status.WAITING
    for name in ("payout", "kyc"):
        browser.find_element(
            By.CSS_SELECTOR, f"input[name=ids][value='{world[name].friendly_id}']"
        ).click()
    browser.find_element(By.CSS_SELECTOR, "[data-bulk-button][value=approved]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "review-confirm"))).click()
    ids = [world[name].friendly_id for name in ("payout", "kyc")]
    assert flash(browser) == f"Approved 2 tokens: {ids[0]}; {ids[1]}."
    remaining = [
        r.get_attribute("data-token")
        for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-token]")
    ]
    assert remaining == [world[n].friendly_id for n in ("refund2", "invoice", "refund")]
    for name in ("payout", "kyc"):
        world[name].refresh_from_db()
        assert world[name].status == Token.Status.COMPLETED


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(
    browser, live_server, payments, world
) -> None:
    viewer = add_member(payments, "vera", "viewer")
    token = world["invoice"]
    log_in(browser, live_server, "vera")
    assert (
        browser.find_elements(By.CSS_SELECTOR, "tr[data-token]") == []
    )  # nothing is hers to decide

    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    assert browser.find_elements(By.CSS_SELECTOR, "button.approve, button.reject") == []
    assert "deciding it needs the approver" in browser.find_element(By.CSS_SELECTOR, ".decide").text

    # Forge the POST from the page itself, with a valid CSRF token from the cookie.
    browser.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = arguments[0];
        const cookie = document.cookie.split("; ").find(c => c.startsWith("csrftoken="));
        const csrf = cookie.split("=")[1];
        form.innerHTML = '<input name="csrfmiddlewaretoken" value="' + csrf + '">';
        document.body.appendChild(form);
        form.submit();
        """,
        f"/tokens/{token.friendly_id}/approve",
    )
    message = flash(browser)
    assert message.startswith("Not allowed: as viewer in Payments")
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    denied = token.events.get(kind=TokenEvent.Kind.DENIED)
    assert denied.user == viewer and denied.detail == {"action": "approve"}
    assert "Action denied" in browser.find_element(By.CSS_SELECTOR, ".timeline").text


def test_the_phone_layout_fits_390px_and_approving_works(
    browser, live_server, payments, world
) -> None:
    add_member(payments, "april", "approver")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.execute_script("window.__metrics = arguments[0]", PHONE)  # for shoot() on this page
    log_in(browser, live_server, "april")

    def fits() -> None:
        inner, scroll = browser.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth]"
        )
        assert inner == 390
        assert scroll <= inner, f"horizontal scroll: {scroll}px content in a {inner}px viewport"

    fits()
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    shoot(browser, "dashboard-phone-waiting.png")
    approve = browser.find_element(
        By.CSS_SELECTOR, f"tr[data-token='{world['refund'].friendly_id}'] button.approve"
    )
    assert approve.size["height"] >= 44 and approve.size["width"] >= 120
    assert approve.is_displayed()

    browser.get(f"{live_server.url}/tokens/{world['payout'].friendly_id}")
    fits()
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    decide = browser.find_element(By.CSS_SELECTOR, ".decide")
    facts = browser.find_element(By.CSS_SELECTOR, ".facts")
    assert decide.location["y"] < facts.location["y"]  # the decision comes first on a phone
    shoot(browser, "dashboard-phone-detail.png")

    browser.get(f"{live_server.url}/projects/payments/prod/tokens")
    fits()
    # The filter panel starts folded on a phone, so the tokens come first; it opens on a tap.
    panel = browser.find_element(By.CSS_SELECTOR, "details.filter-panel")
    assert panel.get_attribute("open") is None
    assert not browser.find_element(By.ID, "id_tag").is_displayed()
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    shoot(browser, "dashboard-phone-list.png")

    browser.get(f"{live_server.url}/")
    browser.find_element(
        By.CSS_SELECTOR, f"tr[data-token='{world['refund'].friendly_id}'] button.approve"
    ).click()
    # Production: quick approve asks once more.
    again = wait(browser).until(ec.alert_is_present())
    assert again.text == f'Approve "{world["refund"].friendly_id}" in production (Payments)?'
    again.accept()
    assert flash(browser) == f"Approved {world['refund'].friendly_id}."
    world["refund"].refresh_from_db()
    assert world["refund"].status == Token.Status.COMPLETED
