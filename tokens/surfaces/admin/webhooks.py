"""Webhook endpoints (the secret shown once, on the page after creation) and every delivery."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from tokens.delivery import http_client, outbox
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.domain import keys, limits
from tokens.domain.exceptions import InvalidInput
from tokens.models import (
    WebhookDelivery,
    WebhookEndpoint,
)
from tokens.persistence import selectors
from tokens.surfaces.admin.common import (
    NoSaveButtons,
    apply_each,
    plural,
    token_admin_link,
)

# ------------------------------------------------------------------------------------------------
# Webhooks: endpoints through tokens.delivery.webhooks.endpoints (the secret shown once, on the
# page after creation),
# each endpoint's recent delivery attempts, and "retry now" for events that did not get through.
# ------------------------------------------------------------------------------------------------

RECENT_DELIVERIES = 25


class WebhookEndpointForm(forms.ModelForm):
    url = forms.CharField(max_length=limits.MAX_URL_LENGTH)  # the service checks it
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("environment", "url", "events", "description", "enabled")

    def clean_url(self) -> str:
        try:
            return http_client.clean_target_url(self.cleaned_data["url"])
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "environment", "event_list", "enabled", "last_attempt", "created_at")
    list_filter = ("enabled", "environment")
    list_select_related = ("environment__project",)
    search_fields = ("url", "description", "=id", "environment__project__slug")
    actions = ("retry_undelivered", "enable_endpoints", "disable_endpoints")
    # Never the secret: it is shown once, when the endpoint is created.

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("environment", "url", "events", "description", "enabled")
        return (
            "friendly_id",
            "environment",
            "url",
            "events",
            "description",
            "enabled",
            "created_at",
            "updated_at",
            "undelivered",
            "recent_deliveries",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (
            "friendly_id",
            "environment",
            "created_at",
            "updated_at",
            "undelivered",
            "recent_deliveries",
        )

    @admin.display(description="events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="id")
    def friendly_id(self, endpoint: WebhookEndpoint) -> str:
        return endpoint.friendly_id

    @admin.display(description="last attempt")
    def last_attempt(self, endpoint: WebhookEndpoint) -> str:
        recent = selectors.webhook_delivery_list_recent(endpoint=endpoint, limit=1)
        if not recent:
            return "—"
        return _outcome(recent[0])

    @admin.display(description="undelivered events")
    def undelivered(self, endpoint: WebhookEndpoint) -> int:
        return selectors.webhook_messages_undelivered(endpoint=endpoint).count()

    @admin.display(description=f"recent deliveries (last {RECENT_DELIVERIES})")
    def recent_deliveries(self, endpoint: WebhookEndpoint) -> str:
        rows = selectors.webhook_delivery_list_recent(endpoint=endpoint, limit=RECENT_DELIVERIES)
        if not rows:
            return "No attempts yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td><code>{}</code></td></tr>",
            (
                (
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.event_type,
                    keys.friendly_id(d.token_id),
                    d.attempt,
                    _outcome(d),
                    f"{d.latency_ms} ms" if d.latency_ms is not None else "",
                    Truncator(d.response_excerpt).chars(120),
                )
                for d in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>event</th><th>token</th><th>attempt</th>"
            "<th>outcome</th><th>latency</th><th>response</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            body,
        )

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        values = {
            "url": form.cleaned_data["url"],
            "events": list(form.cleaned_data["events"]),
            "description": form.cleaned_data.get("description") or "",
            "enabled": form.cleaned_data["enabled"],
        }
        if change:
            webhook_endpoints.webhook_endpoint_update(endpoint=obj, **values)
            return
        created, secret = webhook_endpoints.webhook_endpoint_create(
            environment=obj.environment, **values
        )
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        obj.encrypted_secret = created.encrypted_secret
        obj._state.adding = False
        # On this request's object only, for response_add; never stored anywhere else.
        obj._new_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "Webhook endpoint created",
            "opts": self.model._meta,
            "endpoint": obj,
            "secret": secret,
            "changelist_url": reverse("admin:tokens_webhookendpoint_changelist"),
        }
        response = TemplateResponse(request, "admin/tokens/webhookendpoint/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Its delivery history goes with it; deleting an endpoint needs no separate permission
        # on the (otherwise undeletable) delivery records.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoints.webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoints.webhook_endpoint_delete(endpoint=endpoint)

    @admin.action(description="Retry undelivered events now", permissions=["change"])
    def retry_undelivered(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = sum(
            webhook_endpoints.webhook_endpoint_retry_undelivered(endpoint=endpoint)
            for endpoint in queryset
        )
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, f"{plural(count, 'event')} queued for another attempt.", level)

    @admin.action(description="Enable selected endpoints", permissions=["change"])
    def enable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoints.webhook_endpoint_update(endpoint=endpoint, enabled=True)
        self.message_user(request, f"Enabled {plural(len(queryset), 'endpoint')}.")

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoints.webhook_endpoint_update(endpoint=endpoint, enabled=False)
        self.message_user(request, f"Disabled {plural(len(queryset), 'endpoint')}.")


def _outcome(delivery: WebhookDelivery) -> str:
    if delivery.succeeded:
        return f"✓ {delivery.status_code}"
    return f"✗ {delivery.error}" if delivery.error else f"✗ {delivery.status_code}"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(NoSaveButtons, admin.ModelAdmin):
    list_display = (
        "created_at",
        "endpoint",
        "event_type",
        "token",
        "attempt",
        "succeeded",
        "status_code",
        "latency_ms",
        "short_error",
    )
    list_filter = ("succeeded", "event_type", "created_at")
    list_select_related = ("endpoint",)
    search_fields = ("=webhook_id", "=token_id", "endpoint__url")
    fields = (
        "endpoint",
        "event_type",
        "token",
        "webhook_id",
        "attempt",
        "created_at",
        "succeeded",
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
    )
    readonly_fields = fields
    actions = ("retry_events",)

    @admin.display(description="token")
    def token(self, delivery: WebhookDelivery) -> str:
        return token_admin_link(delivery.token_id)

    @admin.display(description="error")
    def short_error(self, delivery: WebhookDelivery) -> str:
        return Truncator(delivery.error).chars(80)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Retry these events now", permissions=["change"])
    def retry_events(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        outbox_rows = {d.message for d in queryset.select_related("message") if d.message}
        applied, skipped = apply_each(
            request, self, outbox_rows, lambda message: outbox.retry(message=message)
        )
        text = f"{plural(applied, 'event')} queued for another attempt."
        if skipped:
            text += f" {plural(skipped, 'event')} already delivered; not sent again."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)
