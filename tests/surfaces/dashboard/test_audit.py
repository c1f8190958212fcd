"""The token page says whether its history verifies and offers it as JSON Lines; an
environment's audit events of a period download from their own page."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for
from tokens.domain import actors, lifecycle
from tokens.models import TokenEvent

SYSTEM = actors.Actor.system()


def test_the_token_page_says_its_history_verifies(viewer, waiting):
    lifecycle.token_cancel(token=waiting, actor=SYSTEM)
    page = client_for(viewer).get(f"/tokens/{waiting.friendly_id}").content.decode()
    assert "This history verifies: 2 events in an unbroken hash chain" in page
    assert f"/tokens/{waiting.friendly_id}/audit.jsonl" in page


def test_the_token_page_says_when_it_does_not(viewer, waiting):
    TokenEvent.objects.filter(token=waiting, seq=1).update(email="mallory@example.com")
    page = client_for(viewer).get(f"/tokens/{waiting.friendly_id}").content.decode()
    assert "This history does not verify" in page and "event #1, created" in page


def test_the_token_download(viewer, outsider, waiting):
    response = client_for(viewer).get(f"/tokens/{waiting.friendly_id}/audit.jsonl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    (line,) = [json.loads(text) for text in response.content.decode().splitlines()]
    assert (line["seq"], line["kind"], line["previous"]) == (1, "created", "")
    assert client_for(outsider).get(f"/tokens/{waiting.friendly_id}/audit.jsonl").status_code == 404
    assert client_for(None).get(f"/tokens/{waiting.friendly_id}/audit.jsonl").status_code == 302


def test_the_environment_export_of_a_period(viewer, environment, make_token):
    old = make_token()
    TokenEvent.objects.filter(token=old).update(created_at=timezone.now() - timedelta(days=40))
    recent = make_token()
    lifecycle.token_cancel(token=recent, actor=SYSTEM)
    client = client_for(viewer)
    page = client.get(f"/projects/{environment.project.slug}/dev/audit")
    assert page.status_code == 200 and b'type="date"' in page.content
    today = timezone.now().date()
    response = client.get(
        f"/projects/{environment.project.slug}/dev/audit",
        {"since": (today - timedelta(days=7)).isoformat(), "until": today.isoformat()},
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    lines = [
        json.loads(text) for text in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert [(line["token"], line["seq"]) for line in lines] == [
        (recent.friendly_id, 1),
        (recent.friendly_id, 2),
    ]
    assert lines[1]["previous"] == lines[0]["digest"]


def test_the_environment_export_refuses_a_bad_period(viewer, outsider, environment):
    path = f"/projects/{environment.project.slug}/dev/audit"
    backwards = client_for(viewer).get(path, {"since": "2026-12-07", "until": "2026-12-01"})
    assert backwards.status_code == 400
    assert b"The period ends before it starts" in backwards.content
    nonsense = client_for(viewer).get(path, {"since": "soon", "until": "2026-12-01"})
    assert nonsense.status_code == 400 and b"Enter a valid date" in nonsense.content
    assert client_for(outsider).get(path).status_code == 404
