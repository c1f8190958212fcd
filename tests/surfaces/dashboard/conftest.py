"""A small world for dashboard tests: project "alice" (the shared ``environment``) with a viewer,
an approver and an admin; project "bob" (``other_environment``) with its own approver."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from tokens.models import Environment, Membership, Token


def member(environment: Environment, username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw-for-tests-123")
    Membership.objects.create(user=user, project=environment.project, role=role)
    return user


@pytest.fixture
def viewer(environment: Environment) -> User:
    return member(environment, "vera", Membership.Role.VIEWER)


@pytest.fixture
def approver(environment: Environment) -> User:
    return member(environment, "april", Membership.Role.APPROVER)


@pytest.fixture
def admin_member(environment: Environment) -> User:
    return member(environment, "adam", Membership.Role.ADMIN)


@pytest.fixture
def outsider(other_environment: Environment) -> User:
    """An approver, but in project "bob" only."""
    return member(other_environment, "oscar", Membership.Role.APPROVER)


def client_for(user: User | None) -> Client:
    # CSRF enforced, as in a browser: every action must carry the token from the page.
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT="pytest-browser/1.0")
    if user is not None:
        client.force_login(user)
    return client


def csrf_post(client: Client, path: str, data: dict | None = None, **extra):
    """POST with the CSRF token a rendered page would carry."""
    client.get("/accounts/login/")  # renders a form, so it sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token}, **extra)


@pytest.fixture
def waiting(make_token) -> Token:
    return make_token(timeout="1h", tags=["refund", "customer:42"], idempotency_key="order-42")


def messages_of(response) -> list[str]:
    """The flash messages a response set (the dashboard reports every action through them)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def output_of(token: Token):
    """A decided token's stored output, as the SDK decodes it (super+json)."""
    token.refresh_from_db()
    assert token.output_type == "application/super+json"
    return json.loads(token.output)["json"]
