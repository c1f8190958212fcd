"""A project admin invites a colleague by e-mail on the Members page; the colleague follows the
one-time link, chooses a password, logs in and sees the project. Also on a 390 px phone."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import PHONE, flash, log_in, shoot
from tokens.models import Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, 10)


def test_an_admin_invites_and_the_invitee_chooses_a_password(browser, live_server, payments):
    add_member(payments, "adam", Membership.Role.ADMIN)
    log_in(browser, live_server, "adam")
    browser.get(f"{live_server.url}/projects/payments/prod/tokens")
    browser.find_element(By.LINK_TEXT, "Members").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Members of"))
    browser.find_element(By.ID, "invite-email").send_keys("ann@example.com")
    Select(browser.find_element(By.ID, "invite-role")).select_by_value("approver")
    browser.find_element(By.CSS_SELECTOR, ".invite-form button[type=submit]").click()
    assert flash(browser) == (
        "ann@example.com is now an approver. We e-mailed them a link to choose their password."
    )
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-member='ann@example.com']")
    assert "Invited, no password yet" in row.text
    shoot(browser, "dashboard-members.png")

    [message] = mail.outbox
    link = re.search(r"http://\S+/accounts/reset/\S+/", message.body).group(0)
    path = link.split("/accounts/", 1)[1]
    browser.delete_all_cookies()  # the invitee's own browser
    browser.get(f"{live_server.url}/accounts/{path}")
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Welcome"))
    assert "ann@example.com" in browser.find_element(By.CSS_SELECTOR, ".auth-card").text
    for field in ("id_new_password1", "id_new_password2"):
        browser.find_element(By.ID, field).send_keys("a-long-invitee-pass-phrase")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "password is set"))
    browser.find_element(By.LINK_TEXT, "Log in").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "id_username")))
    browser.find_element(By.ID, "id_username").send_keys("ann@example.com")
    browser.find_element(By.ID, "id_password").send_keys("a-long-invitee-pass-phrase")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Waiting for me"))
    projects = browser.find_element(By.CSS_SELECTOR, ".projects").text
    assert "Payments" in projects and "role: approver" in projects
    # The link worked once.
    browser.get(f"{live_server.url}/accounts/{path}")
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "no longer works"))


def test_the_members_page_fits_a_phone_and_changes_a_role(browser, live_server, payments):
    add_member(payments, "adam", Membership.Role.ADMIN)
    add_member(payments, "vera", Membership.Role.VIEWER)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    log_in(browser, live_server, "adam")
    browser.get(f"{live_server.url}/projects/payments/members")
    wait(browser).until(ec.presence_of_element_located((By.ID, "member-table")))
    inner, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert scroll <= inner == 390, f"horizontal scroll: {scroll}px in {inner}px"
    invite = browser.find_element(By.CSS_SELECTOR, ".invite-form button[type=submit]")
    assert invite.size["height"] >= 44 and invite.size["width"] >= 300
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    shoot(browser, "dashboard-members-phone.png")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-member='vera']")
    Select(row.find_element(By.TAG_NAME, "select")).select_by_value("approver")
    row.find_element(By.CSS_SELECTOR, ".role-form button").click()
    assert flash(browser) == "vera@example.com is now approver."
    assert Membership.objects.get(user__username="vera").role == "approver"
