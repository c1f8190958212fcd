"""In headless Chromium, on a desktop and a 390 px phone: "not now" on the dashboard token page
(the request leaves my "waiting for me", is listed as put aside, comes back with "Back now")
and on a personal link's confirmation page. Never a decision."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import flash, log_in, shoot, wait
from tests.browser.test_review_and_links import create, keep_size, row_ids, suffix, use_size
from tokens.domain.links import personal_url
from tokens.models import Recipient, Snooze, Token, TokenEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = ["desktop", "phone"]


def tap(browser, css: str) -> None:
    element = browser.find_element(By.CSS_SELECTOR, css)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


@pytest.mark.parametrize("size", SIZES)
def test_not_now_on_the_dashboard_puts_it_aside_for_me_then_back(
    browser, live_server, payments, size
) -> None:
    add_member(payments, "april", "approver")
    refund = create(payments, "3h", title="Refund order 4812 (3,400 EUR)")
    payout = create(payments, "5h", title="Payout to ACME GmbH")
    use_size(browser, size)
    log_in(browser, live_server, "april")
    keep_size(browser, size)
    assert row_ids(browser, "token-table") == [refund.friendly_id, payout.friendly_id]

    browser.get(f"{live_server.url}/tokens/{refund.friendly_id}")
    keep_size(browser, size)
    Select(browser.find_element(By.ID, "not-now-until")).select_by_visible_text("4 hours")
    button = browser.find_element(By.CSS_SELECTOR, "button[name=not_now][value=aside]")
    if size == "phone":
        assert button.size["height"] >= 44
    shoot(browser, f"dashboard-not-now{suffix(size)}.png")
    tap(browser, "button[name=not_now][value=aside]")

    message = flash(browser)
    keep_size(browser, size)
    assert message.startswith(f"Put {refund.friendly_id} aside until ")
    assert message.endswith("nothing was decided.")
    assert row_ids(browser, "token-table") == [payout.friendly_id]  # out of my queue
    aside = browser.find_element(By.CSS_SELECTOR, ".aside-items li")
    assert aside.get_attribute("data-token") == refund.friendly_id
    assert "Refund order 4812" in aside.text and "back" in aside.text
    shoot(browser, f"dashboard-put-aside{suffix(size)}.png")
    refund.refresh_from_db()
    assert refund.status == Token.Status.WAITING and not refund.votes.exists()

    aside.find_element(By.TAG_NAME, "a").click()
    notice = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".aside-notice")))
    keep_size(browser, size)
    assert notice.text.startswith("You put this aside until")
    tap(browser, "button[name=not_now][value=clear]")
    assert flash(browser) == f"{refund.friendly_id} is back in your queue."
    browser.get(f"{live_server.url}/")
    keep_size(browser, size)
    assert row_ids(browser, "token-table") == [refund.friendly_id, payout.friendly_id]
    kinds = list(refund.events.values_list("kind", flat=True))
    assert TokenEvent.Kind.SNOOZED in kinds and TokenEvent.Kind.UNSNOOZED in kinds


@pytest.mark.parametrize("size", SIZES)
def test_not_now_on_a_personal_link(browser, live_server, payments, size) -> None:
    token = create(
        payments, "1d", title="Deploy billing v2 to production", approvers=["ann@example.com"]
    )
    url = personal_url(token, Recipient.objects.get(token=token), base=live_server.url)
    use_size(browser, size)
    browser.get(url)
    keep_size(browser, size)
    Select(browser.find_element(By.ID, "not-now-until")).select_by_visible_text("1 day")
    shoot(browser, f"confirm-not-now{suffix(size)}.png")
    tap(browser, "button[name=not_now][value=aside]")

    notice = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".aside-notice")))
    keep_size(browser, size)
    assert notice.text.startswith("You put this aside until")
    # Still decidable, and nothing was decided.
    assert browser.find_element(By.CSS_SELECTOR, "button[name=decision][value=approved]")
    snooze = Snooze.objects.get()
    assert snooze.person == "ann@example.com"
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
    shoot(browser, f"confirm-put-aside{suffix(size)}.png")
