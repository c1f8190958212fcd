"""The Agent Approval Protocol for support staff: provisioner tokens and instances (a new one's
secret shown once, then only its prefix), revoking and deleting through the domain, and the
requests, each linked to its token (where it is decided, cancelled and audited as any token)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from tokens.domain.aap import credentials, instances, representation
from tokens.models import AapInstance, AapProvisioner, AapRequest
from tokens.surfaces.admin.common import CheckedFilters, apply_each, plural

Row = TypeVar("Row", bound=Model)


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


def _ending_action(
    model: type[Row],
    end: Callable[[Row], bool],
    *,
    description: str,
    done: str,
    noun: str,
    log: str,
) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Row]], None]:
    """The revoke and delete actions: ``end`` (the domain's, which says whether it changed the
    ``model`` row) on each selected row, then one message: how many ended, how many already had."""

    @admin.action(description=description, permissions=["change"])
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Row]) -> None:
        applied, skipped = apply_each(request, modeladmin, queryset, end, log)
        text = f"{done.capitalize()} {plural(applied, noun)}."
        if skipped:
            text += f" {plural(skipped, noun)} already {done}."
        modeladmin.message_user(request, text, messages.SUCCESS if applied else messages.WARNING)

    return action


class _Credentials(admin.ModelAdmin):
    """Credentials of one environment (provisioner tokens, instances), created with a secret by
    the domain (``create``), which is shown once instead of the usual redirect; the secret is
    kept on this request's object only, never stored."""

    list_filter = ("environment",)
    list_select_related = ("environment__project",)
    secret_name = ""

    def create(self, obj: Any) -> tuple[Model, str]:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # only the name is editable
            return
        created, secret = self.create(obj)
        for field in created._meta.concrete_fields:  # the admin's log and redirect use obj
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False
        obj._new_secret = secret  # this response only

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _shown_once(self, request, obj, self.secret_name, secret)


@admin.register(AapProvisioner)
class AapProvisionerAdmin(CheckedFilters, _Credentials):
    list_display = ("masked", "name", "environment", "active", "created_at", "last_used_at")
    search_fields = ("prefix", "name", "environment__project__slug")
    actions = ("revoke",)
    secret_name = "AAP provisioner token"
    revoke = _ending_action(
        AapProvisioner,
        lambda row: credentials.provisioner_revoke(provisioner=row),
        description="Revoke selected provisioner tokens",
        done="revoked",
        noun="provisioner token",
        log="Revoked",
    )

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

    def create(self, obj: AapProvisioner) -> tuple[Model, str]:
        return credentials.provisioner_create(environment=obj.environment, name=obj.name)


@admin.register(AapInstance)
class AapInstanceAdmin(CheckedFilters, _Credentials):
    list_display = ("name", "environment", "active", "delivery_url", "created_at", "deleted_at")
    search_fields = ("=id", "name", "credential_prefix", "environment__project__slug")
    actions = ("delete_instances",)
    secret_name = "AAP instance credential"
    delete_instances = _ending_action(
        AapInstance,
        lambda row: instances.instance_retire(instance=row),
        description="Delete selected instances (revoke, cancel pending requests, stop delivery)",
        done="deleted",
        noun="instance",
        log="Deleted (AAP)",
    )

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

    def create(self, obj: AapInstance) -> tuple[Model, str]:
        return instances.instance_create_for_environment(environment=obj.environment, name=obj.name)


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
