"""Requests approvers can decide (5): a waiting token's deadline moves (API, dashboard, admin),
audited; never for a resolved token or one whose deadline already passed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tests.surfaces.triggerdev_v1.helpers import assert_error, url_of
from tokens.domain import actors, lifecycle
from tokens.domain.exceptions import NotWaiting
from tokens.models import Membership, Token, TokenEvent, iso

SYSTEM = actors.Actor.system()


def extend(api_client, token: Token, body: object):
    return api_client.post(url_of(token, "/extend"), body, format="json")


def test_the_api_moves_a_waiting_tokens_deadline_and_audits_it(api_client, make_token):
    token = make_token(timeout="10m")
    old = token.timeout_at
    before = timezone.now()
    response = extend(api_client, token, {"timeout": "2h"})
    assert response.status_code == 200, response.content
    token.refresh_from_db()
    assert token.timeout_at is not None and token.timeout_at > old
    assert before + timedelta(hours=2) <= token.timeout_at <= timezone.now() + timedelta(hours=2)
    assert response.json()["timeoutAt"] == iso(token.timeout_at)
    event = token.events.get(kind=TokenEvent.Kind.EXTENDED)
    assert event.detail == {"from": iso(old), "to": iso(token.timeout_at)}
    assert (event.channel, event.credential) == ("api", "secret_key")


def test_an_iso_date_works_and_bad_timeouts_are_refused(api_client, make_token):
    token = make_token(timeout="10m")
    later = timezone.now() + timedelta(days=2)
    assert extend(api_client, token, {"timeout": iso(later)}).status_code == 200
    assert_error(
        extend(api_client, token, {}),
        400,
        'Invalid timeout: required, e.g. "1h" or an ISO-8601 date.',
    )
    past = iso(timezone.now() - timedelta(hours=1))
    assert (
        "the date is in the past"
        in assert_error(extend(api_client, token, {"timeout": past}), 400)["error"]
    )


def test_a_resolved_token_is_never_extended(api_client, make_token):
    token = make_token(timeout="10m")
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"ok": True})
    body = assert_error(extend(api_client, token, {"timeout": "1h"}), 422)
    assert body["error"] == (
        f"Cannot extend {token.friendly_id}: it is already completed. "
        "Only a waiting token's deadline can move."
    )
    assert token.events.filter(kind=TokenEvent.Kind.EXTEND_IGNORED).count() == 1


def test_a_token_past_its_deadline_is_not_revived(api_client, make_token):
    token = make_token(timeout="10m")
    Token.objects.filter(pk=token.pk).update(timeout_at=timezone.now() - timedelta(seconds=1))
    body = assert_error(extend(api_client, token, {"timeout": "1h"}), 422)
    assert "already timed out" in body["error"]
    token.refresh_from_db()
    assert token.status == Token.Status.TIMED_OUT


def test_another_environments_token_is_not_found(other_api_client, make_token):
    token = make_token(timeout="10m")
    assert_error(extend(other_api_client, token, {"timeout": "1h"}), 404)


def test_dashboard_admins_extend_and_approvers_may_not(environment, make_token):
    token = make_token(timeout="10m")
    adam = member(environment, "adam", Membership.Role.ADMIN)
    april = member(environment, "april", Membership.Role.APPROVER)
    page = client_for(adam).get(f"/tokens/{token.friendly_id}").content.decode()
    assert "Extend deadline" in page
    assert (
        "Extend deadline"
        not in client_for(april).get(f"/tokens/{token.friendly_id}").content.decode()
    )

    denied = csrf_post(client_for(april), f"/tokens/{token.friendly_id}/extend", {"timeout": "2h"})
    assert denied.status_code == 302
    old = token.timeout_at
    token.refresh_from_db()
    assert token.timeout_at == old
    assert token.events.get(kind=TokenEvent.Kind.DENIED).detail == {"action": "extend"}

    response = csrf_post(
        client_for(adam), f"/tokens/{token.friendly_id}/extend", {"timeout": "2h"}, follow=True
    )
    assert f"Extended {token.friendly_id} until" in response.content.decode()
    token.refresh_from_db()
    assert token.timeout_at > old
    bad = csrf_post(
        client_for(adam), f"/tokens/{token.friendly_id}/extend", {"timeout": "soon"}, follow=True
    )
    assert "Not extended: Invalid timeout" in bad.content.decode()


def test_django_admin_extends_selected_tokens(make_token):
    waiting = make_token(timeout="10m")
    done = make_token(timeout="10m")
    lifecycle.token_cancel(token=done, actor=SYSTEM)
    staff = User.objects.create_superuser("sam", "sam@example.com", "pw-for-tests-123")
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/tokens/token/",
        {"action": "extend_by_day", "_selected_action": [waiting.pk, done.pk]},
        follow=True,
    )
    assert (
        "Extended 1 token. 1 token already resolved; left unchanged." in response.content.decode()
    )
    waiting.refresh_from_db()
    assert waiting.timeout_at > timezone.now() + timedelta(hours=23)


@pytest.mark.django_db(transaction=True)
def test_an_extension_racing_a_completion_never_reopens_it(environment):
    from tests.domain.test_races import run_together

    for _ in range(5):
        token = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token

        def extend_it(t: Token = token) -> str:
            try:
                lifecycle.token_extend(token=Token.objects.get(pk=t.pk), actor=SYSTEM, timeout="3h")
            except NotWaiting:
                return "refused"
            return "extended"

        def complete_it(t: Token = token) -> bool:
            return lifecycle.token_complete(
                token=Token.objects.get(pk=t.pk), actor=SYSTEM, data={}
            ).applied

        outcome, completed = run_together([extend_it, complete_it])
        token.refresh_from_db()
        assert completed and token.status == Token.Status.COMPLETED
        assert outcome in ("refused", "extended")
