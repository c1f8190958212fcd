"""The dashboard page where a project admin keeps an environment's AAP policy (docs/aap.md,
"Policies"): rules tried in order on each new request (approve, deny, or route to named
approvers), and how long an approval may be acted on.

Thin adapters over ``tokens.domain.aap.policies``, which validates every field and saves:
POST-only actions with CSRF, then a redirect with a message; bad input re-renders the page
(400) with each field's error beside it and nothing saved. The role check is the AAP page's
(``manage_integrations`` through ``access.environment_for_action``); anyone else gets a 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tokens.domain.aap import policies
from tokens.domain.durations import format_duration
from tokens.models import AapInstance, AapPolicyRule, Environment
from tokens.surfaces.dashboard import access

ACTION = "manage_integrations"
FIELDS = (
    "name",
    "tool_pattern",
    "server_pattern",
    "instance",
    "action",
    "approvers",
    "required_approvals",
    "deadline",
    "remind_after",
    "escalate_after",
    "escalate_to",
)


def _environment(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    return access.environment_for_action(request, project_slug, slug, ACTION)


def _page_url(environment: Environment) -> str:
    return reverse("dashboard:aap_policies", args=[environment.project.slug, environment.slug])


def _values_of(rule: AapPolicyRule) -> dict[str, str]:
    """What the edit form shows for a saved rule."""
    return {
        "name": rule.name,
        "tool_pattern": rule.tool_pattern,
        "server_pattern": rule.server_pattern,
        "instance": str(rule.instance_id or ""),
        "action": rule.action,
        "approvers": ", ".join(rule.approvers),
        "required_approvals": str(rule.required_approvals),
        "deadline": _duration(rule.deadline),
        "remind_after": _duration(rule.remind_after),
        "escalate_after": _duration(rule.escalate_after),
        "escalate_to": ", ".join(rule.escalate_to),
    }


def _duration(value: timedelta | None) -> str:
    return format_duration(value) if value else ""


def _instance_choices(environment: Environment, editing: AapPolicyRule | None) -> list[AapInstance]:
    """The live instances, and a deleted one the edited rule names: shown as such, so that
    saving the form never turns the rule silently into one for any instance."""
    choices = list(
        AapInstance.objects.filter(environment=environment, deleted_at__isnull=True).order_by(
            "name"
        )
    )
    if editing is not None and editing.instance is not None and editing.instance.deleted_at:
        choices.append(editing.instance)
    return choices


def _render(
    request: HttpRequest,
    environment: Environment,
    *,
    editing: AapPolicyRule | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    window_value: str | None = None,
    status: int = 200,
) -> HttpResponse:
    policy = policies.policy_get(environment=environment)
    saved_window = policy.approval_valid_for if policy else None
    if values is None:
        values = _values_of(editing) if editing else {"action": AapPolicyRule.Action.ROUTE}
    context: dict[str, Any] = {
        "environment": environment,
        "rules": [
            (
                rule,
                _duration(rule.deadline),
                _duration(rule.remind_after),
                _duration(rule.escalate_after),
            )
            for rule in policies.rule_list(environment=environment)
        ],
        "instances": _instance_choices(environment, editing),
        "actions": AapPolicyRule.Action.choices,
        "editing": editing,
        "values": values,
        "errors": errors or {},
        "window_value": window_value
        if window_value is not None
        else (format_duration(saved_window) if saved_window else ""),
        "default_window": format_duration(policies.default_window()),
        "max_deadline": format_duration(policies.max_deadline()),
    }
    return render(request, "dashboard/aap_policies.html", context, status=status)


def _rule_or_404(environment: Environment, rule_id: int) -> AapPolicyRule:
    rule = policies.rule_get(environment=environment, rule_id=rule_id)
    if rule is None:
        raise Http404("No such rule")
    return rule


@login_required
@require_GET
def aap_policies(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    editing = None
    if request.GET.get("edit", "").isdigit():
        editing = _rule_or_404(environment, int(request.GET["edit"]))
    return _render(request, environment, editing=editing)


def _save(request: HttpRequest, environment: Environment, rule_id: int | None) -> HttpResponse:
    values = {name: request.POST.get(name, "") for name in FIELDS}
    editing = _rule_or_404(environment, rule_id) if rule_id is not None else None
    data = policies.RuleInput(**values)
    try:
        rule = policies.rule_save(environment=environment, data=data, rule_id=rule_id)
    except policies.PolicyInvalid as invalid:
        return _render(
            request,
            environment,
            editing=editing,
            values=values,
            errors=invalid.field_errors,
            status=400,
        )
    messages.success(request, f"Rule {rule.name!r} saved (position {rule.position}).")
    return redirect(_page_url(environment))


@login_required
@require_POST
def aap_policy_rule_add(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    return _save(request, _environment(request, project_slug, environment_slug), None)


@login_required
@require_POST
def aap_policy_rule_edit(
    request: HttpRequest, project_slug: str, environment_slug: str, rule_id: int
) -> HttpResponse:
    return _save(request, _environment(request, project_slug, environment_slug), rule_id)


@login_required
@require_POST
def aap_policy_rule_delete(
    request: HttpRequest, project_slug: str, environment_slug: str, rule_id: int
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    rule = _rule_or_404(environment, rule_id)
    policies.rule_delete(environment=environment, rule_id=rule.pk)
    messages.success(request, f"Rule {rule.name!r} removed.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def aap_policy_rule_move(
    request: HttpRequest, project_slug: str, environment_slug: str, rule_id: int
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    rule = _rule_or_404(environment, rule_id)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        messages.error(request, "Move a rule up or down.")
    elif policies.rule_move(environment=environment, rule_id=rule.pk, offset=offset):
        messages.success(request, f"Rule {rule.name!r} moved {request.POST['direction']}.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def aap_policy_window(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    value = request.POST.get("window", "")
    try:
        policy = policies.window_set(environment=environment, value=value)
    except policies.PolicyInvalid as invalid:
        return _render(
            request, environment, errors=invalid.field_errors, window_value=value, status=400
        )
    window = policy.approval_valid_for or policies.default_window()
    messages.success(request, f"New approvals here may be acted on for {format_duration(window)}.")
    return redirect(_page_url(environment))
