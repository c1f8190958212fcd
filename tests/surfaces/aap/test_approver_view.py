"""What the approver of an AAP request sees, on the dashboard's token page and the callback's
confirmation page: the exact proposed call, every value escaped and nothing linked."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.surfaces.dashboard.conftest import client_for, member
from tokens.domain import actors
from tokens.domain.aap import instances, presentation
from tokens.domain.aap import requests as aap_requests
from tokens.domain.links import callback_url
from tokens.models import AapRequest, Membership

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script>'
LINK = "javascript:alert(1)"
BODY = {
    "tool": "Bash",
    "server": "shell<b>srv</b>",
    "arguments": {
        "command": f"echo {HOSTILE}",
        "url": LINK,
        "options": {"cwd": "/tmp", "env": {"A": "1"}},
        "script": "line one\n" + "x" * 300,
    },
    "timeout": "1h",
    "agent_reasoning": f"Trust me {HOSTILE}",
    "context": {"runtime": "codex-cli"},
}


def _request(environment, body: dict) -> AapRequest:
    instance, _secret = instances.instance_create_for_environment(
        environment=environment, name="laptop<i>"
    )
    request, _ = aap_requests.request_create(
        instance=instance, key="k1", body=body, actor=actors.Actor.system()
    )
    return AapRequest.objects.select_related("token").get(pk=request.pk)


def _assert_shows_call(html: str) -> None:
    assert "Proposed call" in html
    assert '<code class="aap-tool">Bash</code>' in html
    assert "shell&lt;b&gt;srv&lt;/b&gt;" in html  # the MCP server, escaped
    assert "laptop&lt;i&gt;" in html  # the instance
    assert "codex-cli" in html  # the runtime
    assert "agent&#x27;s own claim" in html or "agent's own claim" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert HOSTILE not in html
    assert f'href="{LINK}"' not in html and "href='javascript" not in html
    assert LINK in html  # shown as text
    assert "<details><summary>309 characters</summary>" in html  # the long string, folded
    assert "&quot;cwd&quot;: &quot;/tmp&quot;" in html  # nested JSON as a formatted block
    assert "too large to review" not in html


def test_the_dashboard_page_shows_the_proposed_call(environment) -> None:
    request = _request(environment, BODY)
    client = client_for(member(environment, "april", Membership.Role.APPROVER))
    response = client.get(f"/tokens/{request.token.friendly_id}")
    assert response.status_code == 200
    _assert_shows_call(response.content.decode())


def test_the_confirmation_page_shows_the_proposed_call(environment) -> None:
    request = _request(environment, BODY)
    response = Client(enforce_csrf_checks=True).get(callback_url(request.token, base=""))
    assert response.status_code == 200
    _assert_shows_call(response.content.decode())


def test_arguments_too_large_to_review_are_flagged(environment) -> None:
    body = {**BODY, "arguments": {"blob": "y" * (presentation.REVIEWABLE_CHARACTERS + 1)}}
    request = _request(environment, body)
    client = client_for(member(environment, "april", Membership.Role.APPROVER))
    html = client.get(f"/tokens/{request.token.friendly_id}").content.decode()
    assert "too large to review" in html


def test_an_ordinary_token_has_no_proposed_call(environment, make_token) -> None:
    token = make_token(timeout="1h")
    assert presentation.proposed_call(token) is None
    client = client_for(member(environment, "april", Membership.Role.APPROVER))
    assert "Proposed call" not in client.get(f"/tokens/{token.friendly_id}").content.decode()
