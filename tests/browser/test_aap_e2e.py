"""In headless Chromium on a 390 px phone: an AAP request's confirmation page shows the proposed
call without scrolling sideways, the long argument folded and opened on a tap, the hostile
strings as text (no script runs, nothing is a link)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser.test_review_and_links import keep_size, use_size
from tokens.domain import actors
from tokens.domain.aap import instances
from tokens.domain.aap import requests as aap_requests
from tokens.domain.links import callback_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_proposed_call_reads_on_a_phone(browser, live_server, payments) -> None:
    instance, _secret = instances.instance_create_for_environment(
        environment=payments, name="codex-chris-laptop"
    )
    request, _ = aap_requests.request_create(
        instance=instance,
        key="k1",
        body={
            "tool": "Bash",
            "server": "shell",
            "arguments": {
                "command": "curl javascript:alert(1) <img src=x onerror=alert(2)>",
                "script": "set -e\n" + "echo " + "a" * 600,
                "options": {"cwd": "/srv/" + "deep/" * 40, "env": {"A": "1"}},
            },
            "timeout": "1h",
            "agent_reasoning": "<script>alert(3)</script> The tests need it.",
        },
        actor=actors.Actor.system(),
    )
    use_size(browser, "phone")
    browser.get(callback_url(request.token, base=live_server.url))
    keep_size(browser, "phone")  # nothing scrolls sideways
    section = browser.find_element(By.CSS_SELECTOR, "section.aap-call")
    assert "Bash" in section.text and "codex-chris-laptop" in section.text
    assert "<script>alert(3)</script>" in section.text  # shown as text
    assert not section.find_elements(By.CSS_SELECTOR, "a, script, img")
    details = section.find_element(By.CSS_SELECTOR, "details")
    assert details.get_attribute("open") is None
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", details)
    details.find_element(By.CSS_SELECTOR, "summary").click()
    assert details.get_attribute("open") is not None
    keep_size(browser, "phone")  # opened, still no sideways scroll
