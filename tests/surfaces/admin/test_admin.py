"""Django admin for support staff: search, read-only state, actions through services, API keys."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tokens.delivery import outbox
from tokens.domain import actors, keys, lifecycle, tenancy
from tokens.models import ApiKey, Environment, Membership, OutboxMessage, Token, TokenEvent

CHANGELIST = "/admin/tokens/token/"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")


@pytest.fixture
def support(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def staff_client(django_user_model, username: str, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(username=username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_staff(django_user_model) -> Client:
    return staff_client(django_user_model, "vic", "view_token", "view_apikey", "view_outboxmessage")


@pytest.fixture
def change_staff(django_user_model) -> Client:
    return staff_client(django_user_model, "chas", "view_token", "change_token")


def act(client: Client, action: str, *tokens: Token, url: str = CHANGELIST, **extra):
    data = {"action": action, "_selected_action": [t.pk for t in tokens], **extra}
    return client.post(url, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def refreshed(token: Token) -> Token:
    token.refresh_from_db()
    return token


# -- Search -----------------------------------------------------------------------------------


def test_it_finds_tokens_by_id_key_and_tag(support: Client, make_token):
    wanted = make_token(idempotency_key="order-4812-refund", tags=["refund", "eu"])
    other = make_token(idempotency_key="order-9999", tags=["deploy"])

    for term in (wanted.pk, wanted.friendly_id, "order-4812", "refund"):
        response = support.get(CHANGELIST, {"q": term})
        assert response.status_code == 200
        found = {token.pk for token in response.context["cl"].result_list}
        assert found == {wanted.pk}, term
    everything = support.get(CHANGELIST)
    assert {t.pk for t in everything.context["cl"].result_list} == {wanted.pk, other.pk}


def test_it_filters_by_status_and_environment(support: Client, make_token, other_environment):
    waiting = make_token()
    elsewhere = make_token(env=other_environment)
    done = make_token()
    lifecycle.token_complete(token=done, actor=actors.Actor.system(), data="ok")

    by_status = support.get(CHANGELIST, {"status__exact": "COMPLETED"})
    by_env = support.get(CHANGELIST, {"environment__id__exact": other_environment.pk})

    assert [t.pk for t in by_status.context["cl"].result_list] == [done.pk]
    assert [t.pk for t in by_env.context["cl"].result_list] == [elsewhere.pk]
    assert waiting.pk not in {t.pk for t in by_env.context["cl"].result_list}


def test_it_shows_the_audit_trail_and_outbox_read_only(support: Client, make_token):
    token = make_token(approvers=["ann@example.com"], tags=["refund"])
    outbox.deliver_due()

    response = support.get(reverse("admin:tokens_token_change", args=[token.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert token.friendly_id in html
    assert "audit trail" in html.lower()
    assert "Approval e-mail sent" in html
    assert "ann@example.com" in html
    assert "delivered" in html
    assert 'name="_save"' not in html  # nothing to save: state changes only through actions
    assert token.environment.callback_secret not in html


def dashboard_link(html: str) -> re.Match[str] | None:
    return re.search(
        r'<a href="([^"]*)"[^>]*id="open-in-dashboard"[^>]*>Open in dashboard</a>', html
    )


def test_the_token_page_links_to_the_same_token_on_the_dashboard(
    support: Client, superuser, make_token
):
    token = make_token(title="Refund order 4812")
    Membership.objects.create(
        user=superuser, project=token.environment.project, role=Membership.Role.VIEWER
    )

    html = support.get(reverse("admin:tokens_token_change", args=[token.pk])).content.decode()

    link = dashboard_link(html)
    assert link is not None, "no dashboard link"
    assert link.group(1) == f"/tokens/{token.friendly_id}"
    assert "target=" not in link.group(0)  # the same tab
    assert "dashboard-note" not in html
    page = support.get(link.group(1))
    assert page.status_code == 200
    assert "Refund order 4812" in page.content.decode()


def test_the_token_page_says_why_there_is_no_dashboard_link(
    support: Client, viewer_staff: Client, make_token
):
    # Superusers and staff see every token here, but the dashboard shows a token to members
    # of its project only: a link would lead to its 404.
    token = make_token()
    url = reverse("admin:tokens_token_change", args=[token.pk])

    for client in (support, viewer_staff):
        html = client.get(url).content.decode()
        assert dashboard_link(html) is None
        assert "Not on your dashboard: only members of project alice see this token there." in html
        assert client.get(f"/tokens/{token.friendly_id}").status_code in (302, 404)


def test_the_token_list_shows_title_id_tags_and_deadline(support: Client, make_token):
    token = make_token(title="Deploy 4.2 <b>now</b>", tags=["deploy", "eu"], timeout="2h")

    html = support.get(CHANGELIST).content.decode()

    assert "Deploy 4.2 &lt;b&gt;now&lt;/b&gt;" in html  # escaped
    assert f'<code class="token-id">{token.friendly_id}</code>' in html
    assert "deploy, eu" in html
    assert 'href="/admin/tokens/token/' in html
    assert "admin-extras/tokens.css" in html
    deadline = timezone.localtime(token.timeout_at)
    assert f"{deadline.day} {deadline:%b %Y, %H:%M}" in html


# -- Actions ----------------------------------------------------------------------------------


def test_it_asks_for_a_reason_before_cancelling(support: Client, make_token):
    token = make_token()

    response = act(support, "cancel_tokens", token)

    assert response.status_code == 200
    assert b'name="reason"' in response.content
    assert refreshed(token).status == Token.Status.WAITING


def test_it_cancels_through_the_service_and_audits_the_staff_user(
    support: Client, superuser, make_token
):
    first, second = make_token(), make_token()
    done = make_token()
    lifecycle.token_complete(token=done, actor=actors.Actor.system(), data={"ok": True})

    response = act(
        support, "cancel_tokens", first, second, done, confirm="yes", reason="Duplicate order"
    )

    assert messages_of(response) == [
        "Cancelled 2 tokens. 1 token already resolved; left unchanged."
    ]
    for token in (first, second):
        token = refreshed(token)
        assert token.status == Token.Status.CANCELLED
        assert token.cancel_reason == "Duplicate order"
        event = token.events.get(kind=TokenEvent.Kind.CANCELLED)
        assert event.channel == TokenEvent.Channel.ADMIN
        assert event.user == superuser
    done = refreshed(done)
    assert done.status == Token.Status.COMPLETED
    assert done.events.get(kind=TokenEvent.Kind.CANCEL_IGNORED).channel == "admin"


def test_it_uses_a_default_reason_naming_the_staff_user(support: Client, make_token):
    token = make_token()

    act(support, "cancel_tokens", token, confirm="yes", reason="")

    assert refreshed(token).cancel_reason == "Cancelled by support staff (sam)"


def test_it_forces_a_timeout_and_never_reopens_terminal_tokens(
    support: Client, superuser, make_token
):
    token = make_token()
    cancelled = make_token()
    lifecycle.token_cancel(token=cancelled, actor=actors.Actor.system(), reason="gone")

    response = act(support, "force_timeout_tokens", token, cancelled)

    assert messages_of(response) == ["Timed out 1 token. 1 token already resolved; left unchanged."]
    token = refreshed(token)
    assert token.status == Token.Status.TIMED_OUT
    assert token.output_is_error is True
    event = token.events.get(kind=TokenEvent.Kind.TIMED_OUT)
    assert (event.channel, event.user, event.detail) == ("admin", superuser, {"forced": True})
    assert refreshed(cancelled).status == Token.Status.CANCELLED

    # A forged change-form POST cannot reopen it either: every state field is read-only.
    url = reverse("admin:tokens_token_change", args=[token.pk])
    support.post(url, {"status": "WAITING", "output": "", "completed_at": "", "_save": "Save"})
    again = refreshed(token)
    assert again.status == Token.Status.TIMED_OUT
    assert again.completed_at == token.completed_at
    assert again.output == token.output


def test_it_resends_approval_emails(support: Client, make_token):
    token = make_token(approvers=["ann@example.com", "ben@example.com"])
    closed = make_token(approvers=["ann@example.com"])
    lifecycle.token_complete(token=closed, actor=actors.Actor.system(), data="ok")

    response = act(support, "resend_approval_emails", token, closed)

    assert messages_of(response) == [
        "Queued 2 approval e-mails for 1 token. 1 token skipped (resolved, or no approvers)."
    ]
    assert OutboxMessage.objects.filter(token=token).count() == 4
    assert OutboxMessage.objects.filter(token=closed).count() == 1


def test_it_lets_view_only_staff_look_but_not_act(viewer_staff: Client, make_token):
    token = make_token(idempotency_key="k-1")

    listing = viewer_staff.get(CHANGELIST, {"q": "k-1"})
    detail = viewer_staff.get(reverse("admin:tokens_token_change", args=[token.pk]))
    for action in ("cancel_tokens", "force_timeout_tokens", "resend_approval_emails"):
        act(viewer_staff, action, token, confirm="yes", reason="nope")

    assert [t.pk for t in listing.context["cl"].result_list] == [token.pk]
    assert b"cancel_tokens" not in listing.content
    assert detail.status_code == 200
    token = refreshed(token)
    assert token.status == Token.Status.WAITING
    assert not token.events.exclude(kind=TokenEvent.Kind.CREATED).exists()


def test_it_lets_staff_with_change_permission_act(change_staff: Client, make_token):
    token = make_token()

    act(change_staff, "force_timeout_tokens", token)

    assert refreshed(token).status == Token.Status.TIMED_OUT


def test_it_keeps_staff_without_token_permissions_out(django_user_model, make_token):
    token = make_token()
    client = staff_client(django_user_model, "nina")

    assert client.get(CHANGELIST).status_code == 403
    act(client, "force_timeout_tokens", token)
    assert refreshed(token).status == Token.Status.WAITING


def test_it_never_deletes_tokens(support: Client, make_token):
    token = make_token()

    response = support.get(reverse("admin:tokens_token_delete", args=[token.pk]))

    assert response.status_code == 403
    assert Token.objects.filter(pk=token.pk).exists()


# -- Outbox -----------------------------------------------------------------------------------


def test_it_retries_a_failed_message(support: Client, make_token, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_emails.ExplodingBackend"
    token = make_token(approvers=["ann@example.com"], timeout="365d")
    message = OutboxMessage.objects.get(token=token)
    now = timezone.now()
    for _ in range(outbox.HANDLERS[OutboxMessage.Kind.APPROVAL_EMAIL].max_attempts):
        outbox.deliver_due(now=now)
        now += timedelta(days=1)
    message.refresh_from_db()
    assert message.failed_at is not None

    listing = support.get("/admin/tokens/outboxmessage/", {"state": "failed"})
    assert [m.pk for m in listing.context["cl"].result_list] == [message.pk]
    page = support.get(reverse("admin:tokens_outboxmessage_change", args=[message.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()  # read-only: retried by the action only
    assert "ConnectionRefusedError" in listing.content.decode()
    response = act(support, "retry_messages", message, url="/admin/tokens/outboxmessage/")

    assert messages_of(response) == ["1 message queued for another attempt."]
    message.refresh_from_db()
    assert message.failed_at is None


# -- Tenancy and API keys ---------------------------------------------------------------------


def test_it_shows_a_new_api_key_once_and_stores_only_digest_and_ciphertext(
    support: Client, environment: Environment
):
    response = support.post(
        reverse("admin:tokens_apikey_add"), {"environment": environment.pk, "name": "ci"}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'value="(tr_dev_[A-Za-z0-9_\-]+)"', response.content.decode()).group(1)
    assert len(secret) >= len("tr_dev_") + 32
    assert not secret.startswith("tr_dev_sk_")
    api_key = ApiKey.objects.get(name="ci")
    assert api_key.digest == keys.key_digest(secret)
    assert secret not in api_key.encrypted_key
    assert keys.decrypt(api_key.encrypted_key) == secret
    assert secret.startswith(api_key.prefix)

    # Never again: not on the list, not on the key's page, not its digest or ciphertext.
    for url in (
        reverse("admin:tokens_apikey_changelist"),
        reverse("admin:tokens_apikey_change", args=[api_key.pk]),
    ):
        html = support.get(url).content.decode()
        assert secret not in html
        assert api_key.digest not in html
        assert api_key.encrypted_key not in html
        assert api_key.prefix in html

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/waitpoints/tokens").status_code == 200


def test_it_revokes_keys_so_the_api_answers_401(support: Client, environment: Environment):
    api_key, secret = tenancy.api_key_create(environment=environment, name="old")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/waitpoints/tokens").status_code == 200

    response = act(support, "revoke_keys", api_key, url=reverse("admin:tokens_apikey_changelist"))

    assert messages_of(response) == ["Revoked 1 API key."]
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api.get("/api/v1/waitpoints/tokens").status_code == 401
    again = act(support, "revoke_keys", api_key, url=reverse("admin:tokens_apikey_changelist"))
    assert messages_of(again) == ["Revoked 0 API keys. 1 key already revoked."]


def test_it_lets_view_only_staff_not_create_or_revoke_keys(
    viewer_staff: Client, environment: Environment
):
    api_key, _secret = tenancy.api_key_create(environment=environment)

    add = viewer_staff.post(
        reverse("admin:tokens_apikey_add"), {"environment": environment.pk, "name": "x"}
    )
    act(viewer_staff, "revoke_keys", api_key, url=reverse("admin:tokens_apikey_changelist"))

    assert add.status_code == 403
    assert ApiKey.objects.count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_it_creates_environments_with_their_secrets(support: Client, environment: Environment):
    response = support.post(
        reverse("admin:tokens_environment_add"),
        {"project": environment.project.pk, "slug": "prod"},
        follow=True,
    )

    assert response.status_code == 200
    prod = Environment.objects.get(project=environment.project, slug="prod")
    assert prod.callback_secret and prod.signing_secret and prod.public_id.startswith("env_")
    html = support.get(reverse("admin:tokens_environment_change", args=[prod.pk])).content
    assert prod.callback_secret.encode() not in html
    assert prod.signing_secret.encode() not in html
    project_page = support.get(
        reverse("admin:tokens_project_change", args=[environment.project.pk])
    )
    assert project_page.status_code == 200
    assert b"prod" in project_page.content


def test_it_refuses_a_duplicate_environment(support: Client, environment: Environment):
    response = support.post(
        reverse("admin:tokens_environment_add"),
        {"project": environment.project.pk, "slug": "dev"},
    )

    assert response.status_code == 200  # the form again, with the error
    assert Environment.objects.filter(project=environment.project, slug="dev").count() == 1
