"""Projects, environments, memberships and API keys (a new key's secret shown once)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from tokens.domain import tenancy
from tokens.models import (
    ApiKey,
    Environment,
    Membership,
    Project,
)
from tokens.surfaces.admin.common import (
    CheckedFilters,
    ReadOnlyInline,
    apply_each,
    plural,
)


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
        created = tenancy.environment_get_or_create(project_slug=obj.project.slug, slug=obj.slug)
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
        created, secret = tenancy.api_key_create(environment=obj.environment, name=obj.name)
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
        applied, skipped = apply_each(
            request, self, queryset, lambda key: tenancy.api_key_revoke(api_key=key), "Revoked"
        )
        text = f"Revoked {plural(applied, 'API key')}."
        if skipped:
            text += f" {plural(skipped, 'key')} already revoked."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)
