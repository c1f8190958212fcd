"""The dashboard page where a project admin sets what the deadline brings by default, per tag
(``DeadlineRule``, tokens.domain.outcomes): requests that send no ``onTimeout`` take the rule
of their first tag that has one, else the environment-wide rule, else they time out.

Thin adapters: reads through selectors, writes through ``outcomes``' services, POST-only with
CSRF, then a redirect with a message. Anyone but the project's admins gets a 404.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tokens.domain import outcomes
from tokens.domain.durations import parse_duration
from tokens.domain.exceptions import InvalidInput
from tokens.models import DeadlineRule, Environment
from tokens.persistence import selectors
from tokens.surfaces.dashboard import access

ACTION = "manage_deadline_rules"


class RuleForm(forms.Form):
    tag = forms.CharField(max_length=128, required=False)
    action = forms.ChoiceField(choices=DeadlineRule.Action.choices)
    escalate_to = forms.CharField(max_length=5000, required=False)
    second_timeout = forms.CharField(max_length=100, required=False)
    then = forms.ChoiceField(choices=DeadlineRule.Then.choices, required=False)


def _environment(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    return access.environment_for_action(request, project_slug, slug, ACTION)


def _page_url(environment: Environment) -> str:
    return reverse("dashboard:deadline_rules", args=[environment.project.slug, environment.slug])


def _render(
    request: HttpRequest, environment: Environment, form: RuleForm | None = None, status: int = 200
) -> HttpResponse:
    context = {
        "environment": environment,
        "rules": list(selectors.deadline_rule_list(environment=environment)),
        "form": form or RuleForm(),
    }
    return render(request, "dashboard/deadline_rules.html", context, status=status)


@login_required
@require_GET
def deadline_rules(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    return _render(request, _environment(request, project_slug, environment_slug))


def _rule(environment: Environment, data: dict[str, str]) -> DeadlineRule:
    second: timedelta | None = None
    if data.get("second_timeout"):
        second = parse_duration(data["second_timeout"])
        if second is None:
            raise InvalidInput(
                "Invalid second deadline: a duration such as 30m, 2h or 1d, after the first."
            )
    addresses = [a.strip() for a in (data.get("escalate_to") or "").replace(",", " ").split()]
    return DeadlineRule(
        environment=environment,
        tag=(data.get("tag") or "").strip(),
        action=data["action"],
        escalate_to=addresses,
        second_timeout=second,
        then=data.get("then") or DeadlineRule.Then.TIMEOUT,
    )


@login_required
@require_POST
def deadline_rule_add(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    form = RuleForm(request.POST)
    if not form.is_valid():
        return _render(request, environment, form, status=400)
    existing = {rule.tag for rule in selectors.deadline_rule_list(environment=environment)}
    try:
        rule = _rule(environment, form.cleaned_data)
        if rule.tag in existing:
            raise InvalidInput("There is a rule for this tag already: remove it first.")
        outcomes.deadline_rule_save(rule=rule)
    except InvalidInput as error:
        form.add_error(None, error.message)
        return _render(request, environment, form, status=400)
    what = f"tagged {rule.tag}" if rule.tag else "of this environment"
    messages.success(request, f"Requests {what} now: {rule.get_action_display().lower()}.")
    return redirect(_page_url(environment))


@login_required
@require_POST
def deadline_rule_delete(
    request: HttpRequest, project_slug: str, environment_slug: str, rule_id: int
) -> HttpResponse:
    environment = _environment(request, project_slug, environment_slug)
    rule = selectors.deadline_rule_get(environment=environment, rule_id=rule_id)
    if rule is None:
        raise Http404("No such rule")
    outcomes.deadline_rule_delete(rule=rule)
    messages.success(request, f"Rule for {rule.tag or 'every request'} removed.")
    return redirect(_page_url(environment))
