"""The wait endpoint through Django (WSGI, the test client): the same answers as the ASGI
handler the web role uses (tested live in tests/surfaces/triggerdev_v1/live/)."""

from __future__ import annotations

import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.smoke.processes import wait_until
from tokens.domain import actors, lifecycle

pytestmark = pytest.mark.django_db(transaction=True)


def url(token, timeout: str = "0s") -> str:
    return f"/api/v1/waitpoints/tokens/{token.friendly_id}/wait?timeout={timeout}"


def test_a_resolved_token_answers_as_retrieve(api_client, make_token) -> None:
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data="done")
    waited = api_client.get(url(token, "10s"))
    retrieved = api_client.get(f"/api/v1/waitpoints/tokens/{token.friendly_id}")
    assert waited.status_code == 200
    assert waited.json() == retrieved.json()


def test_a_waiting_token_at_the_end_of_the_wait(api_client, make_token) -> None:
    assert api_client.get(url(make_token())).json()["status"] == "WAITING"


def test_errors(api_client, anonymous_client, other_api_client, make_token) -> None:
    token = make_token()
    assert api_client.get(url(token, "1h")).json() == {
        "error": "Invalid timeout '1h': the longest wait is 60s."
    }
    assert anonymous_client.get(url(token)).status_code == 401
    assert other_api_client.get(url(token)).status_code == 404
    posted = api_client.post(url(token))
    assert (posted.status_code, posted["Allow"]) == (405, "GET")


def test_a_public_access_token_of_another_token_gets_a_403(api_client, make_token) -> None:
    created = api_client.post("/api/v1/waitpoints/tokens", {}, format="json")
    other = make_token()
    browser = APIClient()
    browser.credentials(HTTP_AUTHORIZATION=f"Bearer {created['x-trigger-jwt']}")
    response = browser.get(url(other))
    assert response.status_code == 403
    assert response.json() == {
        "error": "Unauthorized",
        "code": "unauthorized",
        "param": "access_token",
        "type": "authorization",
    }
    own = browser.get(f"/api/v1/waitpoints/tokens/{created.json()['id']}/wait?timeout=0s")
    assert own.status_code == 200


def _hub_sessions() -> int:
    """LISTEN connections of this process's wait hubs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [f"waitpoints-wait-hub {os.getpid()}"],
        )
        return cursor.fetchone()[0]


def test_a_wait_through_django_leaves_no_listen_connection_behind(api_client, make_token) -> None:
    # The WSGI view runs each wait on an event loop of its own, which ends with the request;
    # the hub's LISTEN connection must end with it. Left open (the hub kept it referenced from
    # its cancelled task), it kept the test database from being dropped at the end of the suite.
    token = make_token()
    lifecycle.token_complete(token=token, actor=actors.Actor.system(), data="done")
    for _ in range(3):
        assert api_client.get(url(token, "10s")).json()["status"] == "COMPLETED"
    assert wait_until(lambda: _hub_sessions() == 0, timeout=10), _hub_sessions()
