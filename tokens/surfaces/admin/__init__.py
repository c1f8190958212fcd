"""Django admin for support staff: find any token, see its whole history, act through services.

Token state is read-only here: every change goes through ``tokens.domain.services`` (actions), with
channel "admin" and the staff user as actor, so the admin can never reopen a terminal token.
Actions need the model's *change* permission (``allowed_permissions``); view-only staff can
search and inspect but not act. Secrets (API key digests and ciphertexts, callback and signing
secrets) are never displayed; a new API key's secret is shown once, on the page after creation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from tokens.delivery import outbox, webhooks
from tokens.domain import keys, services
from tokens.domain.exceptions import InvalidInput, TokenError
from tokens.domain.links import dashboard_url
from tokens.domain.services import MAX_REASON_LENGTH
from tokens.models import (
    ApiKey,
    Environment,
    Membership,
    OutboxMessage,
    Project,
    Recipient,
    Token,
    TokenEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from tokens.persistence import selectors
from tokens.surfaces.common.http import actor_from_request

admin.site.site_header = "waitpoints support"
admin.site.site_title = "waitpoints support"
admin.site.index_title = "Support"


def _actor(request: HttpRequest) -> services.Actor:
    return actor_from_request(
        request,
        TokenEvent.Channel.ADMIN,
        credential=TokenEvent.Credential.SESSION,
        user=request.user,
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


Item = TypeVar("Item")


def _apply_each(
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


def _report(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    verb: str,
    applied: int,
    skipped: int,
    why: str,
) -> None:
    level = messages.SUCCESS if applied else messages.WARNING
    text = f"{verb} {_plural(applied, 'token')}."
    if skipped:
        text += f" {_plural(skipped, 'token')} {why}; left unchanged."
    modeladmin.message_user(request, text, level)


# ------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------


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


class TokenEventInline(ReadOnlyInline):
    model = TokenEvent
    verbose_name = "audit event"
    verbose_name_plural = "audit trail"
    fields = ("created_at", "kind", "channel", "actor", "ip", "user_agent", "details")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[TokenEvent]:
        return super().get_queryset(request).select_related("user", "api_key")

    @admin.display(description="who")
    def actor(self, event: TokenEvent) -> str:
        return event.actor_label

    @admin.display(description="detail")
    def details(self, event: TokenEvent) -> str:
        return json.dumps(event.detail, ensure_ascii=False) if event.detail else ""


class OutboxMessageInline(ReadOnlyInline):
    model = OutboxMessage
    verbose_name = "outgoing message"
    verbose_name_plural = "outgoing messages (approval e-mails)"
    fields = (
        "kind",
        "recipient",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "failed_at",
        "last_error",
    )
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="to")
    def recipient(self, message: OutboxMessage) -> str:
        return str(message.payload.get("to", ""))

    @admin.display(description="state")
    def state(self, message: OutboxMessage) -> str:
        return _outbox_state(message)


class RecipientInline(ReadOnlyInline):
    model = Recipient
    verbose_name = "e-mailed approver"
    verbose_name_plural = "e-mailed approvers (personal links; revoke one under Recipients)"
    fields = ("email", "created_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True


class TagListFilter(admin.SimpleListFilter):
    """Tokens carrying one tag; the options are the most used tags (the search box finds any)."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        from django.db.models import Count

        from tokens.models import TokenTag

        names = (
            TokenTag.objects.values("name")
            .annotate(n=Count("id"))
            .order_by("-n", "name")
            .values_list("name", flat=True)[:20]
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Token]) -> QuerySet[Token]:
        if self.value():
            return queryset.filter(tag_rows__name=self.value())
        return queryset


def _when(moment: datetime | None) -> str:
    """A compact time for list columns ("29 Nov 2026, 08:15"); the page shows it in full."""
    if moment is None:
        return "—"
    return date_format(timezone.localtime(moment), "j M Y, H:i")


@admin.register(Token)
class TokenAdmin(CheckedFilters, NoSaveButtons, admin.ModelAdmin):
    # Fits a 1280 px window beside the navigation and the filters: the token cell stacks its
    # title, id, creation time and tags (the id sorts by creation: ids are time-ordered), and
    # the completion time is on the token's page (the status says whether it is resolved).
    list_display = ("token_cell", "environment_cell", "status_label", "deadline")
    list_display_links = None  # the token cell links its title and id itself (tags are text)
    list_filter = ("status", "environment", "created_at", TagListFilter)
    list_select_related = ("environment__project",)
    # The id (also in its "waitpoint_…" form, see get_search_results), the idempotency key
    # and exact tag names.
    search_fields = ("=id", "idempotency_key", "=tag_rows__name")
    search_help_text = "Token id (waitpoint_… or bare), idempotency key, or an exact tag."
    date_hierarchy = "created_at"
    show_full_result_count = False  # a COUNT(*) over all tokens on every page is not free
    inlines = (TokenEventInline, RecipientInline, OutboxMessageInline)
    actions = (
        "cancel_tokens",
        "force_timeout_tokens",
        "resend_approval_emails",
        "extend_by_hour",
        "extend_by_day",
    )
    fieldsets = (
        (None, {"fields": ("friendly_id", "title", "environment", "status_label", "tag_list")}),
        (
            "Times",
            {"fields": ("created_at", "timeout_at", "completed_at", "cancelled_at")},
        ),
        (
            "Outcome",
            {"fields": ("pretty_output", "output_type", "output_is_error", "cancel_reason")},
        ),
        (
            "Idempotency",
            {"fields": ("idempotency_key", "idempotency_key_expires_at")},
        ),
        ("Approvers", {"fields": ("approvers",)}),
    )
    readonly_fields = (
        "friendly_id",
        "title",
        "environment",
        "status_label",
        "tag_list",
        "created_at",
        "timeout_at",
        "completed_at",
        "cancelled_at",
        "pretty_output",
        "output_type",
        "output_is_error",
        "cancel_reason",
        "idempotency_key",
        "idempotency_key_expires_at",
        "approvers",
    )

    class Media:
        css = {"all": ("admin-extras/tokens.css",)}

    # -- Display ------------------------------------------------------------------------------

    @admin.display(description="id", ordering="id")
    def friendly_id(self, token: Token) -> str:
        return token.friendly_id

    @admin.display(description="token", ordering="id")
    def token_cell(self, token: Token) -> str:
        url = reverse("admin:tokens_token_change", args=[token.pk])
        title = Truncator(token.title).chars(90)
        heading = (
            format_html('<span class="token-title" title="{}">{}</span>', token.title, title)
            if token.title
            else ""
        )
        tags = format_html(" · {}", ", ".join(token.tags)) if token.tags else ""
        return format_html(
            '<a href="{}">{}<code class="token-id">{}</code></a>'
            '<span class="token-meta">created {}{}</span>',
            url,
            heading,
            token.friendly_id,
            _when(token.created_at),
            tags,
        )

    @admin.display(description="environment", ordering="environment")
    def environment_cell(self, token: Token) -> str:
        # "customer-onboarding/staging" may break after the slash in a narrow column.
        env = token.environment
        return format_html("{}/<wbr>{}", env.project.slug, env.slug)

    @admin.display(description="deadline", ordering="timeout_at")
    def deadline(self, token: Token) -> str:
        return _when(token.timeout_at)

    @admin.display(description="status", ordering="status")
    def status_label(self, token: Token) -> str:
        # The labels the status filter uses ("Timed out"), narrower than the API's TIMED_OUT.
        state = token.effective(timezone.now())
        label = Token.Status(state.status).label
        if state.status != token.status:
            # Past its timeout, not yet swept: every reader already sees TIMED_OUT.
            stored = Token.Status(token.status).label.lower()
            return f"{label} (stored as {stored}, awaiting the sweep)"
        return str(label)

    @admin.display(description="tags")
    def tag_list(self, token: Token) -> str:
        return ", ".join(token.tags)

    @admin.display(description="output")
    def pretty_output(self, token: Token) -> str:
        output = token.effective(timezone.now()).output
        if output is None:
            return "—"
        try:
            text = json.dumps(json.loads(output), indent=2, ensure_ascii=False)
        except ValueError:
            text = output
        # A class, not a style attribute: the CSP (style-src 'self') blocks inline styles.
        return format_html('<pre class="token-output">{}</pre>', text)

    # -- The same token on the dashboard, for staff who can see it there ----------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Token | None = None,
    ) -> HttpResponse:
        if obj is not None:
            project = obj.environment.project
            # The dashboard shows a token to members of its project only (others get its 404),
            # superusers included: link where the link works, say why where it would not.
            if selectors.membership_role_for_user(user=request.user, project=project):
                context["dashboard_url"] = dashboard_url(obj, base="")
            else:
                context["dashboard_note"] = (
                    f"Not on your dashboard: only members of project {project.slug} see "
                    "this token there."
                )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- Search: accept the API's "waitpoint_<id>" form --------------------------------------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Token], search_term: str
    ) -> tuple[QuerySet[Token], bool]:
        result, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        internal = keys.parse_token_id(term) if term.startswith(keys.FRIENDLY_PREFIX) else None
        if internal:
            result |= queryset.filter(pk=internal)
        return result, may_have_duplicates

    # -- Permissions: state is never edited here, tokens are never deleted (audit) -------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are created through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit trail and the API's promises outlive support sessions

    # -- Actions: each calls a service, once per token ----------------------------------------

    @admin.action(description="Cancel selected tokens…", permissions=["change"])
    def cancel_tokens(self, request: HttpRequest, queryset: QuerySet[Token]) -> Any:
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirm") != "yes" or len(reason) > MAX_REASON_LENGTH:
            return self._cancel_confirmation(request, queryset, reason)
        reason = reason or f"Cancelled by support staff ({request.user.get_username()})"
        actor = _actor(request)
        counts = _apply_each(
            request,
            self,
            queryset,
            lambda token: services.token_cancel(token=token, actor=actor, reason=reason).applied,
            f"Cancelled: {reason}",
        )
        _report(request, self, "Cancelled", *counts, "already resolved")
        return None

    def _cancel_confirmation(
        self, request: HttpRequest, queryset: QuerySet[Token], reason: str
    ) -> TemplateResponse:
        now = timezone.now()
        tokens = list(queryset.select_related("environment__project"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel tokens",
            "opts": self.model._meta,
            "tokens": tokens,
            "waiting": [t for t in tokens if t.effective(now).status == Token.Status.WAITING],
            "reason": reason,
            "max_reason_length": MAX_REASON_LENGTH,
            "reason_too_long": len(reason) > MAX_REASON_LENGTH,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": "cancel_tokens",
        }
        return TemplateResponse(request, "admin/tokens/token/cancel_confirmation.html", context)

    @admin.action(description="Force timeout of selected tokens", permissions=["change"])
    def force_timeout_tokens(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        actor = _actor(request)
        counts = _apply_each(
            request,
            self,
            queryset,
            lambda token: services.token_force_timeout(token=token, actor=actor).applied,
            "Forced timeout",
        )
        _report(request, self, "Timed out", *counts, "already resolved")

    def _extend(self, request: HttpRequest, queryset: QuerySet[Token], timeout: str) -> None:
        actor = _actor(request)

        def extend(token: Token) -> bool:
            try:
                services.token_extend(token=token, actor=actor, timeout=timeout)
            except TokenError:
                return False  # resolved: a deadline never moves for it
            return True

        counts = _apply_each(
            request, self, queryset, extend, f"Deadline moved to {timeout} from now"
        )
        _report(request, self, "Extended", *counts, "already resolved")

    @admin.action(description="Extend deadline: 1 hour from now", permissions=["change"])
    def extend_by_hour(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self._extend(request, queryset, "1h")

    @admin.action(description="Extend deadline: 1 day from now", permissions=["change"])
    def extend_by_day(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self._extend(request, queryset, "1d")

    @admin.action(description="Resend approval e-mails", permissions=["change"])
    def resend_approval_emails(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        tokens = emails = skipped = 0
        for token in queryset:
            queued = services.token_resend_approval_emails(token=token)
            if queued:
                tokens += 1
                emails += queued
                self.log_change(request, token, f"Queued {_plural(queued, 'approval e-mail')}")
            else:
                skipped += 1
        text = f"Queued {_plural(emails, 'approval e-mail')} for {_plural(tokens, 'token')}."
        if skipped:
            text += f" {_plural(skipped, 'token')} skipped (resolved, or no approvers)."
        self.message_user(request, text, messages.SUCCESS if tokens else messages.WARNING)


# ------------------------------------------------------------------------------------------------
# Outbox
# ------------------------------------------------------------------------------------------------


def _outbox_state(message: OutboxMessage) -> str:
    if message.delivered_at:
        return "delivered"
    if message.failed_at:
        return "failed"
    return "retrying" if message.attempts else "pending"


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
class OutboxMessageAdmin(CheckedFilters, NoSaveButtons, admin.ModelAdmin):
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
        url = reverse("admin:tokens_token_change", args=[message.token_id])
        return format_html('<a href="{}">{}</a>', url, keys.friendly_id(message.token_id))

    @admin.display(description="to")
    def recipient(self, message: OutboxMessage) -> str:
        return str(message.payload.get("to", ""))

    @admin.display(description="state")
    def state(self, message: OutboxMessage) -> str:
        return _outbox_state(message)

    @admin.display(description="last error")
    def short_error(self, message: OutboxMessage) -> str:
        return Truncator(message.last_error).chars(80)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Retry selected messages now", permissions=["change"])
    def retry_messages(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        applied, skipped = _apply_each(
            request, self, queryset, lambda message: outbox.retry(message=message)
        )
        text = f"{_plural(applied, 'message')} queued for another attempt."
        if skipped:
            text += f" {_plural(skipped, 'message')} already delivered; not sent again."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)


# ------------------------------------------------------------------------------------------------
# Tenancy and keys
# ------------------------------------------------------------------------------------------------


class EnvironmentInline(ReadOnlyInline):
    """Listed read-only; new environments go through the Environment add page (the service
    generates their secrets)."""

    model = Environment
    fields = ("slug", "public_id", "created_at", "active_keys")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="active API keys")
    def active_keys(self, environment: Environment) -> int:
        return environment.api_keys.filter(revoked_at__isnull=True).count()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Project)
class ProjectAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("slug", "name", "created_at", "environment_list")
    search_fields = ("slug", "name")
    inlines = (EnvironmentInline, MembershipInline)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The slug is part of how people and scripts name the project; fixed once created.
        return ("slug", "created_at") if obj else ("created_at",)

    @admin.display(description="environments")
    def environment_list(self, project: Project) -> str:
        return ", ".join(env.slug for env in project.environments.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return super().get_queryset(request).prefetch_related("environments")


@admin.register(Environment)
class EnvironmentAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("__str__", "project", "slug", "public_id", "created_at")
    list_filter = ("slug", "project")
    list_select_related = ("project",)
    search_fields = ("project__slug", "project__name", "public_id")
    # Callback and signing secrets are never shown.
    fields = ("project", "slug", "public_id", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # A key's prefix (tr_dev_…) follows its environment's slug: fixed once created.
        if obj:
            return ("project", "slug", "public_id", "created_at")
        return ("public_id", "created_at")

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        if change:
            return  # nothing editable
        created = services.environment_get_or_create(project_slug=obj.project.slug, slug=obj.slug)
        obj.pk, obj.public_id, obj.created_at = created.pk, created.public_id, created.created_at
        obj._state.adding = False


@admin.register(Membership)
class MembershipAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("user", "project", "role")
    list_filter = ("role", "project")
    list_select_related = ("user", "project")
    search_fields = ("user__username", "user__email", "project__slug")
    raw_id_fields = ("user",)


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "active"), ("no", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = (
        "masked",
        "name",
        "environment",
        "is_active",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (ApiKeyStatusFilter, "environment")
    list_select_related = ("environment__project",)
    search_fields = ("prefix", "name", "environment__project__slug")
    actions = ("revoke_keys",)
    # Never the digest or the encrypted key: only the visible prefix.

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("environment", "name")
        return (
            "masked",
            "name",
            "environment",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("masked", "environment", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="key")
    def masked(self, api_key: ApiKey) -> str:
        return f"{api_key.prefix}…"

    @admin.display(description="active", boolean=True)
    def is_active(self, api_key: ApiKey) -> bool:
        return api_key.is_active

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: audit events keep pointing at the key

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # only the name is editable
            return
        created, secret = services.api_key_create(environment=obj.environment, name=obj.name)
        obj.pk, obj.prefix, obj.created_at = created.pk, created.prefix, created.created_at
        obj._state.adding = False
        # Kept on this request's object only, for response_add; never stored in session,
        # cookie or message storage.
        obj._new_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.model._meta,
            "api_key": obj,
            "secret": secret,
            "changelist_url": reverse("admin:tokens_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/tokens/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        applied, skipped = _apply_each(
            request, self, queryset, lambda key: services.api_key_revoke(api_key=key), "Revoked"
        )
        text = f"Revoked {_plural(applied, 'API key')}."
        if skipped:
            text += f" {_plural(skipped, 'key')} already revoked."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)


# ------------------------------------------------------------------------------------------------
# Webhooks: endpoints through tokens.delivery.webhooks (the secret shown once, on the page after creation),
# each endpoint's recent delivery attempts, and "retry now" for events that did not get through.
# ------------------------------------------------------------------------------------------------

RECENT_DELIVERIES = 25


class WebhookEndpointForm(forms.ModelForm):
    url = forms.CharField(max_length=webhooks.MAX_URL_LENGTH)  # the service checks it
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("environment", "url", "events", "description", "enabled")

    def clean_url(self) -> str:
        try:
            return webhooks.clean_url(self.cleaned_data["url"])
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
        recent = webhooks.webhook_delivery_list_recent(endpoint=endpoint, limit=1)
        if not recent:
            return "—"
        return _outcome(recent[0])

    @admin.display(description="undelivered events")
    def undelivered(self, endpoint: WebhookEndpoint) -> int:
        return webhooks.webhook_messages_undelivered(endpoint=endpoint).count()

    @admin.display(description=f"recent deliveries (last {RECENT_DELIVERIES})")
    def recent_deliveries(self, endpoint: WebhookEndpoint) -> str:
        rows = webhooks.webhook_delivery_list_recent(endpoint=endpoint, limit=RECENT_DELIVERIES)
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
            webhooks.webhook_endpoint_update(endpoint=obj, **values)
            return
        created, secret = webhooks.webhook_endpoint_create(environment=obj.environment, **values)
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
        webhooks.webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhooks.webhook_endpoint_delete(endpoint=endpoint)

    @admin.action(description="Retry undelivered events now", permissions=["change"])
    def retry_undelivered(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = sum(
            webhooks.webhook_endpoint_retry_undelivered(endpoint=endpoint) for endpoint in queryset
        )
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, f"{_plural(count, 'event')} queued for another attempt.", level)

    @admin.action(description="Enable selected endpoints", permissions=["change"])
    def enable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhooks.webhook_endpoint_update(endpoint=endpoint, enabled=True)
        self.message_user(request, f"Enabled {_plural(len(queryset), 'endpoint')}.")

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhooks.webhook_endpoint_update(endpoint=endpoint, enabled=False)
        self.message_user(request, f"Disabled {_plural(len(queryset), 'endpoint')}.")


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
        url = reverse("admin:tokens_token_change", args=[delivery.token_id])
        return format_html('<a href="{}">{}</a>', url, keys.friendly_id(delivery.token_id))

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
        applied, skipped = _apply_each(
            request, self, outbox_rows, lambda message: outbox.retry(message=message)
        )
        text = f"{_plural(applied, 'event')} queued for another attempt."
        if skipped:
            text += f" {_plural(skipped, 'event')} already delivered; not sent again."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)


@admin.register(Recipient)
class RecipientAdmin(NoSaveButtons, admin.ModelAdmin):
    """E-mailed approvers and their personal links: revoke one without touching the others."""

    list_display = ("email", "token", "created_at", "revoked_at")
    list_select_related = ("token",)
    search_fields = ("=email", "=token__id")
    search_help_text = "An exact e-mail address or token id (bare)."
    readonly_fields = ("token", "email", "created_at", "revoked_at")
    actions = ("revoke_links",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(
        description="Revoke the personal links of selected recipients", permissions=["change"]
    )
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        actor = _actor(request)
        applied, skipped = _apply_each(
            request,
            self,
            queryset.select_related("token"),
            lambda recipient: services.recipient_revoke(recipient=recipient, actor=actor),
            "Revoked personal link",
        )
        text = f"Revoked {_plural(applied, 'personal link')}."
        if skipped:
            text += f" {_plural(skipped, 'link')} already revoked."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)
