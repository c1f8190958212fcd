"""Hostile filter values on the human surfaces: the dashboard list (and its tag typeahead) and
the support admin's token list. The page says what is wrong; nothing answers 500."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.surfaces.dashboard.conftest import client_for, member
from tokens.models import Membership, Token

pytestmark = pytest.mark.django_db

NUL = "a\u0000b"
CHANGELIST = "/admin/tokens/token/"


@pytest.fixture
def token(make_token) -> Token:
    return make_token(timeout="1h", tags=["refund"])


def list_path(environment) -> str:
    return f"/projects/{environment.project.slug}/{environment.slug}/tokens"


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("tag", NUL, "Tags cannot contain null characters"),
        ("key", NUL, "Null characters are not allowed."),
        ("id", NUL, "Null characters are not allowed."),
        ("created_from", "99999-01-01", "Enter a valid date."),
        ("created_to", "0000-01-01", "Enter a valid date."),
        ("created_from", NUL, "Enter a valid date."),
        ("period", NUL, "Select a valid choice."),
        ("status", NUL, "Select a valid choice."),
    ],
)
def test_the_dashboard_list_says_what_is_wrong(environment, token, param, value, message) -> None:
    user = member(environment, "vera", Membership.Role.VIEWER)
    response = client_for(user).get(list_path(environment), {param: value})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters are not valid" in html
    assert message in html.replace("&#x27;", "'")
    assert token.friendly_id not in html  # an invalid filter shows no rows, not every row


@pytest.mark.parametrize(
    ("name", "day"), [("created_to", "9999-12-31"), ("created_from", "0001-01-01")]
)
def test_the_dashboard_list_takes_the_ends_of_the_calendar(environment, token, name, day) -> None:
    user = member(environment, "vera", Membership.Role.VIEWER)
    response = client_for(user).get(list_path(environment), {name: day})
    assert response.status_code == 200
    assert token.friendly_id in response.content.decode()


def test_the_tag_typeahead_refuses_nul_as_json(environment, token) -> None:
    user = member(environment, "vera", Membership.Role.VIEWER)
    path = f"/projects/{environment.project.slug}/{environment.slug}/tags"
    response = client_for(user).get(path, {"q": NUL})
    assert response.status_code == 400
    assert response.json() == {"error": "q cannot contain null characters (\\u0000)."}


@pytest.fixture
def support(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "query",
    [
        {"tag": NUL},
        {"q": NUL},
        {"q": "waitpoint_" + NUL},
        {"created_at__gte": "99999-01-01"},
        {"created_at__gte": NUL},
        {"created_at__year": "99999"},
        {"created_at__year": "2024", "created_at__month": "13"},
        {"created_at__year": "2024", "created_at__month": "2", "created_at__day": "31"},
        {"status__exact": NUL},
    ],
)
def test_the_admin_token_list_says_what_is_wrong(support, token, query) -> None:
    response = support.get(CHANGELIST, query, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Invalid filter" in html, html[-3000:]


def test_the_admin_takes_an_out_of_range_id_filter(support, token) -> None:
    # Larger than any bigint: Django's related filter lists everything rather than fail.
    response = support.get(CHANGELIST, {"environment__id__exact": "9" * 30})
    assert response.status_code == 200


# -- dashboard actions: the message names the problem --------------------------------------------


def test_dashboard_actions_say_nul_is_not_allowed(environment, token) -> None:
    from tests.surfaces.dashboard.conftest import csrf_post

    user = member(environment, "adam", Membership.Role.ADMIN)
    client = client_for(user)
    base = f"/tokens/{token.friendly_id}"
    response = csrf_post(client, f"{base}/approve", {"comment": NUL}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Comments cannot contain null characters (\\u0000)."
    ]
    response = csrf_post(client, f"{base}/cancel", {"reason": NUL}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "The reason cannot contain null characters (\\u0000)."
    ]
    for data, message in [
        ('{"a": "x\\u0000"}', "contains a NUL character"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[" * 2000 + "]" * 2000, "nested more than 100 levels deep"),
    ]:
        response = csrf_post(client, f"{base}/complete", {"data": data})
        assert response.status_code == 400
        assert message in response.content.decode()
    token.refresh_from_db()
    assert token.status == Token.Status.WAITING
