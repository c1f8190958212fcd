"""``/api/v1/webhooks``: wiring, errors, camelCase, the secret shown once, other environments."""

from __future__ import annotations

import pytest

from tests.surfaces.triggerdev_v1.helpers import assert_error, nulls
from tokens.delivery.webhooks import signing as webhook_signing
from tokens.domain import keys, limits
from tokens.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
HOOKS = "/api/v1/webhooks"


def create(client, **body):
    return client.post(HOOKS, {"url": "https://hooks.example.com/in", **body}, format="json")


def test_it_creates_an_endpoint_and_shows_its_secret_once(api_client, environment):
    response = create(
        api_client, events=["waitpoint.completed"], description="orders", enabled=True
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("webhook_")
    assert body["url"] == "https://hooks.example.com/in"
    assert body["events"] == ["waitpoint.completed"]
    assert body["description"] == "orders"
    assert body["enabled"] is True
    assert body["secret"].startswith("whsec_")
    assert set(body) == {
        "id", "url", "events", "description", "enabled", "createdAt", "updatedAt", "secret"
    }  # fmt: skip
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.environment == environment
    assert body["secret"] not in endpoint.encrypted_secret  # stored encrypted
    assert webhook_signing.endpoint_secret(endpoint) == body["secret"]

    shown = api_client.get(f"{HOOKS}/{body['id']}").json()
    assert "secret" not in shown
    assert nulls(shown) == []
    listed = api_client.get(HOOKS).json()
    assert [item["id"] for item in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]


def test_it_defaults_to_every_event_and_omits_an_empty_description(api_client):
    body = create(api_client).json()
    assert body["events"] == [
        "waitpoint.completed",
        "waitpoint.timed_out",
        "waitpoint.cancelled",
    ]
    assert "description" not in body


def test_it_updates_only_the_fields_given(api_client):
    created = create(api_client, description="first").json()
    response = api_client.patch(
        f"{HOOKS}/{created['id']}", {"enabled": False, "events": ["waitpoint.cancelled"]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is False
    assert body["events"] == ["waitpoint.cancelled"]
    assert body["description"] == "first"
    assert body["url"] == created["url"]
    assert "secret" not in body


def test_it_rotates_the_secret(api_client):
    created = create(api_client).json()
    response = api_client.post(f"{HOOKS}/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.content
    rotated = response.json()["secret"]
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    assert webhook_signing.endpoint_secret(WebhookEndpoint.objects.get()) == rotated


def test_it_deletes(api_client):
    created = create(api_client).json()
    response = api_client.delete(f"{HOOKS}/{created['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": created["id"], "deleted": True}
    assert not WebhookEndpoint.objects.exists()
    assert_error(api_client.get(f"{HOOKS}/{created['id']}"), 404, "Webhook endpoint not found")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://example.com/x"}, "Invalid url: only http:// and https:// URLs"),
        ({"url": "not a url"}, "Invalid url"),
        ({"url": ""}, "Invalid url"),
        ({"url": 42}, "Invalid url"),
        ({"url": "https://user:pw@example.com/"}, "Invalid url: credentials"),
        ({"url": "https://example.com/", "events": ["waitpoint.created"]}, "Invalid events"),
        ({"url": "https://example.com/", "events": "waitpoint.completed"}, "Invalid events"),
        ({"url": "https://example.com/", "events": []}, "Invalid events"),
        ({"url": "https://example.com/", "enabled": "yes"}, "Invalid enabled"),
        ({"url": "https://example.com/", "description": "x" * 501}, "Invalid description"),
    ],
)
def test_it_rejects_bad_input_with_a_clear_message(api_client, body, message):
    response = api_client.post(HOOKS, body, format="json")
    error = assert_error(response, 400)
    assert error["error"].startswith(message), error
    assert not WebhookEndpoint.objects.exists()


def test_it_requires_a_url(api_client):
    assert_error(api_client.post(HOOKS, {}, format="json"), 400)


def test_it_rejects_a_bad_patch_without_changing_anything(api_client):
    created = create(api_client).json()
    response = api_client.patch(f"{HOOKS}/{created['id']}", {"url": "gopher://x"}, format="json")
    assert_error(response, 400)
    assert WebhookEndpoint.objects.get().url == created["url"]


def test_it_refuses_private_targets_unless_allowed(api_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    for url in [
        "http://127.0.0.1:8180/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as one number: caught after resolution
    ]:
        response = create(api_client, url=url)
        error = assert_error(response, 400)
        assert "private" in error["error"], (url, error)
    assert create(api_client, url="https://93.184.215.14/hook").status_code == 200
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    assert create(api_client, url="http://127.0.0.1:8180/hook").status_code == 200


def test_it_answers_401_without_a_secret_key(anonymous_client, api_client):
    created = create(api_client).json()
    assert_error(anonymous_client.get(HOOKS), 401)
    assert_error(anonymous_client.post(HOOKS, {"url": "https://x.example/"}, format="json"), 401)
    assert_error(anonymous_client.delete(f"{HOOKS}/{created['id']}"), 401)


def test_it_hides_other_environments_endpoints(api_client, other_api_client):
    created = create(api_client).json()
    path = f"{HOOKS}/{created['id']}"
    assert other_api_client.get(HOOKS).json() == {"data": []}
    assert_error(other_api_client.get(path), 404, "Webhook endpoint not found")
    assert_error(other_api_client.patch(path, {"enabled": False}, format="json"), 404)
    assert_error(other_api_client.delete(path), 404)
    assert_error(other_api_client.post(f"{path}/rotate-secret"), 404)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.enabled is True
    assert webhook_signing.endpoint_secret(endpoint) == created["secret"]


def test_it_answers_404_for_unknown_and_malformed_ids(api_client):
    assert_error(api_client.get(f"{HOOKS}/webhook_{keys.generate_token_id()}"), 404)
    assert_error(api_client.get(f"{HOOKS}/NOT-AN-ID!"), 404)


def test_it_answers_405_for_other_methods(api_client):
    created = create(api_client).json()
    assert_error(api_client.put(f"{HOOKS}/{created['id']}", {}, format="json"), 405)
    assert_error(api_client.get(f"{HOOKS}/{created['id']}/rotate-secret"), 405)


def test_it_limits_endpoints_per_environment(api_client):
    for _ in range(limits.MAX_WEBHOOKS_PER_ENVIRONMENT):
        assert create(api_client).status_code == 200
    assert_error(create(api_client), 400)
