"""The dashboard page where a project admin manages an environment's Agent Approval Protocol
provisioner tokens and instances (docs/aap.md).

Thin adapters over ``tokens.domain.aap`` (the services the admin uses): POST-only actions with
CSRF. The role check is ``tenancy.role_allows(role, "manage_integrations")`` (through
``access.environment_for_action``); anyone else gets a 404. A new provisioner token or instance
credential is shown once, on the page the creation answers with (never stored, never cached),
then only its prefix. Instance names follow the protocol's rule (``inputs.clean_name``, applied
by the domain): a refusal is shown under the field and nothing is saved.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tokens.domain.aap import credentials, inputs, instances
from tokens.domain.aap.errors import AapError
from tokens.models import AapInstance, AapProvisioner, Environment
from tokens.surfaces.common.http import base_url
from tokens.surfaces.dashboard import access, once

ACTION = "manage_integrations"


class ProvisionerForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, strip=True)


class InstanceForm(forms.Form):
    """Only the text: the rule (length, control characters) is the domain's, so a name is
    accepted or refused exactly as ``POST /v1/instances`` would."""

    name = forms.CharField(required=False, strip=True)


def _name_error(form: InstanceForm, error: AapError) -> None:
    # The domain names the protocol's field; a person reads the label "Name".
    form.add_error("name", error.message.replace("instance_name", "The name"))


def _environment(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    return access.environment_for_action(request, project_slug, slug, ACTION)


def _page_url(environment: Environment) -> str:
    return reverse("dashboard:aap", args=[environment.project.slug, environment.slug])


def _render(
    request: HttpRequest,
    environment: Environment,
    *,
    form: ProvisionerForm | None = None,
    secret: str = "",
    instance_form: InstanceForm | None = None,
    created: tuple[AapInstance, str] | None = None,
    renaming: tuple[uuid.UUID, InstanceForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "environment": environment,
        "provisioners": AapProvisioner.objects.filter(environment=environment).order_by(
            "-created_at"
        ),
        "instances": AapInstance.objects.filter(
            environment=environment, deleted_at__isnull=True
        ).order_by("-created_at"),
        "form": form or ProvisionerForm(),
        "secret": secret,
        "instance_form": instance_form or InstanceForm(),
        "name_limit": inputs.MAX_NAME_LENGTH,
        "created": created[0] if created else None,
        "credential": created[1] if created else "",
        "aap_base_url": base_url(request) + "/api/aap",
        "submission": once.new(),
        "renaming_id": renaming[0] if renaming else None,
        "rename_form": renaming[1] if renaming else None,
    }
    return render(request, "dashboard/aap.html", context, status=status)


def _already_sent(
    request: HttpRequest, environment: Environment, what: str, undo: str
) -> HttpResponse:
    """A reload of a page that showed a new secret: nothing is created a second time."""
    messages.info(
        request,
        f"That form was already sent: the {what} was created then and its secret shown once. "
        f"If it was not copied, {undo} that {what} and create another.",
    )
    return redirect(_page_url(environment))


@never_cache
@login_required
@require_GET
def aap_page(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    return _render(request, _environment(request, project_slug, environment_slug))


@never_cache
@login_required
@require_POST
def aap_provisioner_create(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    form = ProvisionerForm(request.POST)
    if not form.is_valid():
        return _render(request, environment, form=form, status=400)
    if not once.claim(request):
        return _already_sent(request, environment, "provisioner token", "revoke")
    _row, secret = credentials.provisioner_create(
        environment=environment, name=form.cleaned_data["name"]
    )
    return _render(request, environment, secret=secret)


@never_cache
@login_required
@require_POST
def aap_provisioner_revoke(
    request: HttpRequest, project_slug: str, environment_slug: str, provisioner_id: int
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    row = AapProvisioner.objects.filter(environment=environment, pk=provisioner_id).first()
    if row is None:
        raise Http404
    if credentials.provisioner_revoke(provisioner=row):
        messages.success(request, "The provisioner token is revoked.")
    return redirect(_page_url(environment))


@never_cache
@login_required
@require_POST
def aap_instance_delete(
    request: HttpRequest, project_slug: str, environment_slug: str, instance_id: uuid.UUID
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    row = AapInstance.objects.filter(environment=environment, pk=instance_id).first()
    if row is None:
        raise Http404
    if instances.instance_retire(instance=row):
        messages.success(request, "The instance is deleted; its pending requests are cancelled.")
    return redirect(_page_url(environment))


@never_cache
@login_required
@require_POST
def aap_instance_create(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    form = InstanceForm(request.POST)
    if form.is_valid() and not once.claim(request):
        return _already_sent(request, environment, "instance", "delete")
    if form.is_valid():
        try:
            created = instances.instance_create(
                environment=environment, name=form.cleaned_data["name"]
            )
        except AapError as error:
            _name_error(form, error)
        else:
            return _render(request, environment, created=created)
    return _render(request, environment, instance_form=form, status=400)


@never_cache
@login_required
@require_POST
def aap_instance_rename(
    request: HttpRequest, project_slug: str, environment_slug: str, instance_id: uuid.UUID
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    row = AapInstance.objects.filter(
        environment=environment, pk=instance_id, deleted_at__isnull=True
    ).first()
    if row is None:
        raise Http404
    form = InstanceForm(request.POST)
    if form.is_valid():
        try:
            renamed = instances.instance_rename(instance=row, name=form.cleaned_data["name"])
        except AapError as error:
            if error.http_status == 404:  # deleted meanwhile
                raise Http404 from None
            _name_error(form, error)
        else:
            messages.success(request, f"The instance is renamed to {renamed.name}.")
            return redirect(_page_url(environment))
    return _render(request, environment, renaming=(row.pk, form), status=400)
