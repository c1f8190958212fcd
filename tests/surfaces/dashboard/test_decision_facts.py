"""The token page says what the deadline brings and whether the approval was consumed."""

from __future__ import annotations

import pytest

from tests.surfaces.dashboard.conftest import client_for
from tokens.domain import actors, consumption, lifecycle

pytestmark = pytest.mark.django_db


def test_it_shows_the_deadline_rule_the_window_and_the_consumption(approver, make_token):
    escalate = {"action": "escalate", "escalateTo": ["lead@example.com"], "timeout": "2h"}
    token = make_token(timeout="1h", on_timeout=escalate, decision_valid_for="15m")
    page = client_for(approver).get(f"/tokens/{token.friendly_id}").content.decode()
    assert "ask lead@example.com, then timeout 2h later" in page
    assert "decided by the deadline rule" in page and "Approval valid for" in page

    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data={"status": "approved"})
    consumption.token_consume(token=token, actor=actors.Actor.system(), consumer="refund-worker")
    page = client_for(approver).get(f"/tokens/{token.friendly_id}").content.decode()
    assert 'id="consumed"' in page and "by refund-worker" in page
