"""The outbox: what the worker has to send, what it sent, what failed; retry now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from tokens.delivery import outbox
from tokens.models import (
    OutboxMessage,
)
from tokens.surfaces.admin.common import (
    CheckedFilters,
    NoSaveButtons,
    OutboxColumns,
    apply_each,
    plural,
    token_admin_link,
)


class OutboxStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("pending", "pending"),
            ("retrying", "retrying"),
            ("delivered", "delivered"),
            ("failed", "failed"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[OutboxMessage]
    ) -> QuerySet[OutboxMessage]:
        undelivered = queryset.filter(delivered_at__isnull=True, failed_at__isnull=True)
        match self.value():
            case "pending":
                return undelivered.filter(attempts=0)
            case "retrying":
                return undelivered.filter(attempts__gt=0)
            case "delivered":
                return queryset.filter(delivered_at__isnull=False)
            case "failed":
                return queryset.filter(failed_at__isnull=False)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(OutboxColumns, CheckedFilters, NoSaveButtons, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "token_link",
        "recipient",
        "state",
        "attempts",
        "next_attempt_at",
        "short_error",
    )
    list_filter = (OutboxStateFilter, "kind", "created_at")
    list_select_related = ("token",)
    search_fields = ("=token__id", "payload__to")
    fields = (
        "kind",
        "token_link",
        "recipient",
        "state",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "failed_at",
        "last_error",
    )
    readonly_fields = fields
    actions = ("retry_messages",)

    @admin.display(description="token")
    def token_link(self, message: OutboxMessage) -> str:
        return token_admin_link(message.token_id)

    @admin.display(description="last error")
    def short_error(self, message: OutboxMessage) -> str:
        return Truncator(message.last_error).chars(80)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Retry selected messages now", permissions=["change"])
    def retry_messages(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        applied, skipped = apply_each(
            request, self, queryset, lambda message: outbox.retry(message=message)
        )
        text = f"{plural(applied, 'message')} queued for another attempt."
        if skipped:
            text += f" {plural(skipped, 'message')} already delivered; not sent again."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)
