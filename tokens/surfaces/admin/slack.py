"""Slack connections for support staff: see how each environment is connected and what its
messages did; connect, pause or change one through ``tokens.delivery.slack.connections``.

The bot token and signing secret are typed in on the add page (password inputs) and never
displayed again: pages show their hints only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from tokens.delivery.slack import connections
from tokens.domain import keys
from tokens.domain.exceptions import InvalidInput
from tokens.models import SlackConnection, SlackMessage, SlackRoute
from tokens.surfaces.admin.common import NoSaveButtons, ReadOnlyInline, plural


class SlackConnectionAddForm(forms.ModelForm):
    bot_token = forms.CharField(widget=forms.PasswordInput, help_text="xoxb-… (never shown again)")
    signing_secret = forms.CharField(widget=forms.PasswordInput, help_text="Never shown again.")

    class Meta:
        model = SlackConnection
        fields = ("environment", "default_channel", "direct_messages")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            connections.clean_bot_token(data.get("bot_token"))
        except InvalidInput as error:
            self.add_error("bot_token", error.message)
        try:
            connections.clean_signing_secret(data.get("signing_secret"))
        except InvalidInput as error:
            self.add_error("signing_secret", error.message)
        return data


class SlackConnectionChangeForm(forms.ModelForm):
    class Meta:
        model = SlackConnection
        fields = ("default_channel", "direct_messages", "enabled")


class RouteInline(ReadOnlyInline):
    model = SlackRoute
    fields = ("tag", "channel", "created_at")
    readonly_fields = fields


@admin.register(SlackConnection)
class SlackConnectionAdmin(admin.ModelAdmin):
    list_display = (
        "environment",
        "bot_token_hint",
        "default_channel",
        "direct_messages",
        "enabled",
        "last_ok_at",
        "short_error",
    )
    list_filter = ("enabled", "direct_messages")
    list_select_related = ("environment__project",)
    search_fields = ("environment__project__slug", "default_channel")
    inlines = (RouteInline,)
    actions = ("pause", "resume")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        kwargs["form"] = SlackConnectionChangeForm if obj else SlackConnectionAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return (
                "environment",
                "bot_token",
                "signing_secret",
                "default_channel",
                "direct_messages",
            )
        return (
            "environment",
            "bot_token_hint",
            "signing_secret_hint",
            "default_channel",
            "direct_messages",
            "enabled",
            "last_ok_at",
            "last_error",
            "last_error_at",
            "messages",
            "created_at",
            "updated_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (
            "environment",
            "bot_token_hint",
            "signing_secret_hint",
            "last_ok_at",
            "last_error",
            "last_error_at",
            "messages",
            "created_at",
            "updated_at",
        )

    @admin.display(description="last error")
    def short_error(self, connection: SlackConnection) -> str:
        return connection.last_error[:80]

    @admin.display(description="messages")
    def messages(self, connection: SlackConnection) -> str:
        url = (
            reverse("admin:tokens_slackmessage_changelist")
            + f"?connection__id__exact={connection.pk}"
        )
        count = SlackMessage.objects.filter(connection=connection).count()
        return format_html('<a href="{}">{}</a>', url, plural(count, "message"))

    def save_model(
        self, request: HttpRequest, obj: SlackConnection, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            connections.slack_update(
                connection=obj,
                default_channel=data["default_channel"],
                direct_messages=data["direct_messages"],
                enabled=data["enabled"],
            )
            return
        created = connections.slack_connect(
            environment=data["environment"],
            bot_token=data["bot_token"],
            signing_secret=data["signing_secret"],
            default_channel=data["default_channel"],
            direct_messages=data["direct_messages"],
        )
        obj.pk = created.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: SlackConnection) -> None:
        connections.slack_disconnect(connection=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SlackConnection]) -> None:
        for connection in queryset:
            connections.slack_disconnect(connection=connection)

    @admin.action(description="Pause the selected connections", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[SlackConnection]) -> None:
        for connection in queryset:
            connections.slack_update(connection=connection, enabled=False)
        self.message_user(request, f"Paused {plural(len(queryset), 'connection')}.")

    @admin.action(description="Resume the selected connections", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[SlackConnection]) -> None:
        for connection in queryset:
            connections.slack_update(connection=connection, enabled=True)
        self.message_user(
            request, f"Resumed {plural(len(queryset), 'connection')}.", messages.SUCCESS
        )


@admin.register(SlackMessage)
class SlackMessageAdmin(NoSaveButtons, admin.ModelAdmin):
    list_display = ("created_at", "token_link", "target_kind", "target", "posted", "rendered")
    list_filter = ("target_kind", "connection")
    list_select_related = ("connection__environment__project",)
    search_fields = ("=token__id", "target", "=ts")
    fields = (
        "token_link",
        "connection",
        "target_kind",
        "target",
        "channel_id",
        "ts",
        "rendered",
        "replies",
        "created_at",
        "posted_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="token")
    def token_link(self, message: SlackMessage) -> str:
        url = reverse("admin:tokens_token_change", args=[message.token_id])
        return format_html('<a href="{}">{}</a>', url, keys.friendly_id(message.token_id))

    @admin.display(description="posted", boolean=True)
    def posted(self, message: SlackMessage) -> bool:
        return bool(message.ts)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
