"""Dashboard webhooks page: admin role only, CSRF-protected POSTs through the services,
the secret shown once, recent deliveries listed."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import signing as webhook_signing
from tokens.models import Membership, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
PAGE = "/projects/alice/dev/webhooks"


@pytest.fixture
def admin_client(environment):
    return client_for(member(environment, "adam", Membership.Role.ADMIN))


def test_it_creates_an_endpoint_and_shows_the_secret_once(admin_client, environment):
    assert admin_client.get(PAGE).status_code == 200
    response = csrf_post(
        admin_client,
        f"{PAGE}/new",
        {"url": "https://hooks.example.com/in", "events": ["waitpoint.completed"]},
    )
    assert response.status_code == 200
    assert (
        response["Cache-Control"].startswith("no-store") or "no-cache" in response["Cache-Control"]
    )
    secret = re.search(rb'value="(whsec_[^"]+)"', response.content).group(1).decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.environment == environment
    assert endpoint.events == ["waitpoint.completed"]
    assert webhook_signing.endpoint_secret(endpoint) == secret
    page = admin_client.get(PAGE)
    assert b"https://hooks.example.com/in" in page.content
    assert secret.encode() not in page.content


def test_it_says_what_is_wrong_with_a_bad_url(admin_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = csrf_post(
        admin_client, f"{PAGE}/new", {"url": "http://10.0.0.1/", "events": ["waitpoint.completed"]}
    )
    assert response.status_code == 400
    assert b"private address" in response.content
    response = csrf_post(admin_client, f"{PAGE}/new", {"url": "ftp://x.example/", "events": []})
    assert b"only http:// and https://" in response.content or b"at least one" in response.content
    assert not WebhookEndpoint.objects.exists()


def test_it_disables_enables_rotates_and_deletes(admin_client, environment):
    endpoint, secret = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://a.example/"
    )
    base = f"{PAGE}/{endpoint.friendly_id}"
    assert csrf_post(admin_client, f"{base}/disable").status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    csrf_post(admin_client, f"{base}/enable")
    endpoint.refresh_from_db()
    assert endpoint.enabled is True
    rotated = csrf_post(admin_client, f"{base}/rotate")
    new_secret = re.search(rb'value="(whsec_[^"]+)"', rotated.content).group(1).decode()
    assert new_secret != secret
    assert webhook_signing.endpoint_secret(WebhookEndpoint.objects.get()) == new_secret
    csrf_post(admin_client, f"{base}/delete")
    assert not WebhookEndpoint.objects.exists()


def test_it_lists_recent_deliveries(admin_client, environment, make_token):
    endpoint, _ = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://a.example/"
    )
    token = make_token()
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        webhook_id="msg_x",
        event_type="waitpoint.completed",
        token_id=token.pk,
        attempt=2,
        status_code=500,
        latency_ms=31,
        response_excerpt="upstream exploded",
        error="HTTP 500",
        created_at=timezone.now(),
    )
    page = admin_client.get(f"{PAGE}/{endpoint.friendly_id}")
    assert page.status_code == 200
    for text in (b"upstream exploded", b"HTTP 500", b"31 ms", token.friendly_id.encode()):
        assert text in page.content
    assert b"HTTP 500" in admin_client.get(PAGE).content  # the last attempt, on the list


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.APPROVER])
def test_only_admins_see_or_change_webhooks(environment, role):
    endpoint, _ = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://a.example/"
    )
    client = client_for(member(environment, "someone", role))
    assert client.get(PAGE).status_code == 404
    assert client.get(f"{PAGE}/{endpoint.friendly_id}").status_code == 404
    response = csrf_post(client, f"{PAGE}/{endpoint.friendly_id}/delete")
    assert response.status_code == 404
    response = csrf_post(client, f"{PAGE}/new", {"url": "https://b.example/", "events": []})
    assert response.status_code == 404
    assert WebhookEndpoint.objects.count() == 1


def test_other_projects_endpoints_are_not_found(admin_client, other_environment):
    endpoint, _ = webhook_endpoints.webhook_endpoint_create(
        environment=other_environment, url="https://a.example/"
    )
    assert admin_client.get("/projects/bob/dev/webhooks").status_code == 404
    assert admin_client.get(f"{PAGE}/{endpoint.friendly_id}").status_code == 404
    assert csrf_post(admin_client, f"{PAGE}/{endpoint.friendly_id}/delete").status_code == 404
    assert WebhookEndpoint.objects.exists()


def test_actions_need_post_and_csrf(admin_client, environment):
    endpoint, _ = webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://a.example/"
    )
    assert admin_client.get(f"{PAGE}/{endpoint.friendly_id}/delete").status_code == 405
    assert admin_client.post(f"{PAGE}/{endpoint.friendly_id}/delete").status_code == 403
    assert WebhookEndpoint.objects.exists()


def test_the_token_list_links_admins_to_webhooks(admin_client, environment):
    page = admin_client.get("/projects/alice/dev/tokens")
    assert PAGE.encode() in page.content
