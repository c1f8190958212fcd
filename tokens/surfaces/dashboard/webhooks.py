"""Dashboard pages for webhook endpoints, one page per environment (admin role).

Thin adapters over ``tokens.delivery.webhooks``: reads through the scoped selectors, writes
through its services, POST-only actions with CSRF, then a redirect with a message. The signing
secret is rendered once, in the response to the create or rotate POST, and stored nowhere else.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.delivery.webhooks import events as webhook_events
from tokens.domain import limits
from tokens.domain.exceptions import InvalidInput, NotFound
from tokens.models import Environment, WebhookEndpoint
from tokens.persistence import selectors
from tokens.surfaces.dashboard import access

RECENT = 25


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=limits.MAX_URL_LENGTH)
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=webhook_events.ALL_EVENTS,
        error_messages={"required": "Choose at least one event."},
    )
    description = forms.CharField(max_length=limits.MAX_WEBHOOK_DESCRIPTION_LENGTH, required=False)


def _environment_for_admin(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    """The environment, if the user is an admin of its project; 404 otherwise (as for a
    project the user is not a member of: non-admins do not learn about endpoints)."""
    return access.environment_for_action(request, project_slug, slug, "manage_webhooks")


def _endpoint(environment: Environment, endpoint_id: str) -> WebhookEndpoint:
    try:
        return selectors.webhook_endpoint_get_for_environment(
            environment=environment, endpoint_id=endpoint_id
        )
    except NotFound:
        raise Http404("Webhook endpoint not found") from None


def _list_url(environment: Environment) -> str:
    return reverse("dashboard:webhook_list", args=[environment.project.slug, environment.slug])


def _render_list(
    request: HttpRequest,
    environment: Environment,
    *,
    form: EndpointForm | None = None,
    secret: str | None = None,
    secret_for: WebhookEndpoint | None = None,
    status: int = 200,
) -> HttpResponse:
    endpoints = list(selectors.webhook_endpoint_list(environment=environment))
    context: dict[str, Any] = {
        "environment": environment,
        "endpoints": [
            (endpoint, selectors.webhook_delivery_list_recent(endpoint=endpoint, limit=1))
            for endpoint in endpoints
        ],
        "form": form or EndpointForm(),
        "secret": secret,
        "secret_for": secret_for,
    }
    response = render(request, "dashboard/webhook_list.html", context, status=status)
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def webhook_list(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    return _render_list(request, environment)


@login_required
@require_POST
@never_cache
def webhook_create(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    form = EndpointForm(request.POST)
    if not form.is_valid():
        return _render_list(request, environment, form=form, status=400)
    try:
        endpoint, secret = webhook_endpoints.webhook_endpoint_create(
            environment=environment,
            url=form.cleaned_data["url"],
            events=list(form.cleaned_data["events"]),
            description=form.cleaned_data["description"],
        )
    except InvalidInput as error:
        form.add_error("url" if error.message.startswith("Invalid url") else None, error.message)
        return _render_list(request, environment, form=form, status=400)
    messages.success(request, f"Webhook endpoint {endpoint.url} created.")
    return _render_list(request, environment, secret=secret, secret_for=endpoint)


@login_required
@require_GET
def webhook_detail(
    request: HttpRequest, project_slug: str, environment_slug: str, endpoint_id: str
) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    endpoint = _endpoint(environment, endpoint_id)
    context = {
        "environment": environment,
        "endpoint": endpoint,
        "deliveries": selectors.webhook_delivery_list_recent(endpoint=endpoint, limit=RECENT),
        "undelivered": selectors.webhook_messages_undelivered(endpoint=endpoint).count(),
    }
    return render(request, "dashboard/webhook_detail.html", context)


@login_required
@require_POST
def webhook_action(
    request: HttpRequest, project_slug: str, environment_slug: str, endpoint_id: str, action: str
) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    endpoint = _endpoint(environment, endpoint_id)
    if action == "rotate":
        secret = webhook_endpoints.webhook_endpoint_rotate_secret(endpoint=endpoint)
        messages.success(request, f"New signing secret for {endpoint.url}.")
        return _render_list(request, environment, secret=secret, secret_for=endpoint)
    if action in ("enable", "disable"):
        webhook_endpoints.webhook_endpoint_update(endpoint=endpoint, enabled=action == "enable")
        messages.success(request, f"Webhook endpoint {endpoint.url} {action}d.")
    elif action == "delete":
        webhook_endpoints.webhook_endpoint_delete(endpoint=endpoint)
        messages.success(request, f"Webhook endpoint {endpoint.url} deleted.")
    else:
        raise Http404("Unknown action")
    return redirect(_list_url(environment))
