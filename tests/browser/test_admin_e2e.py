"""The support admin in headless Chromium: the token list fits a 1280 px window (no horizontal
scrolling, of the page or of the list inside it) with the navigation and the filters open, and
a token's page opens the same token on the dashboard, in the same tab."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import PASSWORD, add_member
from tests.browser.test_dashboard_e2e import shoot, wait
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Membership, Token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_TAGS = ["refund", "customer:4812", "high-value", "region:eu-west-1", "vendor:globex-intl"]


@pytest.fixture
def onboarding(db):
    # A long project slug: the environment column is one of the widest.
    return tenancy.environment_get_or_create(
        project_slug="customer-onboarding-and-verification",
        slug="staging",
        project_name="Customer onboarding",
    )


def admin_log_in(driver, live_server, username: str) -> None:
    driver.get(f"{live_server.url}/admin/")
    wait(driver).until(ec.presence_of_element_located((By.ID, "id_username")))
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait(driver).until(lambda d: "/login/" not in d.current_url)


def test_the_token_list_fits_a_1280_px_window(
    browser, live_server, onboarding, django_user_model
) -> None:
    now = timezone.now()
    system = actors.Actor.system()
    for n in range(6):
        token = lifecycle.token_create(
            environment=onboarding,
            actor=system,
            timeout="2h",
            tags=LONG_TAGS,
            title=f"Refund order 48{n}2 for ACME Holding GmbH & Co. KG (3,400 EUR), damaged "
            "in transit, photos in the ticket",
            idempotency_key=f"refund-48{n}2",
        ).token
    lifecycle.token_complete(token=token, actor=system, data={"status": "approved"})
    # Past its deadline, not yet swept: the longest status the list shows.
    lifecycle.token_create(
        environment=onboarding, actor=system, timeout="1m", now=now - timedelta(minutes=5)
    )
    django_user_model.objects.create_superuser(username="sam", password=PASSWORD)

    browser.set_window_size(1280, 800)
    admin_log_in(browser, live_server, "sam")
    browser.get(f"{live_server.url}/admin/tokens/token/")
    wait(browser).until(ec.presence_of_element_located((By.ID, "result_list")))

    inner = browser.execute_script("return window.innerWidth")
    page = browser.execute_script("return document.documentElement.scrollWidth")
    # Django puts the list in a box of its own that scrolls sideways: the page alone would fit
    # with most columns hidden in that box.
    box, box_width = browser.execute_script(
        "var r = document.querySelector('#changelist .results');"
        "return [r.scrollWidth, r.clientWidth]"
    )
    assert inner == 1280
    assert page <= 1280, f"the page scrolls sideways: {page}px in 1280px"
    assert box <= box_width, f"the list scrolls sideways: {box}px in {box_width}px"
    assert browser.find_element(By.ID, "nav-sidebar").is_displayed()
    assert browser.find_element(By.ID, "changelist-filter").is_displayed()
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result_list thead th")]
    assert headers[1:] == ["TOKEN", "ENVIRONMENT", "STATUS", "DEADLINE"]
    statuses = [
        td.text
        for td in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-status_label")
    ]
    assert "Timed out (stored as waiting, awaiting the sweep)" in statuses
    assert "Completed" in statuses
    shoot(browser, "admin-token-list.png")


def test_the_token_page_opens_the_same_token_on_the_dashboard(
    browser, live_server, onboarding
) -> None:
    sam = add_member(onboarding, "sam", Membership.Role.ADMIN)
    sam.is_staff = sam.is_superuser = True
    sam.save()
    token = lifecycle.token_create(
        environment=onboarding,
        actor=actors.Actor.system(),
        timeout="2h",
        title="Verify ACME Holding's documents",
    ).token

    admin_log_in(browser, live_server, "sam")
    browser.get(f"{live_server.url}/admin/tokens/token/?q={token.friendly_id}")
    row_link = browser.find_element(By.CSS_SELECTOR, "#result_list td.field-token_cell a")
    assert "Verify ACME Holding's documents" in row_link.text
    assert token.friendly_id in row_link.text
    row_link.click()
    link = wait(browser).until(ec.element_to_be_clickable((By.ID, "open-in-dashboard")))
    assert link.text.lower() == "open in dashboard"
    link.click()

    wait(browser).until(ec.url_to_be(f"{live_server.url}/tokens/{token.friendly_id}"))
    assert len(browser.window_handles) == 1  # the same tab
    assert browser.find_element(By.TAG_NAME, "h1").text == "Verify ACME Holding's documents"
    assert Token.objects.get(pk=token.pk).status == Token.Status.WAITING
