"""The Agent Approval Protocol for support staff: provisioner tokens and instances (a new one's
secret shown once, then only its prefix), revoking and deleting through the domain, and the
requests, each linked to its token (where it is decided, cancelled and audited as any token)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from tokens.domain.aap import credentials, instances, representation
from tokens.models import AapInstance, AapProvisioner, AapRequest
from tokens.surfaces.admin.common import CheckedFilters, apply_each, plural


def _shown_once(
    modeladmin: admin.ModelAdmin, request: HttpRequest, obj: Any, what: str, secret: str
) -> HttpResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{what} created",
        "opts": modeladmin.model._meta,
        "object": obj,
        "what": what,
        "secret": secret,
        "changelist_url": reverse(f"admin:tokens_{modeladmin.model._meta.model_name}_changelist"),
    }
    response = TemplateResponse(request, "admin/tokens/aap/created.html", context)
    response["Cache-Control"] = "no-store"
    return response


@admin.register(AapProvisioner)
class AapProvisionerAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("masked", "name", "environment", "active", "created_at", "last_used_at")
    list_filter = ("environment",)
    list_select_related = ("environment__project",)
    search_fields = ("prefix", "name", "environment__project__slug")
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("environment", "name")
        return ("masked", "name", "environment", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (
            ()
            if obj is None
            else ("masked", "environment", "created_at", "last_used_at", "revoked_at")
        )

    @admin.display(description="token")
    def masked(self, provisioner: AapProvisioner) -> str:
        return f"{provisioner.prefix}…"

    @admin.display(description="active", boolean=True)
    def active(self, provisioner: AapProvisioner) -> bool:
        return provisioner.is_active

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead

    def save_model(
        self, request: HttpRequest, obj: AapProvisioner, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)  # only the name is editable
            return
        created, secret = credentials.provisioner_create(environment=obj.environment, name=obj.name)
        obj.pk, obj.prefix, obj.created_at = created.pk, created.prefix, created.created_at
        obj._state.adding = False
        obj._new_secret = secret  # type: ignore[attr-defined]  # this response only

    def response_add(
        self, request: HttpRequest, obj: AapProvisioner, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _shown_once(self, request, obj, "AAP provisioner token", secret)

    @admin.action(description="Revoke selected provisioner tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AapProvisioner]) -> None:
        applied, skipped = apply_each(
            request,
            self,
            queryset,
            lambda row: credentials.provisioner_revoke(provisioner=row),
            "Revoked",
        )
        text = f"Revoked {plural(applied, 'provisioner token')}."
        if skipped:
            text += f" {plural(skipped, 'token')} already revoked."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)


@admin.register(AapInstance)
class AapInstanceAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("name", "environment", "active", "delivery_url", "created_at", "deleted_at")
    list_filter = ("environment",)
    list_select_related = ("environment__project",)
    search_fields = ("=id", "name", "credential_prefix", "environment__project__slug")
    actions = ("delete_instances",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("environment", "name")
        return (
            "id",
            "name",
            "environment",
            "provisioner",
            "masked",
            "delivery_url",
            "delivery_registration_id",
            "created_at",
            "updated_at",
            "last_used_at",
            "credential_revoked_at",
            "deleted_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # Secrets never; the receiver changes only through the protocol (it must be verified).
        return tuple(f for f in self.get_fields(request, obj) if f != "name")

    @admin.display(description="credential")
    def masked(self, instance: AapInstance) -> str:
        return f"{instance.credential_prefix}…"

    @admin.display(description="active", boolean=True)
    def active(self, instance: AapInstance) -> bool:
        return instance.deleted_at is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the action below deletes as the protocol does, keeping the records

    def save_model(self, request: HttpRequest, obj: AapInstance, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # only the name is editable
            return
        created, secret = instances.instance_create_for_environment(
            environment=obj.environment, name=obj.name
        )
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding = False
        obj._new_secret = secret  # type: ignore[attr-defined]  # this response only

    def response_add(
        self, request: HttpRequest, obj: AapInstance, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _shown_once(self, request, obj, "AAP instance credential", secret)

    @admin.action(
        description="Delete selected instances (revoke, cancel pending requests, stop delivery)",
        permissions=["change"],
    )
    def delete_instances(self, request: HttpRequest, queryset: QuerySet[AapInstance]) -> None:
        applied, skipped = apply_each(
            request,
            self,
            queryset,
            lambda row: instances.instance_retire(instance=row),
            "Deleted (AAP)",
        )
        text = f"Deleted {plural(applied, 'instance')}."
        if skipped:
            text += f" {plural(skipped, 'instance')} already deleted."
        self.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)


@admin.register(AapRequest)
class AapRequestAdmin(CheckedFilters, admin.ModelAdmin):
    list_display = ("tool", "instance", "status", "created_at", "token_link")
    list_select_related = ("instance__environment__project", "token")
    search_fields = ("=id", "tool", "instance__name", "=token__id")
    list_filter = ("instance__environment",)
    fields = (
        "id",
        "instance",
        "tool",
        "server",
        "arguments_json",
        "timeout",
        "agent_reasoning",
        "context_json",
        "event_id",
        "created_at",
        "token_link",
    )
    readonly_fields = fields

    @admin.display(description="status")
    def status(self, request: AapRequest) -> str:
        return representation.status_of(request.token, timezone.now())

    @admin.display(description="token")
    def token_link(self, request: AapRequest) -> str:
        url = reverse("admin:tokens_token_change", args=[request.token_id])
        return format_html('<a href="{}">{}</a>', url, request.token.friendly_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # agents ask through the protocol

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
