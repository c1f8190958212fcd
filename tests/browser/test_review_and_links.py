"""In headless Chromium, on a desktop and a 390 px phone: bulk approve through its review page
(also without JavaScript), an admin revoking one recipient's personal link, and relative times
that move on and close the buttons at the deadline without a reload."""

from __future__ import annotations

import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import PHONE, flash, log_in, shoot, wait
from tokens.domain import actors, lifecycle
from tokens.domain.links import personal_url
from tokens.models import Token, TokenEvent
from tokens.persistence import selectors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = ["desktop", "phone"]


def create(environment, timeout: str = "2h", **kwargs) -> Token:
    return lifecycle.token_create(
        environment=environment, actor=actors.Actor.system(), timeout=timeout, **kwargs
    ).token


def use_size(browser, size: str) -> None:
    if size == "phone":
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)


def keep_size(browser, size: str) -> None:
    """After each navigation: shoot() keeps the phone's metrics, and nothing scrolls sideways."""
    if size == "phone":
        browser.execute_script("window.__metrics = arguments[0]", PHONE)
        inner, scroll = browser.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth]"
        )
        wide = browser.execute_script(
            "return Array.from(document.querySelectorAll('body *')).filter("
            "e => e.getBoundingClientRect().right > 391).map(e => e.tagName + '.' + e.className"
            " + ':' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"
        )
        assert inner == 390, wide
        assert scroll <= inner, f"horizontal scroll: {scroll}px content in a {inner}px viewport"


def suffix(size: str) -> str:
    return "-phone" if size == "phone" else ""


def select(browser, *tokens: Token) -> None:
    for token in tokens:
        browser.find_element(
            By.CSS_SELECTOR, f"input[name=ids][value='{token.friendly_id}']"
        ).click()


def row_ids(browser, table: str) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table} tr[data-token]")
    return [row.get_attribute("data-token") for row in rows]


# ------------------------------------------------------------------------------------------------
# Bulk approve through its review page
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_bulk_approve_shows_a_review_page_then_decides_on_confirm(
    browser, live_server, payments, onboarding, size
) -> None:
    user = add_member(payments, "april", "approver")
    from tokens.models import Membership

    Membership.objects.create(user=user, project=onboarding.project, role="approver")
    refund = create(payments, "45m", title="Refund order 4812 (3,400 EUR)")
    payout = create(payments, "3h", title="Payout to ACME GmbH (12,000 EUR)")
    kyc = create(onboarding, "90m", title="KYC review: Jane Doe")
    taken = create(payments, "1h", title="Refund order 4790 (80 EUR)")
    use_size(browser, size)
    log_in(browser, live_server, "april")
    keep_size(browser, size)

    select(browser, refund, payout, kyc, taken)
    # Meanwhile a colleague decides one of them.
    lifecycle.token_complete(
        token=taken, actor=actors.Actor.system(), data={"status": "approved", "by": "sam"}
    )
    browser.find_element(By.CSS_SELECTOR, "[data-bulk-button][value=approved]").click()
    title = wait(browser).until(ec.presence_of_element_located((By.ID, "review-title")))
    keep_size(browser, size)
    assert title.text == "Approve 3 requests?"
    # In the queue's order: the soonest deadline first.
    assert row_ids(browser, "review-included") == [t.friendly_id for t in (refund, kyc, payout)]
    assert row_ids(browser, "review-excluded") == [taken.friendly_id]
    assert "Already approved." in browser.find_element(By.ID, "review-excluded").text
    assert browser.find_element(By.ID, "review-production").text.startswith(
        "Production: 2 of 3 requests are in a production environment."
    )
    assert "3 of 4 selected" in browser.find_element(By.ID, "review-count").text
    # Nothing is decided by the review itself.
    for token in (refund, payout, kyc):
        token.refresh_from_db()
        assert token.status == Token.Status.WAITING
    shoot(browser, f"dashboard-bulk-review{suffix(size)}.png")

    confirm = browser.find_element(By.ID, "review-confirm")
    assert confirm.text == "Confirm: approve 3 requests"
    if size == "phone":
        assert confirm.size["height"] >= 44
    confirm.click()
    message = flash(browser)
    keep_size(browser, size)
    assert message == (
        f"Approved 3 tokens: Refund order 4812 (3,400 EUR) ({refund.friendly_id}); "
        f"KYC review: Jane Doe ({kyc.friendly_id}); "
        f"Payout to ACME GmbH (12,000 EUR) ({payout.friendly_id})."
    )
    for token in (refund, payout, kyc):
        token.refresh_from_db()
        assert token.status == Token.Status.COMPLETED
        event = token.events.get(kind=TokenEvent.Kind.COMPLETED)
        assert event.user == user
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-token]") == []


def test_bulk_review_and_production_quick_approve_work_without_javascript(
    browser, live_server, payments
) -> None:
    add_member(payments, "april", "approver")
    first = create(payments, "1h", title="Refund order 4812 (3,400 EUR)")
    second = create(payments, "2h", title="Refund order 4813 (99 EUR)")
    log_in(browser, live_server, "april")
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(f"{live_server.url}/")
    # The page's script is really off: it would disable the bulk buttons while none is selected.
    bulk = browser.find_elements(By.CSS_SELECTOR, "[data-bulk-button]")
    assert len(bulk) == 2 and all(b.is_enabled() for b in bulk)

    # One click on Approve in production: no dialog without scripts, so the server asks.
    browser.find_element(
        By.CSS_SELECTOR, f"tr[data-token='{first.friendly_id}'] button.approve"
    ).click()
    title = wait(browser).until(ec.presence_of_element_located((By.ID, "review-title")))
    assert title.text == "Approve 1 request?"
    first.refresh_from_db()
    assert first.status == Token.Status.WAITING
    browser.find_element(By.ID, "review-cancel").click()  # back, nothing decided
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-bulk-button]")))

    select(browser, first, second)
    browser.find_element(By.CSS_SELECTOR, "[data-bulk-button][value=rejected]").click()
    title = wait(browser).until(ec.presence_of_element_located((By.ID, "review-title")))
    assert title.text == "Reject 2 requests?"
    browser.find_element(By.ID, "review-comment-input").send_keys("Duplicate requests")
    browser.find_element(By.ID, "review-confirm").click()
    assert flash(browser).startswith("Rejected 2 tokens: ")
    for token in (first, second):
        token.refresh_from_db()
        assert token.status == Token.Status.COMPLETED
        assert '"comment":"Duplicate requests"' in token.output


# ------------------------------------------------------------------------------------------------
# Revoking one recipient's personal link
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_an_admin_revokes_one_personal_link_from_the_token_page(
    browser, live_server, payments, size
) -> None:
    adam = add_member(payments, "adam", "admin")
    token = create(
        payments,
        approvers=["alice@example.com", "bob@example.com"],
        title="Deploy api 4.2 to production",
    )
    links = {
        r.email: personal_url(token, r, base=live_server.url)
        for r in selectors.recipient_list_for_token(token=token)
    }
    use_size(browser, size)
    log_in(browser, live_server, "adam")
    browser.get(f"{live_server.url}/tokens/{token.friendly_id}")
    card = wait(browser).until(ec.presence_of_element_located((By.ID, "recipients")))
    keep_size(browser, size)
    assert [li.get_attribute("data-recipient") for li in card.find_elements(By.TAG_NAME, "li")] == [
        "alice@example.com",
        "bob@example.com",
    ]
    revoke = browser.find_element(By.CSS_SELECTOR, "li[data-recipient='alice@example.com'] button")
    assert revoke.text == "Revoke link"
    revoke.click()
    question = wait(browser).until(ec.alert_is_present())
    assert question.text.startswith("Revoke the personal link of alice@example.com?")
    question.accept()
    assert flash(browser) == (
        "Revoked the personal link of alice@example.com. The other links and the callback URL "
        "still work."
    )
    keep_size(browser, size)
    alice_row = browser.find_element(By.CSS_SELECTOR, "li[data-recipient='alice@example.com']")
    assert "Revoked" in alice_row.text
    assert alice_row.find_elements(By.TAG_NAME, "button") == []
    bob_row = browser.find_element(By.CSS_SELECTOR, "li[data-recipient='bob@example.com']")
    assert bob_row.find_element(By.TAG_NAME, "button").text == "Revoke link"
    timeline = browser.find_element(By.CSS_SELECTOR, ".timeline").text
    assert "Personal link revoked" in timeline and "to: alice@example.com" in timeline
    event = token.events.get(kind=TokenEvent.Kind.LINK_REVOKED)
    assert (event.user, event.channel) == (adam, "dashboard")
    shoot(browser, f"dashboard-revoke-link{suffix(size)}.png")

    # Alice's link now says it was revoked; Bob's still works.
    browser.get(links["alice@example.com"])
    heading = wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    keep_size(browser, size)
    assert heading.text == "This link was revoked"
    assert browser.find_elements(By.CSS_SELECTOR, "button.approve") == []
    shoot(browser, f"link-revoked{suffix(size)}.png")
    browser.get(links["bob@example.com"])
    deciding = wait(browser).until(ec.presence_of_element_located((By.ID, "deciding-as")))
    assert deciding.text == "You are deciding as bob@example.com."


# ------------------------------------------------------------------------------------------------
# Relative times that move on; buttons that close at the deadline
# ------------------------------------------------------------------------------------------------

AGO = re.compile(r"just now|\d+ s ago")


@pytest.mark.parametrize("size", SIZES)
def test_relative_times_update_and_buttons_close_at_the_deadline_without_a_reload(
    browser, live_server, payments, size
) -> None:
    add_member(payments, "april", "approver")
    use_size(browser, size)
    log_in(browser, live_server, "april")
    soon = create(payments, "8s", title="Refund order 4812 (3,400 EUR)")
    create(payments, "2h", title="Refund order 4813 (99 EUR)")
    browser.get(f"{live_server.url}/")
    row = wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-token='{soon.friendly_id}']"))
    )
    keep_size(browser, size)
    browser.execute_script("window.__loaded = true")  # gone if the page were reloaded
    since = row.find_element(By.CSS_SELECTOR, "time[data-relative]")
    countdown = row.find_element(By.CSS_SELECTOR, "[data-countdown]")
    buttons = row.find_elements(By.CSS_SELECTOR, "button.approve, button.reject")
    assert len(buttons) == 2 and all(b.is_enabled() for b in buttons)
    # The machine-readable moment, and the exact time in the viewer's zone and UTC on hover.
    assert since.get_attribute("datetime").startswith(soon.created_at.strftime("%Y-%m-%dT%H:%M"))
    assert since.get_attribute("title").endswith(" UTC)")
    assert countdown.get_attribute("title").startswith("Times out ")
    assert countdown.get_attribute("title").endswith(" UTC)")

    wait(browser).until(lambda d: AGO.fullmatch(since.text))
    first = since.text
    wait(browser).until(lambda d: since.text != first and AGO.fullmatch(since.text))
    wait(browser, 20).until(lambda d: countdown.text == "Timed out")
    wait(browser).until(lambda d: not any(b.is_enabled() for b in buttons))
    assert buttons[0].get_attribute("title") == "The deadline has passed"
    assert browser.execute_script("return window.__loaded") is True  # no reload happened

    # The token's own page: the decision form closes and says why.
    later = create(payments, "5s", title="Payout to ACME GmbH (12,000 EUR)")
    browser.get(f"{live_server.url}/tokens/{later.friendly_id}")
    form = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".decide-form")))
    keep_size(browser, size)
    decide = form.find_elements(By.CSS_SELECTOR, "button[type=submit]")
    note = wait(browser, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".decide-form .deadline-passed"))
    )
    assert note.text == "The deadline has passed: this request can no longer be decided."
    assert not any(b.is_enabled() for b in decide)
    label = browser.find_element(By.CSS_SELECTOR, ".decide [data-countdown]")
    assert label.text == "Timed out"
