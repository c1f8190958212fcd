"""The 400, 403, 404, 500 and CSRF-failure pages: in the product's look with a way back for people,
JSON on API paths as before, and a 500 page that renders with no request and no database."""

from __future__ import annotations

import json
import re

import pytest
from django.template import TemplateSyntaxError
from django.test import Client, RequestFactory

from tests.surfaces.dashboard.conftest import member
from tokens.models import Membership
from waitpoints_site import errors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _error_urls(settings):
    settings.ROOT_URLCONF = "tests.error_urls"


def client() -> Client:
    # As a browser: exceptions become the handlers' responses, CSRF is checked.
    return Client(raise_request_exception=False, enforce_csrf_checks=True)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def assert_product_page(response, status: int, heading: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    body = text(response)
    assert "/static/css/base.css" in body  # the product's stylesheet and layout
    assert 'class="topbar"' in body and 'id="main"' in body
    assert f'<h1 id="error-title">{heading}</h1>' in body
    assert f"Error {status}" in body
    assert response["Cache-Control"] == "no-store"
    return body


def test_404_for_a_visitor_offers_the_login(environment):
    body = assert_product_page(client().get("/no/such/page"), 404, "We could not find that page")
    assert 'href="/accounts/login/"' in body and ">Log in</a>" in body
    assert "Go to the dashboard" in body


def test_404_for_a_member_offers_waiting_for_me(environment):
    user = member(environment, "april", Membership.Role.APPROVER)
    browser = client()
    browser.force_login(user)
    body = assert_product_page(
        browser.get("/tokens/waitpoint_nosuchtoken"), 404, "We could not find that page"
    )
    assert ">Go to Waiting for me</a>" in body and 'href="/"' in body
    assert ">Log in</a>" not in body
    assert "april" in body  # the top bar knows who is signed in


def test_403_page(environment):
    browser = client()
    browser.force_login(member(environment, "vera", Membership.Role.VIEWER))
    body = assert_product_page(
        browser.get("/test-errors/forbidden"), 403, "You cannot open this page"
    )
    assert "ask an admin of the project" in body
    assert "not for you" not in body  # the exception's text is for the log


def test_500_page_needs_no_request_context(environment, caplog):
    browser = client()
    browser.force_login(member(environment, "adam", Membership.Role.ADMIN))
    body = assert_product_page(
        browser.get("/test-errors/crash"), 500, "Something went wrong on our side"
    )
    assert "a bug" not in body and "Traceback" not in body
    # Rendered without the request: no user, so both ways back and no account in the top bar.
    assert ">Log in</a>" in body and "Go to the dashboard" in body and "adam" not in body


def test_500_page_renders_with_the_database_unreachable(settings, django_assert_num_queries):
    # No request context means no session, user or query: it renders with zero queries.
    request = RequestFactory().get("/somewhere")
    with django_assert_num_queries(0):
        response = errors.server_error(request)
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_500_falls_back_to_bare_html_when_the_template_breaks(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise TemplateSyntaxError("broken base.html")

    monkeypatch.setattr(errors, "render_to_string", broken)
    response = errors.server_error(RequestFactory().get("/somewhere"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
    assert '<a href="/">Go to the dashboard</a>' in response.content.decode()
    assert "the 500 page failed to render" in caplog.text


def test_csrf_failure_page_on_a_dashboard_form(environment, caplog):
    response = client().post("/accounts/login/", {"username": "x", "password": "y"})
    body = assert_product_page(response, 403, "This form expired, nothing was changed")
    assert "reload the page and submit the form again" in body
    assert "CSRF cookie not set" not in body  # the reason goes to the log only
    assert "CSRF check failed on /accounts/login/: CSRF cookie not set" in caplog.text


def test_csrf_failure_page_on_the_approval_link(make_token):
    from tokens.domain.links import callback_url

    url = callback_url(make_token(timeout="1h"), base="")
    response = client().post(url, {"decision": "approved"})
    body = assert_product_page(response, 403, "This form expired, nothing was changed")
    # Whoever holds the link may have no account: the way back is the link itself.
    assert f'<a class="button primary" href="{url}">Open the request again</a>' in body
    assert ">Log in</a>" not in body


def test_400_page(environment):
    # A Host header outside ALLOWED_HOSTS is Django's own SuspiciousOperation: a 400.
    response = client().get("/accounts/login/", HTTP_HOST="evil.example")
    assert_product_page(response, 400, "This request could not be understood")


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("get", "/api/v1/no/such/thing", 404, "Not found"),
        ("get", "/api/v1/test-errors/crash", 500, "Internal Server Error"),
    ],
)
def test_api_paths_keep_answering_json(environment, method, path, status, error):
    response = getattr(client(), method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": error}


def test_the_403_handler_answers_json_on_api_paths():
    # (A view under /api/ raising PermissionDenied never gets here: ApiJsonErrorsMiddleware answers
    # any exception there; DRF views answer their own 403s. The handler still stays JSON.)
    request = RequestFactory().get("/api/v1/something")
    response = errors.permission_denied(request, PermissionError("no"))
    assert response.status_code == 403
    assert json.loads(response.content) == {"error": "Forbidden"}


def test_csrf_failure_on_an_api_path_is_json(environment):
    request = RequestFactory().post("/api/v1/something", data="{}", content_type="application/json")
    response = errors.csrf_failure(request, reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert json.loads(response.content) == {"error": "Forbidden: CSRF check failed"}
