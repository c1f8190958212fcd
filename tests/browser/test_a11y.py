"""Accessibility in real headless Chromium: axe-core (pinned in tests/browser/package-lock.json;
bin/test runs `npm ci` here) over every human page at desktop width and on a 390 px phone, with
the WCAG 2.0/2.1 A and AA rules, must report no violation. axe does not judge focus indicators,
so each page is also walked with the keyboard: every focusable element must show a focus ring
with at least 3:1 contrast against what surrounds it (WCAG 1.4.11).

One test per page and viewport, all sharing one browser (launching Chromium is the slow part).
A missing axe-core is a failure, not a skip: an accessibility check that silently does not run
proves nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import add_member, launch_chromium, policy_violations
from tests.browser.test_dashboard_e2e import shoot
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.domain import actors, lifecycle, tenancy
from tokens.domain.links import callback_url, personal_url
from tokens.models import Environment, Membership, Token, TokenEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
PINNED = json.loads((Path(__file__).resolve().parent / "package.json").read_text())["dependencies"][
    "axe-core"
]
HERE = Path(__file__).resolve().parent
RUN_AXE = (HERE / "run_axe.js").read_text()
FOCUS_RINGS = (HERE / "focus_rings.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
# The error pages' screenshots for the README (WAITPOINTS_SCREENSHOTS=docs/screenshots).
SCREENSHOTS = {
    ("error-404", "desktop"): "error-404.png",
    ("error-500", "phone"): "error-500-phone.png",
}


def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is not installed ({AXE} is missing): run `npm ci --no-audit --no-fund` in "
            "tests/browser (bin/test does this)",
            pytrace=False,
        )
    version = json.loads((AXE.parent / "package.json").read_text())["version"]
    if version != PINNED:
        pytest.fail(
            f"tests/browser/node_modules has axe-core {version}, package.json pins {PINNED}: "
            "run `npm ci` in tests/browser",
            pytrace=False,
        )
    return AXE.read_text()


@pytest.fixture(scope="module")
def shared_browser() -> Iterator:
    source = axe_source()  # before launching anything: a missing axe-core fails at once
    driver = launch_chromium()
    driver.set_script_timeout(60)
    # Injected through the DevTools protocol into every document, so no page's
    # Content-Security-Policy gets in the way (a <script> tag would be refused).
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(shared_browser, live_server):
    shared_browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    shared_browser.get(f"{live_server.url}/healthz")
    shared_browser.delete_all_cookies()
    policy_violations(shared_browser)  # forget what an earlier test logged
    yield shared_browser
    violations = policy_violations(shared_browser)
    assert not violations, f"the page broke the CSP or Permissions-Policy: {violations}"


# ------------------------------------------------------------------------------------------------
# The pages and what they show
# ------------------------------------------------------------------------------------------------

DESCRIPTION = (
    "Customer **ACME GmbH** asks for a refund of order "
    "[4812](https://shop.example.com/orders/4812).\n\n"
    "- 2 × A-1 arrived damaged\n- photos attached in the ticket\n\n"
    "> The parcel was left in the rain.\n\n```\nticket #99812\n```"
)
CONTEXT = {
    "customer": "ACME GmbH",
    "amount": "3,400 EUR",
    "order": 4812,
    "lines": [{"sku": "A-1", "qty": 2, "price": 1700}],
}
DECISION = {
    "approve": "Refund",
    "reject": "Decline",
    "fields": {
        "properties": {
            "amount": {"type": "number", "title": "Amount to refund (EUR)"},
            "reason": {"type": "string", "enum": ["damaged", "late", "other"]},
            "notify": {"type": "boolean", "title": "E-mail the customer"},
        },
        "required": ["amount"],
    },
}


@dataclass
class World:
    live_server: object
    environment: Environment
    admin: User
    titled: Token
    done: Token
    endpoint_id: str
    proposed: Token | None = None

    @property
    def url(self) -> str:
        return self.live_server.url  # type: ignore[attr-defined]


@pytest.fixture
def world(live_server) -> World:
    environment = tenancy.environment_get_or_create(
        project_slug="payments", slug="prod", project_name="Payments"
    )
    staging = tenancy.environment_get_or_create(
        project_slug="onboarding", slug="staging", project_name="Customer onboarding"
    )
    admin = add_member(environment, "adam", Membership.Role.ADMIN)
    Membership.objects.create(user=admin, project=staging.project, role=Membership.Role.APPROVER)

    def create(env: Environment, **kwargs) -> Token:
        kwargs.setdefault("timeout", "2h")
        return lifecycle.token_create(environment=env, actor=actors.Actor.system(), **kwargs).token

    titled = create(
        environment,
        approvers=["adam@example.com", "bob@example.com"],
        title="Refund order 4812 (3,400 EUR)",
        description=DESCRIPTION,
        context=CONTEXT,
        decision=DECISION,
        tags=["refund", "customer:4812", "high-value"],
        idempotency_key="refund-4812",
    )
    create(environment, tags=["refund", "customer:1009"], timeout="4m")
    create(environment, tags=["payout", "vendor:acme"], title="Pay out ACME for March")
    create(staging, tags=["kyc"], title="Check the ID of customer 310")
    done = create(environment, tags=["refund", "customer:310"])
    lifecycle.token_complete(
        token=done,
        actor=actors.Actor(channel=TokenEvent.Channel.API),
        data={"status": "approved", "comment": "Within policy", "by": "sam"},
    )
    cancelled = create(environment, tags=["payout"])
    lifecycle.token_cancel(token=cancelled, actor=actors.Actor.system(), reason="duplicate")
    endpoint, _secret = webhook_endpoints.webhook_endpoint_create(
        environment=environment,
        url="https://hooks.example.com/waitpoints",
        description="Order service",
    )
    proposed = create(
        environment,
        approvers=["adam@example.com"],
        title="Refund order 4411",
        proposal={"to": "c@example.com", "amount": 340, "notify": True, "lines": [1, 2]},
        proposal_schema={
            "type": "object",
            "properties": {
                "to": {"type": "string", "title": "Refund to"},
                "amount": {"type": "integer", "maximum": 500},
                "notify": {"type": "boolean"},
                "lines": {"type": "array"},
            },
        },
        proposal_editable=["amount", "notify", "lines"],
    )
    return World(live_server, environment, admin, titled, done, endpoint.friendly_id, proposed)


def log_in(driver, world: World, user: User) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    driver.add_cookie({"name": "sessionid", "value": cookie.value, "path": "/"})


def ready(driver, selector: str = "h1") -> None:
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))


def visit(path: str, *, as_admin: bool = False, selector: str = "h1") -> Callable:
    def go(driver, world: World) -> None:
        if as_admin:
            log_in(driver, world, world.admin)
        driver.get(world.url + path)
        ready(driver, selector)

    return go


def password_reset_confirm(valid: bool) -> Callable:
    def go(driver, world: World) -> None:
        uid = urlsafe_base64_encode(force_bytes(world.admin.pk))
        token = default_token_generator.make_token(world.admin) if valid else "bad-token"
        driver.get(f"{world.url}/accounts/reset/{uid}/{token}/")
        ready(driver, "#id_new_password1" if valid else "h1")

    return go


def invitation_accept(driver, world: World) -> None:
    """The one-time link of an invitation (an account that has no password yet)."""
    invited = tenancy.member_invite(
        project=world.environment.project, email="ann@example.com", role="approver"
    ).membership.user
    uid = urlsafe_base64_encode(force_bytes(invited.pk))
    token = default_token_generator.make_token(invited)
    driver.get(f"{world.url}/accounts/reset/{uid}/{token}/")
    ready(driver, "#id_new_password1")
    assert "Welcome" in driver.find_element(By.TAG_NAME, "h1").text


def members(driver, world: World) -> None:
    tenancy.member_invite(project=world.environment.project, email="ann@example.com", role="viewer")
    visit("/projects/payments/members", as_admin=True, selector="#member-table")(driver, world)


def token_detail(which: str) -> Callable:
    def go(driver, world: World) -> None:
        token = getattr(world, which)
        visit(f"/tokens/{token.friendly_id}", as_admin=True)(driver, world)

    return go


def bulk_review(driver, world: World) -> None:
    visit("/projects/payments/prod/tokens", as_admin=True, selector="tr[data-token]")(driver, world)
    for box in driver.find_elements(By.CSS_SELECTOR, "input[name=ids]"):
        box.click()
    driver.find_element(By.CSS_SELECTOR, "[data-bulk-button][value=approved]").click()
    ready(driver, "#review-title")


def webhook_detail(driver, world: World) -> None:
    path = f"/projects/payments/prod/webhooks/{world.endpoint_id}"
    visit(path, as_admin=True)(driver, world)


def slack_page(driver, world: World) -> None:
    from tokens.delivery.slack import connections

    connection = connections.slack_connect(
        environment=world.environment,
        bot_token="xoxb-1111-2222-a11yBotTokenForTests",
        signing_secret="8f742231b10e8888abcd99yyyzzz85a5",
        default_channel="approvals",
    )
    connections.slack_route_add(connection=connection, tag="refund", channel="#refunds")
    visit("/projects/payments/prod/slack", as_admin=True)(driver, world)


def slack_page_new(driver, world: World) -> None:
    visit("/projects/payments/prod/slack", as_admin=True)(driver, world)


def confirmation(driver, world: World) -> None:
    driver.get(callback_url(world.titled, base=world.url) + "?decision=approved")
    ready(driver, "form.confirm-form")


def personal_confirmation(driver, world: World) -> None:
    recipient = world.titled.recipients.get(email="bob@example.com")
    driver.get(personal_url(world.titled, recipient, base=world.url))
    ready(driver, "form.confirm-form")


def proposal_confirmation(driver, world: World) -> None:
    assert world.proposed is not None
    recipient = world.proposed.recipients.get()
    driver.get(personal_url(world.proposed, recipient, base=world.url))
    ready(driver, "fieldset.proposal-form")


def approved(driver, world: World) -> None:
    confirmation(driver, world)
    driver.find_element(By.CSS_SELECTOR, "input[name=field_amount]").send_keys("3400")
    driver.find_element(By.CSS_SELECTOR, "form.confirm-form button.approve").click()
    ready(driver, ".result")
    world.titled.refresh_from_db()
    assert world.titled.status == Token.Status.COMPLETED


def invalid_link(driver, world: World) -> None:
    good = callback_url(world.titled, base=world.url)
    driver.get(good[:-4] + ("0000" if not good.endswith("0000") else "1111"))
    ready(driver)
    assert "This link is not valid" in driver.find_element(By.TAG_NAME, "h1").text


def too_many(driver, world: World) -> None:
    from django.conf import settings

    settings.WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = "1/1m"  # restored by the settings fixture
    good = callback_url(world.titled, base=world.url)
    bad = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    driver.get(bad)
    driver.get(bad)
    ready(driver)
    assert "Too many invalid links" in driver.find_element(By.TAG_NAME, "h1").text


def error_page(path: str, heading: str, *, as_admin: bool = False) -> Callable:
    def go(driver, world: World) -> None:
        visit(path, as_admin=as_admin, selector="#error-title")(driver, world)
        assert driver.find_element(By.ID, "error-title").text == heading

    return go


def csrf_failure(driver, world: World) -> None:
    driver.get(world.url + "/accounts/login/")
    ready(driver, "#id_username")
    driver.delete_cookie("csrftoken")
    driver.find_element(By.ID, "id_username").send_keys("adam")
    driver.find_element(By.ID, "id_password").send_keys("whatever")
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    ready(driver, "#error-title")
    assert "This form expired" in driver.find_element(By.ID, "error-title").text


PAGES: dict[str, Callable] = {
    "login": visit("/accounts/login/", selector="#id_username"),
    "password-reset": visit("/accounts/password_reset/", selector="#id_email"),
    "password-reset-done": visit("/accounts/password_reset/done/"),
    "password-reset-confirm": password_reset_confirm(valid=True),
    "password-reset-confirm-invalid": password_reset_confirm(valid=False),
    "password-reset-complete": visit("/accounts/reset/done/"),
    "password-change": visit("/accounts/password_change/", as_admin=True),
    "password-change-done": visit("/accounts/password_change/done/", as_admin=True),
    "home": visit("/", as_admin=True),
    "token-list-filtered": visit(
        "/projects/payments/prod/tokens?status=WAITING&tag=refund&period=24h",
        as_admin=True,
        selector="tr[data-token]",
    ),
    "token-list": visit("/projects/payments/prod/tokens", as_admin=True, selector="tr"),
    "bulk-review": bulk_review,
    "token-detail-request": token_detail("titled"),
    "token-detail-completed": token_detail("done"),
    "token-detail-proposal": token_detail("proposed"),
    "audit-export": visit("/projects/payments/prod/audit", as_admin=True, selector="form"),
    "webhook-list": visit("/projects/payments/prod/webhooks", as_admin=True),
    "members": members,
    "invitation-accept": invitation_accept,
    "webhook-detail": webhook_detail,
    "slack": slack_page,
    "slack-not-connected": slack_page_new,
    "callback-confirmation": confirmation,
    "callback-personal": personal_confirmation,
    "callback-proposal": proposal_confirmation,
    "callback-approved": approved,
    "callback-invalid-link": invalid_link,
    "callback-too-many": too_many,
    "error-404": error_page("/no/such/page", "We could not find that page"),
    "error-404-member": error_page("/tokens/nosuch", "We could not find that page", as_admin=True),
    "error-403": error_page("/test-errors/forbidden", "You cannot open this page", as_admin=True),
    "error-500": error_page("/test-errors/crash", "Something went wrong on our side"),
    "error-csrf": csrf_failure,
    "api-docs": visit("/api/docs/", selector=".swagger-ui .opblock .opblock-summary-method"),
}


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " / ".join(node["summary"].splitlines()[1:3]).strip()
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


@pytest.fixture(autouse=True)
def _error_urls(settings):
    # The 403 and 500 pages need a view that fails on demand (tests/error_urls.py).
    settings.ROOT_URLCONF = "tests.error_urls"


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("page", PAGES)
def test_axe_finds_no_violation(browser, world, page: str, viewport: str) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORTS[viewport])
    PAGES[page](browser, world)
    width, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert scroll <= width, f"{page} scrolls sideways at {width}px: {scroll}px wide"
    if (page, viewport) in SCREENSHOTS:
        browser.execute_script("window.__metrics = arguments[0]", VIEWPORTS[viewport])
        shoot(browser, SCREENSHOTS[page, viewport])

    result = browser.execute_async_script(RUN_AXE, TAGS)
    assert "error" not in result, result.get("error")
    assert not result["violations"], (
        f"axe-core {PINNED} found accessibility violations on {page} ({viewport}, "
        f"{browser.current_url}):\n{describe(result['violations'])}"
    )

    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)  # keyboard modality
    rings = browser.execute_script(FOCUS_RINGS)
    assert rings["checked"] > 0 or page == "api-docs", f"{page}: nothing could take focus"
    assert not rings["problems"], f"focus rings on {page} ({viewport}):\n" + "\n".join(
        rings["problems"]
    )
