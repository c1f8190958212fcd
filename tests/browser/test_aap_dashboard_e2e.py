"""In headless Chromium, at desktop width and on a 390 px phone: a project admin creates a
provisioner token and an instance on the Agent approvals page, copies the instance credential
(shown once, gone when the page is opened again), renames the instance (a refused name shown
under its field), deletes it and revokes the token; nothing scrolls sideways and axe-core finds
no accessibility violation on any of these pages."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import add_member
from tests.browser.test_a11y import PINNED, RUN_AXE, TAGS, axe_source, describe
from tests.browser.test_dashboard_e2e import PHONE, flash, log_in, shoot, wait
from tokens.models import AapInstance, AapProvisioner, Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PAGE = "/projects/payments/prod/aap"


def fits(browser, size: str) -> None:
    """Nothing scrolls sideways (at 390 px on the phone)."""
    inner, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    if size == "phone":
        assert inner == 390
    assert scroll <= inner, f"horizontal scroll: {scroll}px content in a {inner}px viewport"


def accessible(browser, what: str) -> None:
    result = browser.execute_async_script(RUN_AXE, TAGS)
    assert "error" not in result, result.get("error")
    assert not result["violations"], (
        f"axe-core {PINNED} found violations on {what}:\n{describe(result['violations'])}"
    )


def check(browser, size: str, what: str) -> None:
    fits(browser, size)
    accessible(browser, f"{what} ({size})")


def snap(browser, size: str, name: str) -> None:
    if size == "phone":  # shoot() keeps the phone's metrics the document names
        browser.execute_script("window.__metrics = arguments[0]", PHONE)
    shoot(browser, f"{name}-phone.png" if size == "phone" else f"{name}.png")


def confirm(browser) -> None:
    wait(browser).until(ec.alert_is_present()).accept()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_an_admin_creates_renames_and_deletes_an_instance(
    browser, live_server, payments, settings, size
) -> None:
    settings.PUBLIC_BASE_URL = live_server.url
    base = f"{live_server.url}/api/aap"
    browser.set_script_timeout(60)
    # Into every document, past the pages' CSP (a <script> tag would be refused).
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": axe_source()})
    if size == "phone":
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    add_member(payments, "adam", Membership.Role.ADMIN)
    log_in(browser, live_server, "adam")
    browser.get(live_server.url + PAGE)
    wait(browser).until(ec.presence_of_element_located((By.ID, "aap-instances")))
    check(browser, size, "the empty page")

    browser.find_element(By.ID, "id_name").send_keys("ci")
    browser.find_element(By.CSS_SELECTOR, "#aap-provisioners button[type=submit]").click()
    token = wait(browser).until(ec.presence_of_element_located((By.ID, "aap-secret-value")))
    assert token.get_attribute("value").startswith("aapp_")

    browser.find_element(By.ID, "instance-name").send_keys("codex-chris-laptop")
    browser.find_element(
        By.CSS_SELECTOR, "#aap-instances form[action$='/instances'] button"
    ).click()
    field = wait(browser).until(ec.presence_of_element_located((By.ID, "aap-credential-value")))
    credential = field.get_attribute("value")
    assert credential.startswith("aapi_")
    cli = browser.find_element(By.ID, "aap-next-cli").text
    assert cli == f"aap install claude-code --instance-token {credential} --base-url {base}"
    assert f'Client("{base}", "{credential}")' in browser.find_element(By.ID, "aap-next-sdk").text
    snap(browser, size, "dashboard-aap-credential")
    check(browser, size, "the new instance's credential")

    browser.get(live_server.url + PAGE)  # opened again: the credential is gone for good
    wait(browser).until(ec.presence_of_element_located((By.ID, "aap-instance-table")))
    assert credential not in browser.page_source
    instance = AapInstance.objects.get()
    assert f"{instance.credential_prefix}…" in browser.find_element(By.ID, "aap-instances").text

    # A refused name (the browser's own checks set aside, as a script could): shown, not saved.
    rename = browser.find_element(By.ID, f"rename-{instance.pk}")
    browser.execute_script(
        "arguments[0].removeAttribute('required'); arguments[0].value=''", rename
    )
    browser.find_element(
        By.CSS_SELECTOR, f"tr[data-instance='{instance.pk}'] .role-form button"
    ).click()
    error = wait(browser).until(
        ec.presence_of_element_located((By.ID, f"rename-{instance.pk}-error"))
    )
    assert error.text == "The name must be a non-empty string."
    assert AapInstance.objects.get().name == "codex-chris-laptop"
    check(browser, size, "a refused rename")

    rename = browser.find_element(By.ID, f"rename-{instance.pk}")
    rename.clear()
    rename.send_keys("codex-ci")
    browser.find_element(
        By.CSS_SELECTOR, f"tr[data-instance='{instance.pk}'] .role-form button"
    ).click()
    assert flash(browser) == "The instance is renamed to codex-ci."
    assert AapInstance.objects.get().name == "codex-ci"
    snap(browser, size, "dashboard-aap")
    check(browser, size, "the page with an instance and a token")

    browser.find_element(
        By.CSS_SELECTOR, f"tr[data-instance='{instance.pk}'] button.reject"
    ).click()
    confirm(browser)
    assert flash(browser) == "The instance is deleted; its pending requests are cancelled."
    assert not browser.find_elements(By.ID, "aap-instance-table")
    assert AapInstance.objects.get().deleted_at is not None

    browser.find_element(By.CSS_SELECTOR, "#aap-provisioner-table button.reject").click()
    confirm(browser)
    assert flash(browser) == "The provisioner token is revoked."
    assert AapProvisioner.objects.get().revoked_at is not None
    assert "Revoked" in browser.find_element(By.ID, "aap-provisioner-table").text
    check(browser, size, "the page after deletion and revocation")
