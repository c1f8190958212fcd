"""API calls skip the middleware that serves pages (tokens/surfaces/common/page_middleware.py);
pages, and paths that resolve to no API view, still get all of it."""

from __future__ import annotations

import pytest

from tokens.surfaces.common import negotiation

TOKENS = "/api/v1/waitpoints/tokens"
pytestmark = pytest.mark.django_db


def test_an_api_call_has_no_session_user_or_messages_but_every_header(api_client) -> None:
    response = api_client.get(TOKENS)
    assert response.status_code == 200
    request = response.wsgi_request
    assert negotiation.is_api_call(request)
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    # What the rest of the stack adds is still there.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response
    assert "x-ratelimit-limit" in response


def test_a_page_still_gets_sessions_users_and_messages(client) -> None:
    response = client.get("/accounts/login/")
    request = response.wsgi_request
    assert not negotiation.is_api_call(request)
    assert hasattr(request, "session") and hasattr(request, "user")
    assert hasattr(request, "_messages")


def test_an_unresolved_api_path_keeps_common_middleware(client) -> None:
    # APPEND_SLASH: the schema lives at /api/schema/.
    response = client.get("/api/schema")
    assert response.status_code == 301 and response["Location"] == "/api/schema/"
    assert client.get("/api/v1/nothing").json() == {"error": "Not found"}


def test_a_program_posting_to_the_callback_url_is_no_api_call(make_token, client) -> None:
    from tokens.domain.links import callback_url

    token = make_token()
    response = client.post(callback_url(token, base=""), b"{}", content_type="application/json")
    assert response.status_code == 200
    assert not negotiation.is_api_call(response.wsgi_request)  # a plain view: all middleware
