"""Tokens and their recipients: search, inspect the whole history, act through the domain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator

from tokens.domain import approvals, deadline, keys, lifecycle
from tokens.domain.exceptions import TokenError
from tokens.domain.limits import MAX_REASON_LENGTH
from tokens.domain.links import dashboard_url
from tokens.models import (
    OutboxMessage,
    Recipient,
    Token,
    TokenEvent,
)
from tokens.persistence import selectors
from tokens.surfaces.admin.common import (
    CheckedFilters,
    NoSaveButtons,
    OutboxColumns,
    ReadOnlyInline,
    apply_each,
    plural,
    report,
    staff_actor,
)


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


class OutboxMessageInline(OutboxColumns, ReadOnlyInline):
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
        (
            "At the deadline and after the decision",
            {
                "fields": (
                    "on_timeout",
                    "decided_by_deadline",
                    "decision_valid_for",
                    "decision_expires_at",
                    "consumed_at",
                    "consumed_by",
                )
            },
        ),
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
        "on_timeout",
        "decided_by_deadline",
        "decision_valid_for",
        "decision_expires_at",
        "consumed_at",
        "consumed_by",
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
        state = deadline.effective(token, timezone.now())
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
        output = deadline.effective(token, timezone.now()).output
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
        actor = staff_actor(request)
        counts = apply_each(
            request,
            self,
            queryset,
            lambda token: lifecycle.token_cancel(token=token, actor=actor, reason=reason).applied,
            f"Cancelled: {reason}",
        )
        report(request, self, "Cancelled", *counts, "already resolved")
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
            "waiting": [
                t for t in tokens if deadline.effective(t, now).status == Token.Status.WAITING
            ],
            "reason": reason,
            "max_reason_length": MAX_REASON_LENGTH,
            "reason_too_long": len(reason) > MAX_REASON_LENGTH,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": "cancel_tokens",
        }
        return TemplateResponse(request, "admin/tokens/token/cancel_confirmation.html", context)

    @admin.action(description="Force timeout of selected tokens", permissions=["change"])
    def force_timeout_tokens(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        actor = staff_actor(request)
        counts = apply_each(
            request,
            self,
            queryset,
            lambda token: lifecycle.token_force_timeout(token=token, actor=actor).applied,
            "Forced timeout",
        )
        report(request, self, "Timed out", *counts, "already resolved")

    def _extend(self, request: HttpRequest, queryset: QuerySet[Token], timeout: str) -> None:
        actor = staff_actor(request)

        def extend(token: Token) -> bool:
            try:
                lifecycle.token_extend(token=token, actor=actor, timeout=timeout)
            except TokenError:
                return False  # resolved: a deadline never moves for it
            return True

        counts = apply_each(
            request, self, queryset, extend, f"Deadline moved to {timeout} from now"
        )
        report(request, self, "Extended", *counts, "already resolved")

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
            queued = approvals.token_resend_approval_emails(token=token)
            if queued:
                tokens += 1
                emails += queued
                self.log_change(request, token, f"Queued {plural(queued, 'approval e-mail')}")
            else:
                skipped += 1
        text = f"Queued {plural(emails, 'approval e-mail')} for {plural(tokens, 'token')}."
        if skipped:
            text += f" {plural(skipped, 'token')} skipped (resolved, or no approvers)."
        self.message_user(request, text, messages.SUCCESS if tokens else messages.WARNING)


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
        actor = staff_actor(request)
        applied, skipped = apply_each(
            request,
            self,
            queryset.select_related("token"),
            lambda recipient: approvals.recipient_revoke(recipient=recipient, actor=actor),
            "Revoked personal link",
        )
        text = f"Revoked {plural(applied, 'personal link')}."
        if skipped:
            text += f" {plural(skipped, 'link')} already revoked."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)
