"""The dashboard page where a project admin connects an environment to Slack (docs/slack.md).

Thin adapters over ``tokens.delivery.slack.connections``: reads through selectors, writes
through its services, POST-only actions with CSRF, then a redirect with a message. The role
check is ``tenancy.role_allows(role, "manage_integrations")`` (through
``access.environment_for_action``); anyone else gets a 404, as for an environment they cannot
see. The bot token and signing secret are typed once and never rendered
again: the page shows their hints only.
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

from tokens.delivery.slack import connections
from tokens.domain.exceptions import InvalidInput
from tokens.models import Environment, SlackConnection
from tokens.persistence import selectors
from tokens.surfaces.common.http import base_url
from tokens.surfaces.dashboard import access

ACTION = "manage_integrations"
# Which field a service's message is about (its messages start "Invalid <field>: …").
CONNECT_FIELDS = {
    "Invalid bot token": "bot_token",
    "Invalid signing secret": "signing_secret",
    "Invalid channel": "default_channel",
}
ROUTE_FIELDS = {"Invalid tag": "tag", "Invalid channel": "channel"}


def _field_of(error: InvalidInput, fields: dict[str, str]) -> str | None:
    return next((name for lead, name in fields.items() if error.message.startswith(lead)), None)


class ConnectForm(forms.Form):
    bot_token = forms.CharField(max_length=300, strip=True)
    signing_secret = forms.CharField(max_length=200, strip=True)
    default_channel = forms.CharField(max_length=81, required=False)
    direct_messages = forms.BooleanField(required=False, initial=True)


class SettingsForm(forms.Form):
    default_channel = forms.CharField(max_length=81, required=False)
    direct_messages = forms.BooleanField(required=False)
    enabled = forms.BooleanField(required=False)


class RouteForm(forms.Form):
    tag = forms.CharField(max_length=128)
    channel = forms.CharField(max_length=81)


def _environment_for_admin(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    return access.environment_for_action(request, project_slug, slug, ACTION)


def _page_url(environment: Environment) -> str:
    return reverse("dashboard:slack", args=[environment.project.slug, environment.slug])


def _render(
    request: HttpRequest,
    environment: Environment,
    *,
    connect_form: ConnectForm | None = None,
    route_form: RouteForm | None = None,
    settings_form: SettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    connection = selectors.slack_connection_for_environment(environment=environment)
    context: dict[str, Any] = {
        "environment": environment,
        "connection": connection,
        "routes": selectors.slack_route_list(connection=connection) if connection else [],
        "connect_form": connect_form or ConnectForm(),
        "route_form": route_form or RouteForm(),
        "settings_form": settings_form,
        "interactivity_url": base_url(request) + reverse("slack-interactivity"),
    }
    response = render(request, "dashboard/slack.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _connection(environment: Environment) -> SlackConnection:
    connection = selectors.slack_connection_for_environment(environment=environment)
    if connection is None:
        raise Http404("This environment is not connected to Slack")
    return connection


@login_required
@require_GET
@never_cache
def slack_page(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    return _render(request, _environment_for_admin(request, project_slug, environment_slug))


@login_required
@require_POST
@never_cache
def slack_connect(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    form = ConnectForm(request.POST)
    if not form.is_valid():
        return _render(request, environment, connect_form=form, status=400)
    data = form.cleaned_data
    try:
        connections.slack_connect(
            environment=environment,
            bot_token=data["bot_token"],
            signing_secret=data["signing_secret"],
            default_channel=data["default_channel"],
            direct_messages=data["direct_messages"],
        )
    except InvalidInput as error:
        form.add_error(_field_of(error, CONNECT_FIELDS), error.message)
        return _render(request, environment, connect_form=form, status=400)
    messages.success(request, f"Slack connected for {environment}.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def slack_settings(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    connection = _connection(environment)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return _render(request, environment, settings_form=form, status=400)
    try:
        connections.slack_update(connection=connection, **form.cleaned_data)
    except InvalidInput as error:
        form.add_error("default_channel", error.message)
        return _render(request, environment, settings_form=form, status=400)
    messages.success(request, "Slack settings saved.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def slack_route_add(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    connection = _connection(environment)
    form = RouteForm(request.POST)
    if not form.is_valid():
        return _render(request, environment, route_form=form, status=400)
    try:
        route = connections.slack_route_add(connection=connection, **form.cleaned_data)
    except InvalidInput as error:
        form.add_error(_field_of(error, ROUTE_FIELDS), error.message)
        return _render(request, environment, route_form=form, status=400)
    messages.success(request, f"Requests tagged {route.tag} now go to {route.channel}.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def slack_route_delete(
    request: HttpRequest, project_slug: str, environment_slug: str, route_id: int
) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    route = selectors.slack_route_get(connection=_connection(environment), route_id=route_id)
    if route is None:
        raise Http404("No such rule")
    connections.slack_route_delete(route=route)
    messages.success(request, f"Rule for {route.tag} removed.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def slack_disconnect(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    environment = _environment_for_admin(request, project_slug, environment_slug)
    connections.slack_disconnect(connection=_connection(environment))
    messages.success(request, f"Slack disconnected from {environment}; its secrets are deleted.")
    return redirect(_page_url(environment))
