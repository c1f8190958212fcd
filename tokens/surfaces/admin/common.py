"""What every admin page shares: the acting staff user, act-on-each actions and their report,
filters that refuse bad parameters, read-only pages and inlines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from tokens.domain import actors, keys
from tokens.models import OutboxMessage, TokenEvent
from tokens.surfaces.common.http import session_actor


def staff_actor(request: HttpRequest) -> actors.Actor:
    return session_actor(request, TokenEvent.Channel.ADMIN)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


Item = TypeVar("Item")


def apply_each(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    items: Iterable[Item],
    apply: Callable[[Item], bool],
    log: str = "",
) -> tuple[int, int]:
    """The body of every act-on-each action: ``apply`` (one service call) to each item, logging
    each change in the admin's history when ``log`` says what it was; (applied, skipped), where
    skipped are the items the service left as they were (already resolved, already revoked)."""
    applied = skipped = 0
    for item in items:
        if apply(item):
            applied += 1
            if log:
                modeladmin.log_change(request, item, log)
        else:
            skipped += 1
    return applied, skipped


def report(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    verb: str,
    applied: int,
    skipped: int,
    why: str,
) -> None:
    level = messages.SUCCESS if applied else messages.WARNING
    text = f"{verb} {plural(applied, 'token')}."
    if skipped:
        text += f" {plural(skipped, 'token')} {why}; left unchanged."
    modeladmin.message_user(request, text, level)


class CheckedFilters:
    """Changelists that say what is wrong with a filter instead of failing: a NUL anywhere in the
    query (PostgreSQL text cannot hold one, so the query would raise) and the lookups Django
    itself refuses (an impossible date) redirect to the unfiltered list with a message. Django
    alone answers the first with a 500 and the second with a bare "?e=1"."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                shown = name.replace("\x00", "\\u0000")[:60]
                return self._refuse_filter(request, f"{shown} contains a null character (\\u0000).")
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        problem = getattr(request, "_invalid_filter", None)
        if problem is not None and response.status_code == 302:
            return self._refuse_filter(request, problem)
        return response

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        try:
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except IncorrectLookupParameters as error:
            detail = error.args[0] if error.args else ""
            if isinstance(detail, Exception) and getattr(detail, "messages", None):
                text = " ".join(str(m) for m in detail.messages)  # type: ignore[attr-defined]
            else:
                text = str(detail) or "these lookups cannot be used."
            request._invalid_filter = text[:300]  # type: ignore[attr-defined]
            raise

    def _refuse_filter(self, request: HttpRequest, problem: str) -> HttpResponse:
        messages.error(request, f"Invalid filter: {problem} Showing the unfiltered list.")
        return HttpResponseRedirect(request.path)


class NoSaveButtons:
    """For model admins whose fields are all read-only: a Save button would only suggest
    otherwise. Changes go through the admin actions (and so through the services)."""

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def outbox_state(message: OutboxMessage) -> str:
    if message.delivered_at:
        return "delivered"
    if message.failed_at:
        return "failed"
    return "retrying" if message.attempts else "pending"


def token_admin_link(token_id: str) -> str:
    """A link to the token's admin page, named by its friendly id."""
    url = reverse("admin:tokens_token_change", args=[token_id])
    return format_html('<a href="{}">{}</a>', url, keys.friendly_id(token_id))


class OutboxColumns:
    """The columns an outbox row shows wherever it is listed (its admin, the token's inline)."""

    @admin.display(description="to")
    def recipient(self, message: OutboxMessage) -> str:
        return str(message.payload.get("to", ""))

    @admin.display(description="state")
    def state(self, message: OutboxMessage) -> str:
        return outbox_state(message)
