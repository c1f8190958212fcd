"""Headless Chromium (Debian's /usr/bin/chromium and /usr/bin/chromedriver) driven by Selenium
against pytest-django's live server. A missing browser FAILS the tests: CI installs it
(.ci/run), and nothing here ever lets a tool download one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tokens.domain import tenancy
from tokens.models import Environment, Membership

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver"))
# Test runs keep their screenshots out of the work tree; to refresh the ones the README shows:
#   WAITPOINTS_SCREENSHOTS=docs/screenshots bin/test tests/browser
SCREENSHOTS = Path(
    os.environ.get("WAITPOINTS_SCREENSHOTS", Path(tempfile.gettempdir()) / "waitpoints-screenshots")
).resolve()
PASSWORD = "correct-horse-battery-staple"


def launch_chromium():
    """A headless Chromium, or a failure that says how to install one."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"headless Chromium is required for the browser tests; missing {', '.join(missing)}. "
            "Install it with: apt-get install -y chromium chromium-driver",
            pytrace=False,
        )
    # Selenium Manager would download a browser or driver when it cannot find one: never.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    # The console log, so every browser test also proves the pages run under the CSP.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    return driver


@pytest.fixture
def browser() -> Iterator:
    driver = launch_chromium()
    try:
        yield driver
        violations = policy_violations(driver)
        assert not violations, f"the pages broke the CSP or Permissions-Policy: {violations}"
    finally:
        driver.quit()


def policy_violations(driver) -> list[str]:
    """Console messages (since the last call) about a blocked script, style, frame or feature."""
    markers = ("Content Security Policy", "Content-Security-Policy", "Permissions-Policy")
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if any(marker in entry["message"] for marker in markers)
    ]


def add_member(environment: Environment, username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    user.first_name = username.title()
    user.save()
    Membership.objects.create(user=user, project=environment.project, role=role)
    return user


@pytest.fixture
def payments(db) -> Environment:
    """A production environment: pages flag it, and quick approval there asks once more."""
    return tenancy.environment_get_or_create(
        project_slug="payments", slug="prod", project_name="Payments"
    )


@pytest.fixture
def onboarding(db) -> Environment:
    return tenancy.environment_get_or_create(
        project_slug="onboarding", slug="staging", project_name="Customer onboarding"
    )
