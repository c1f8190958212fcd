"""Reminders and escalations, end to end: a request created through the API over HTTP with
``remindAfter`` and ``escalateAfter`` + ``escalateTo`` (seconds, so the test waits for them);
the worker's outbox task, run as the beat would, sends the reminder to the approver who has not
decided and the escalation to the new person, each on time; a superuser reads them at
/admin/sent-mail/; the escalation's recipient opens their personal link on a 390 px phone and
approves; the audit trail records them. A request resolved before its follow-ups fall due gets
neither."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import PASSWORD
from tests.browser.test_admin_e2e import admin_log_in
from tests.browser.test_dashboard_e2e import PHONE, shoot, wait
from tokens.domain import actors, decide, tenancy
from tokens.models import OutboxMessage, Token, TokenEvent
from tokens.tasks import deliver_outbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE = "Refund order 5120 (980 EUR)"
SUBJECT = f"Decision needed: {TITLE} (Payments/prod)"
REMIND_AFTER, ESCALATE_AFTER = 2, 5  # seconds from creation


def api(live_server, secret: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/waitpoints/tokens{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our live server
        return json.load(response)


def mailbox(directory: Path) -> list[dict[str, str]]:
    """What the mailbox backend kept: one .eml file per message, oldest first."""
    found = []
    for path in sorted(directory.glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        found.append(
            {
                "to": str(parsed["To"]),
                "subject": str(parsed["Subject"]),
                "token": str(parsed["X-Waitpoint-Id"]),
            }
        )
    return found


class Beat:
    """The worker's outbox task, run as the beat would (every 0.1 s here), remembering when
    each round ran: a follow-up is on time when the first round after it fell due sent it."""

    def __init__(self) -> None:
        self.rounds: list[tuple[datetime, datetime]] = []

    def until(self, condition: Callable[[], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = timezone.now()
            deliver_outbox()
            self.rounds.append((started, timezone.now()))
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"not within {seconds} s")

    def assert_on_time(self, event: TokenEvent | None, due: datetime) -> None:
        assert event is not None
        first = next((r for r in self.rounds if r[0] >= due), None)
        assert first is not None, "no round ran after it fell due"
        assert due <= event.created_at <= first[1], (due, event.created_at, first)


def follow_up(token: Token, kind: str) -> TokenEvent | None:
    return token.events.filter(kind=kind).first()


def test_a_reminder_and_an_escalation_go_out_on_time(
    browser, live_server, payments, settings, tmp_path, django_user_model
) -> None:
    settings.WAITPOINTS_OUTBOX_SENDERS = 1
    settings.EMAIL_BACKEND = "tokens.delivery.mailbox.EmailBackend"  # the embedded default
    settings.WAITPOINTS_MAIL_DIR = str(tmp_path / "mail")
    settings.PUBLIC_BASE_URL = live_server.url  # the e-mailed links lead to this server
    mail_dir = tmp_path / "mail"
    _key, secret = tenancy.api_key_create(environment=payments)
    follow_ups = {
        "timeout": "1h",
        "remindAfter": f"{REMIND_AFTER}s",
        "escalateAfter": f"{ESCALATE_AFTER}s",
        "escalateTo": ["boss@example.com"],
    }
    created = api(
        live_server,
        secret,
        "",
        {
            "title": TITLE,
            "approvers": ["alice@example.com", "bob@example.com"],
            "requiredApprovals": 2,
            **follow_ups,
        },
    )
    token = Token.objects.get(pk=created["id"].removeprefix("waitpoint_"))
    remind_at = token.created_at + timedelta(seconds=REMIND_AFTER)
    escalate_at = token.created_at + timedelta(seconds=ESCALATE_AFTER)
    # A second request, decided before its follow-ups fall due: it gets neither.
    quiet_id = api(
        live_server,
        secret,
        "",
        {"title": "Refund order 5121", "approvers": ["carol@example.com"], **follow_ups},
    )["id"]
    api(live_server, secret, f"/{quiet_id}/complete", {"data": {"status": "approved"}})
    quiet = Token.objects.get(pk=quiet_id.removeprefix("waitpoint_"))
    assert quiet.status == Token.Status.COMPLETED

    beat = Beat()
    # The first requests go out at once; alice decides; nothing else is due yet.
    beat.until(lambda: len(mailbox(mail_dir)) == 2)
    assert {m["to"] for m in mailbox(mail_dir)} == {"alice@example.com", "bob@example.com"}
    assert {m["subject"] for m in mailbox(mail_dir)} == {SUBJECT}
    decide.decide(
        authority=decide.Authority.link(),
        token=token,
        actor=actors.Actor.system(),
        voter=decide.Voter.for_email("alice@example.com"),
        decision="approved",
    )

    # The reminder: to bob only (alice has decided), on time, before the escalation.
    beat.until(lambda: any(m["subject"].startswith("Reminder:") for m in mailbox(mail_dir)))
    reminded = follow_up(token, TokenEvent.Kind.REMINDED)
    beat.assert_on_time(reminded, remind_at)
    assert reminded is not None and reminded.detail == {"to": ["bob@example.com"]}
    reminders = [m for m in mailbox(mail_dir) if m["subject"].startswith("Reminder:")]
    assert reminders == [
        {"to": "bob@example.com", "subject": f"Reminder: {SUBJECT}", "token": token.friendly_id}
    ]
    assert not follow_up(token, TokenEvent.Kind.ESCALATED)

    # The escalation: boss is asked too, with a link of their own, on time.
    beat.until(lambda: any(m["subject"].startswith("Escalated:") for m in mailbox(mail_dir)))
    escalated = follow_up(token, TokenEvent.Kind.ESCALATED)
    beat.assert_on_time(escalated, escalate_at)
    assert escalated is not None and escalated.detail == {"to": ["boss@example.com"]}
    token.refresh_from_db()
    assert token.approvers == ["alice@example.com", "bob@example.com", "boss@example.com"]

    # The decided request's follow-ups were settled as moot, and nobody was e-mailed about it.
    def quiet_settled() -> bool:
        rows = OutboxMessage.objects.filter(token=quiet).exclude(
            kind=OutboxMessage.Kind.APPROVAL_EMAIL
        )
        return len(rows) == 2 and all(row.failed_at for row in rows)

    beat.until(quiet_settled)
    assert not quiet.events.filter(
        kind__in=[TokenEvent.Kind.REMINDED, TokenEvent.Kind.ESCALATED]
    ).exists()
    assert [m["token"] for m in mailbox(mail_dir)].count(quiet.friendly_id) == 0
    assert sorted((m["to"], m["subject"]) for m in mailbox(mail_dir)) == [
        ("alice@example.com", SUBJECT),
        ("bob@example.com", SUBJECT),
        ("bob@example.com", f"Reminder: {SUBJECT}"),
        ("boss@example.com", f"Escalated: {SUBJECT}"),
    ]

    # A superuser reads them on /admin/sent-mail/ and opens the escalation.
    django_user_model.objects.create_superuser(username="sam", password=PASSWORD)
    admin_log_in(browser, live_server, "sam")
    browser.get(f"{live_server.url}/admin/sent-mail/")
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")][1:]
        for row in browser.find_elements(By.CSS_SELECTOR, "#content-main tbody tr")
    ]
    assert sorted(rows) == [
        ["alice@example.com", SUBJECT],
        ["bob@example.com", SUBJECT],
        ["bob@example.com", f"Reminder: {SUBJECT}"],
        ["boss@example.com", f"Escalated: {SUBJECT}"],
    ]
    browser.find_element(By.LINK_TEXT, f"Escalated: {SUBJECT}").click()
    body = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".module pre")))
    match = re.search(rf"{re.escape(live_server.url)}/\S+/decide/\S+\?decision=approved", body.text)
    assert match, body.text
    personal_link = match.group(0)

    # The boss, on a phone, not logged in to anything: their own link, approved.
    browser.delete_all_cookies()
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(personal_link)
    browser.execute_script("window.__metrics = arguments[0]", PHONE)
    wait(browser).until(ec.presence_of_element_located((By.ID, "confirm-title")))
    inner, scroll = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert inner == 390 and scroll <= inner, f"horizontal scroll: {scroll}px in {inner}px"
    assert browser.find_element(By.ID, "confirm-title").text == TITLE
    assert "You are deciding as boss@example.com" in browser.find_element(By.ID, "deciding-as").text
    shoot(browser, "confirm-escalated-phone.png")
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    result = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result")))
    assert "Approved" in result.text
    assert "boss@example.com: approved" in result.text

    token.refresh_from_db()
    assert token.status == Token.Status.COMPLETED
    output = json.loads(token.output)["json"]
    assert [(v["by"], v["status"]) for v in output["votes"]] == [
        ("alice@example.com", "approved"),
        ("boss@example.com", "approved"),
    ]
    completed = token.events.get(kind=TokenEvent.Kind.COMPLETED)
    assert (completed.credential, completed.email) == ("personal_link", "boss@example.com")
    sent_to = [e.detail["to"] for e in token.events.filter(kind=TokenEvent.Kind.EMAIL_SENT)]
    assert sorted(sent_to) == [
        "alice@example.com",
        "bob@example.com",
        "bob@example.com",
        "boss@example.com",
    ]

    # Support staff see who decided in the token's audit trail.
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    admin_log_in(browser, live_server, "sam")
    browser.get(f"{live_server.url}/admin/tokens/token/{token.pk}/change/")
    trail = {
        row.find_element(By.CSS_SELECTOR, "td.field-kind").text: row
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.form-row")
        if row.find_elements(By.CSS_SELECTOR, "td.field-kind")
    }
    assert trail["Completed"].find_element(By.CSS_SELECTOR, "td.field-actor").text == (
        "boss@example.com"
    )
    assert "boss@example.com" in trail["Escalated"].text
    assert "bob@example.com" in trail["Reminder queued"].text
    assert browser.find_element(By.CSS_SELECTOR, "pre.token-output").is_displayed()

    # Resolved: nothing more goes out, however long the beat runs.
    before = len(mailbox(mail_dir))
    deliver_outbox()
    assert len(mailbox(mail_dir)) == before
