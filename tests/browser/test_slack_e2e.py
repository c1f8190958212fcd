"""Slack in the browser: an admin connects an environment on the dashboard, and the message the
fake Web API received (before and after a signed click) rendered for the docs' screenshot.

The message screenshot is of ``block_kit_preview``'s rendering of the exact blocks
chat.postMessage and chat.update carried, not of Slack itself (no workspace in tests)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
from django.test import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.block_kit_preview import page
from tests.browser.conftest import add_member
from tests.browser.test_dashboard_e2e import shoot
from tests.fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    click,
    signed_post,
)
from tokens.delivery import outbox
from tokens.delivery.slack import connections
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Membership, SlackConnection, Token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESCRIPTION = (
    "Customer **ACME GmbH** asks for a refund of order "
    "[4812](https://shop.example.com/orders/4812).\n\n"
    "- 2 × A-1 arrived damaged\n- photos attached in the ticket\n\n"
    "> The parcel was left in the rain."
)


def wait(driver):
    return WebDriverWait(driver, 10)


def log_in(driver, url: str, user) -> None:
    client = Client()
    client.force_login(user)
    driver.get(f"{url}/healthz")
    driver.add_cookie(
        {"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"}
    )


def test_an_admin_connects_slack_on_the_dashboard(browser, live_server, fake_slack):
    environment = tenancy.environment_get_or_create(
        project_slug="payments", slug="prod", project_name="Payments"
    )
    admin = add_member(environment, "adam", Membership.Role.ADMIN)
    log_in(browser, live_server.url, admin)
    browser.get(f"{live_server.url}/projects/payments/prod/slack")
    wait(browser).until(ec.presence_of_element_located((By.ID, "connect-token")))
    browser.find_element(By.ID, "connect-token").send_keys(BOT_TOKEN)
    browser.find_element(By.ID, "connect-secret").send_keys(SIGNING_SECRET)
    browser.find_element(By.ID, "connect-channel").send_keys("#approvals")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/slack/connect'] button").click()
    flash = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".message")))
    assert "Slack connected for payments/prod." in flash.text
    status = browser.find_element(By.ID, "slack-status").text
    assert "Connected" in status and "xoxb-…ests" in status and "approvals" in status
    assert BOT_TOKEN not in browser.page_source and SIGNING_SECRET not in browser.page_source
    assert SlackConnection.objects.get().default_channel == "approvals"
    shoot(browser, "slack-connection.png")


def test_the_message_slack_receives_before_and_after_a_click(browser, fake_slack):
    environment = tenancy.environment_get_or_create(
        project_slug="payments", slug="prod", project_name="Payments"
    )
    connections.slack_connect(
        environment=environment,
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        default_channel="approvals",
        direct_messages=False,
    )
    token = lifecycle.token_create(
        environment=environment,
        actor=actors.Actor.system(),
        timeout="2h",
        approvers=["alice@example.com", "bob@example.com"],
        title="Refund order 4812 (3,400 EUR)",
        description=DESCRIPTION,
        context={"customer": "ACME GmbH", "amount": "3,400 EUR", "order": 4812},
        decision={"approve": "Refund", "reject": "Decline"},
        requested_by="rita@example.com",
        tags=["refund"],
    ).token
    outbox.deliver_due()
    (message,) = fake_slack.posted()
    asked = copy.deepcopy(message["blocks"])
    assert signed_post(Client(), click(token, user="UALICE")).status_code == 200
    outbox.deliver_due()
    token.refresh_from_db()
    assert token.status == Token.Status.COMPLETED
    decided = fake_slack.posted()[0]["blocks"]

    preview = page(
        [("as posted (chat.postMessage)", asked), ("after Alice's click (chat.update)", decided)],
        "The blocks waitpoints sent to the fake Slack Web API in a test, drawn by the test's "
        "own Block Kit preview (Slack's rendering differs in detail).",
    )
    path = Path(tempfile.mkdtemp()) / "slack-message.html"
    path.write_text(preview, encoding="utf-8")
    browser.set_window_size(760, 900)
    browser.get(path.as_uri())
    messages = browser.find_elements(By.CSS_SELECTOR, ".msg")
    assert len(messages) == 2
    assert [b.text for b in messages[0].find_elements(By.CSS_SELECTOR, ".btn")] == [
        "Refund",
        "Decline",
        "Open in waitpoints",
    ]
    assert [b.text for b in messages[1].find_elements(By.CSS_SELECTOR, ".btn")] == [
        "Open in waitpoints"
    ]
    assert "Approved (Refund) by alice@example.com" in messages[1].text
    assert "ACME GmbH" in messages[0].find_element(By.CSS_SELECTOR, ".fields").text
    shoot(browser, "slack-message.png")
