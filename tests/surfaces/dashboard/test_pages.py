"""Dashboard pages: login, home ("waiting for me"), list with filters, detail, tag typeahead."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for, member
from tokens.domain import actors, lifecycle, tenancy
from tokens.models import Membership, Token

pytestmark = pytest.mark.django_db


def ids_on(html: str) -> list[str]:
    return re.findall(r'data-token="(waitpoint_[0-9a-z]+)"', html)


def list_path(environment) -> str:
    return f"/projects/{environment.project.slug}/{environment.slug}/tokens"


def test_it_redirects_anonymous_users_to_login(waiting: Token) -> None:
    client = client_for(None)
    for path in ("/", list_path(waiting.environment), f"/tokens/{waiting.friendly_id}"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_it_logs_in_and_out(approver) -> None:
    client = client_for(None)
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'autocomplete="current-password"' in page.content.decode()
    csrf = client.cookies["csrftoken"].value
    wrong = client.post(
        "/accounts/login/",
        {"username": "april", "password": "nope", "csrfmiddlewaretoken": csrf},
    )
    assert wrong.status_code == 200
    assert "correct username and password" in wrong.content.decode()
    response = client.post(
        "/accounts/login/",
        {"username": "april", "password": "pw-for-tests-123", "csrfmiddlewaretoken": csrf},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    csrf = client.cookies["csrftoken"].value
    out = client.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf})
    assert out.status_code == 302 and out["Location"] == "/accounts/login/"  # LOGOUT_REDIRECT_URL
    assert client.get("/").status_code == 302


def test_it_sends_a_password_reset_email(approver) -> None:
    client = client_for(None)
    client.get("/accounts/password_reset/")
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/password_reset/", {"email": "april@example.com", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your waitpoints password"
    link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()


def test_it_keeps_admin_api_and_health_working(admin_client) -> None:
    assert client_for(None).get("/healthz").status_code == 200
    assert admin_client.get("/admin/").status_code == 200
    assert client_for(None).get("/api/v1/waitpoints/tokens").status_code == 401


def test_home_lists_waiting_tokens_i_can_decide_soonest_deadline_first(
    approver, environment, other_environment, make_token
) -> None:
    now = timezone.now()
    older = make_token(timeout="1h", now=now - timedelta(minutes=5))
    newer = make_token(timeout="1h", now=now - timedelta(minutes=1))
    done = make_token(timeout="1h")
    lifecycle.token_complete(token=done, actor=actors.Actor.system(), data={"ok": True})
    overdue = make_token(timeout="1m", now=now - timedelta(minutes=2))
    elsewhere = make_token(other_environment, timeout="1h")
    # A second project where april is only a viewer: nothing there is "waiting for me".
    viewed = tenancy.environment_get_or_create(project_slug="carol", slug="prod")
    Membership.objects.create(user=approver, project=viewed.project, role="viewer")
    watched = make_token(viewed, timeout="1h")

    html = client_for(approver).get("/").content.decode()

    assert ids_on(html) == [older.friendly_id, newer.friendly_id]
    for absent in (done, overdue, elsewhere, watched):
        assert absent.friendly_id not in html
    assert 'data-countdown datetime="' in html
    assert "js/dashboard.js" in html
    # The projects section shows every membership, the viewer one included.
    assert "carol" in html and "alice" in html and "bob" not in html


def test_home_paginates_the_queue_by_page(approver, make_token, monkeypatch) -> None:
    from tokens.surfaces.dashboard import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    now = timezone.now()
    tokens = [make_token(timeout="1h", now=now - timedelta(minutes=10 - i)) for i in range(3)]
    client = client_for(approver)
    first = client.get("/").content.decode()
    assert ids_on(first) == [t.friendly_id for t in tokens[:2]]
    next_url = re.search(r'href="([^"]*page=2)"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url).content.decode()
    assert ids_on(second) == [tokens[2].friendly_id]


def test_the_list_shows_only_this_environment(
    viewer, environment, other_environment, make_token
) -> None:
    mine = make_token(tags=["a"])
    theirs = make_token(other_environment, tags=["a"])
    html = client_for(viewer).get(list_path(environment)).content.decode()
    assert ids_on(html) == [mine.friendly_id]
    assert theirs.friendly_id not in html
    assert client_for(viewer).get(list_path(other_environment)).status_code == 404


def test_the_list_filters_by_status_including_cancelled(viewer, environment, make_token) -> None:
    waiting = make_token()
    completed = make_token()
    lifecycle.token_complete(token=completed, actor=actors.Actor.system(), data="ok")
    cancelled = make_token()
    lifecycle.token_cancel(token=cancelled, actor=actors.Actor.system(), reason="no")
    timed_out = make_token(timeout="1m", now=timezone.now() - timedelta(minutes=5))
    client = client_for(viewer)
    path = list_path(environment)

    def shown(query: str) -> set[str]:
        return set(ids_on(client.get(f"{path}?{query}").content.decode()))

    assert shown("status=CANCELLED") == {cancelled.friendly_id}
    assert shown("status=TIMED_OUT") == {timed_out.friendly_id}
    assert shown("status=WAITING") == {waiting.friendly_id}
    assert shown("status=WAITING&status=COMPLETED") == {
        waiting.friendly_id,
        completed.friendly_id,
    }
    assert len(shown("")) == 4


def test_the_list_filters_by_any_of_the_tags(viewer, environment, make_token) -> None:
    red = make_token(tags=["red", "shared"])
    blue = make_token(tags=["blue"])
    make_token(tags=["green"])
    client = client_for(viewer)
    html = client.get(f"{list_path(environment)}?tag=red&tag=blue&tag=").content.decode()
    assert set(ids_on(html)) == {red.friendly_id, blue.friendly_id}
    # The selected tags stay in the form (checked), so the URL is the whole filter state.
    assert 'name="tag" value="red" checked' in html
    assert 'name="tag" value="blue" checked' in html


def test_the_list_matches_tags_as_stored_commas_and_spaces_included(
    viewer, environment, make_token
) -> None:
    # Tags are stored as sent (upstream); the dashboard sends one parameter per tag, so it can
    # find the comma tags the API's comma-separated filter[tags] cannot.
    comma = make_token(tags=["eu,us"])
    spaced = make_token(tags=[" refund "])
    plain = make_token(tags=["eu", "us", "refund"])
    client = client_for(viewer)
    path = list_path(environment)
    assert ids_on(client.get(path, {"tag": "eu,us"}).content.decode()) == [comma.friendly_id]
    assert ids_on(client.get(path, {"tag": " refund "}).content.decode()) == [spaced.friendly_id]
    assert ids_on(client.get(path, {"tag": "refund"}).content.decode()) == [plain.friendly_id]


def test_the_list_filters_by_id_key_and_period(viewer, environment, make_token) -> None:
    now = timezone.now()
    keyed = make_token(idempotency_key="invoice-7")
    old = make_token(now=now - timedelta(days=3))
    client = client_for(viewer)
    path = list_path(environment)

    def shown(query: str) -> list[str]:
        return ids_on(client.get(f"{path}?{query}").content.decode())

    assert shown(f"id={keyed.friendly_id}") == [keyed.friendly_id]
    assert shown(f"id={keyed.pk}") == [keyed.friendly_id]
    assert shown("key=invoice-7") == [keyed.friendly_id]
    assert shown("period=24h") == [keyed.friendly_id]
    assert set(shown("period=7d")) == {keyed.friendly_id, old.friendly_id}
    day = (now - timedelta(days=3)).date().isoformat()
    assert shown(f"created_from={day}&created_to={day}") == [old.friendly_id]


def test_the_list_reports_invalid_filters_instead_of_ignoring_them(
    viewer, environment, make_token
) -> None:
    make_token()
    html = client_for(viewer).get(f"{list_path(environment)}?id=not-an-id!").content.decode()
    assert ids_on(html) == []
    assert "Not a token id" in html


def test_the_list_paginates_with_keyset_cursors_and_keeps_filters(
    viewer, environment, make_token, monkeypatch
) -> None:
    from tokens.surfaces.dashboard import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    tagged = [make_token(tags=["t"]) for _ in range(3)]
    make_token(tags=["other"])
    client = client_for(viewer)
    first = client.get(f"{list_path(environment)}?tag=t").content.decode()
    newest_first = [t.friendly_id for t in reversed(tagged)]
    assert ids_on(first) == newest_first[:2]
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "tag=t" in older
    second = client.get(older).content.decode()
    assert ids_on(second) == newest_first[2:]
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert ids_on(client.get(newer).content.decode()) == newest_first[:2]


def test_the_tag_typeahead_answers_this_environments_tags_by_prefix(
    viewer, environment, other_environment, make_token
) -> None:
    make_token(tags=["refund", "region:eu"])
    make_token(tags=["refund", "review"])
    make_token(other_environment, tags=["rebate"])
    client = client_for(viewer)
    path = f"/projects/{environment.project.slug}/{environment.slug}/tags"
    assert client.get(path, {"q": "re"}).json() == {"tags": ["refund", "region:eu", "review"]}
    assert client.get(path, {"q": "rev"}).json() == {"tags": ["review"]}
    other = f"/projects/{other_environment.project.slug}/{other_environment.slug}/tags"
    assert client.get(other).status_code == 404
    # The list page also ships them in a <datalist> for browsers without JavaScript.
    html = client.get(list_path(environment)).content.decode()
    assert '<option value="region:eu">' in html


def test_the_detail_shows_everything_about_a_token(approver, environment, make_token) -> None:
    token = make_token(timeout="1h", tags=["refund", "customer:42"], idempotency_key="k-1")
    lifecycle.token_complete(
        token=token,
        actor=actors.Actor(channel="api", ip="10.0.0.9"),
        data={"status": "approved", "amount": 12},
    )
    html = client_for(approver).get(f"/tokens/{token.friendly_id}").content.decode()
    assert token.friendly_id in html
    assert "status-approved" in html
    assert f'href="{list_path(environment)}?tag=customer%3A42"' in html
    assert "k-1" in html
    # The callback URL is a credential for admins only (dashboard/test_credentials.py).
    assert "/callback/" not in html
    assert "&quot;amount&quot;: 12" in html  # pretty-printed, one key per line
    assert '"status": "approved",\n  "amount": 12' in html.replace("&quot;", '"')
    assert "Created" in html and "Completed" in html
    assert "10.0.0.9" in html  # the audit trail: who, what, channel, when
    assert html.count('class="event ') == 2


def test_the_detail_resolves_a_token_by_its_bare_id_too(approver, waiting: Token) -> None:
    assert client_for(approver).get(f"/tokens/{waiting.pk}").status_code == 200


def test_the_detail_is_404_for_tokens_of_other_projects(outsider, waiting: Token) -> None:
    response = client_for(outsider).get(f"/tokens/{waiting.friendly_id}")
    assert response.status_code == 404
    assert client_for(outsider).get("/tokens/waitpoint_doesnotexist").status_code == 404


def test_the_detail_shows_buttons_by_role(viewer, approver, admin_member, waiting: Token) -> None:
    path = f"/tokens/{waiting.friendly_id}"
    as_viewer = client_for(viewer).get(path).content.decode()
    as_approver = client_for(approver).get(path).content.decode()
    as_admin = client_for(admin_member).get(path).content.decode()
    approve = f"/tokens/{waiting.friendly_id}/approve"
    complete = f"/tokens/{waiting.friendly_id}/complete"
    assert approve not in as_viewer and "deciding it needs the approver" in as_viewer
    assert approve in as_approver and complete not in as_approver
    assert approve in as_admin and complete in as_admin
    assert f"/tokens/{waiting.friendly_id}/cancel" in as_admin
    assert f"/tokens/{waiting.friendly_id}/force-timeout" in as_admin


def test_a_user_without_projects_sees_an_empty_home() -> None:
    from django.contrib.auth.models import User

    lonely = User.objects.create_user("lonely", password="pw-for-tests-123")
    html = client_for(lonely).get("/").content.decode()
    assert "Nothing is waiting for you" in html
    assert "not a member of any project" in html


def test_a_viewer_in_two_projects_sees_both_lists(environment, other_environment) -> None:
    user = member(environment, "two", "viewer")
    Membership.objects.create(user=user, project=other_environment.project, role="admin")
    client = client_for(user)
    assert client.get(list_path(environment)).status_code == 200
    assert client.get(list_path(other_environment)).status_code == 200


def test_home_counts_waiting_tokens_up_to_a_cap(approver, make_token, monkeypatch) -> None:
    """Counting a million waiting rows would cost more than the page: it stops at the cap."""
    from tokens.persistence import selectors

    monkeypatch.setattr(selectors, "WAITING_COUNT_CAP", 2)
    client = client_for(approver)
    make_token(timeout="1h")
    make_token(timeout="1h")
    done = make_token(timeout="1h")
    lifecycle.token_complete(token=done, actor=actors.Actor.system(), data={"ok": True})
    assert "2 waiting" in client.get("/").content.decode()

    make_token(timeout="1h")
    html = client.get("/").content.decode()
    assert "2+ waiting" in html and "3 waiting" not in html


def test_known_tags_are_distinct_sorted_scoped_and_limited(
    environment, other_environment, make_token
) -> None:
    from tokens.persistence import selectors

    make_token(tags=["b", "a"])
    make_token(tags=["c", "a"])
    make_token(tags=["b"])
    make_token(other_environment, tags=["zzz", "0"])
    names = selectors.tag_names_for_environment
    assert names(environment=environment, limit=200) == ["a", "b", "c"]
    assert names(environment=environment, limit=2) == ["a", "b"]
    assert names(environment=other_environment, limit=200) == ["0", "zzz"]
    assert names(environment=environment, prefix="b", limit=20) == ["b"]
