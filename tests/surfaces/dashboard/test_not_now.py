""" "Not now" on the dashboard: the token page's form puts a request aside for me alone; it
leaves my "waiting for me" until then and is listed as put aside; nothing is decided."""

from __future__ import annotations

import re

import pytest

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member, messages_of
from tokens.models import Membership, Snooze, Token, TokenEvent

pytestmark = pytest.mark.django_db


def not_now(client, token: Token, **data):
    return csrf_post(client, f"/tokens/{token.friendly_id}/not-now", {"not_now": "aside", **data})


def queue_ids(client) -> list[str]:
    html = client.get("/").content.decode()
    table = (
        html.split('id="token-table"', 1)[1].split("</table>", 1)[0]
        if "token-table" in html
        else ""
    )
    return re.findall(r'<tr data-token="([^"]+)"', table)


def test_it_leaves_my_queue_and_only_mine(approver, environment, waiting):
    colleague = member(environment, "cole", Membership.Role.APPROVER)
    mine, theirs = client_for(approver), client_for(colleague)
    assert waiting.friendly_id in queue_ids(mine)
    page = mine.get(f"/tokens/{waiting.friendly_id}").content.decode()
    assert 'name="not_now" value="aside"' in page and 'name="until"' in page

    response = not_now(mine, waiting, until="4h")
    assert response.status_code == 302 and response["Location"] == "/"
    assert "nothing was decided" in messages_of(response)[0]
    assert waiting.friendly_id not in queue_ids(mine)
    assert waiting.friendly_id in queue_ids(theirs)  # for me alone
    home = mine.get("/").content.decode()
    assert 'id="aside-title"' in home and f'data-token="{waiting.friendly_id}"' in home
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING and not waiting.votes.exists()
    event = waiting.events.get(kind=TokenEvent.Kind.SNOOZED)
    assert event.user == approver and event.channel == "dashboard"

    page = mine.get(f"/tokens/{waiting.friendly_id}").content.decode()
    assert "You put this aside until" in page and 'value="clear"' in page
    assert 'class="approve"' in page  # still decidable now
    back = csrf_post(mine, f"/tokens/{waiting.friendly_id}/not-now", {"not_now": "clear"})
    assert back.status_code == 302 and not Snooze.objects.exists()
    assert waiting.friendly_id in queue_ids(mine)


def test_a_chosen_date_and_time_is_read_as_utc(approver, waiting):
    client = client_for(approver)
    not_now(client, waiting, until="1h", until_at="2027-01-02T09:30")
    assert Snooze.objects.get().until.isoformat() == "2027-01-02T09:30:00+00:00"


def test_bad_times_say_so_and_change_nothing(approver, waiting):
    response = not_now(client_for(approver), waiting, until="whenever")
    assert response.status_code == 302
    assert messages_of(response)[0].startswith("Not put aside: Invalid until")
    assert not Snooze.objects.exists()


def test_a_viewer_cannot_and_is_audited(viewer, waiting):
    client = client_for(viewer)
    assert 'value="aside"' not in client.get(f"/tokens/{waiting.friendly_id}").content.decode()
    response = not_now(client, waiting, until="1h")
    assert messages_of(response)[0].startswith("Not put aside: Only the people who may decide")
    assert not Snooze.objects.exists()
    assert waiting.events.filter(kind=TokenEvent.Kind.DENIED).exists()


def test_other_projects_404_and_get_is_refused(outsider, approver, waiting):
    assert not_now(client_for(outsider), waiting, until="1h").status_code == 404
    assert client_for(approver).get(f"/tokens/{waiting.friendly_id}/not-now").status_code == 405
    assert not Snooze.objects.exists()


def test_it_needs_the_csrf_token(approver, waiting):
    response = client_for(approver).post(
        f"/tokens/{waiting.friendly_id}/not-now", {"not_now": "aside", "until": "1h"}
    )
    assert response.status_code == 403 and not Snooze.objects.exists()
