"""The approvers' dashboard: thin adapters over ``tokens.selectors`` and ``tokens.services``.

Every action is a login-required POST that asks the access helper first (404 for tokens outside
the user's projects; a message and an audit event when the role does not allow the action),
then calls the same service as the API and redirects with a flash message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from tokens import keys, selectors, services
from tokens.dashboard import forms
from tokens.decisions import DECISIONS, decision_of, decision_output
from tokens.exceptions import NotFound
from tokens.http import actor_from_request, base_url
from tokens.links import callback_url
from tokens.models import Environment, Membership, Token, TokenEvent
from tokens.pagination import PageRequest, paginate

PAGE_SIZE = 25
ACTION_LABELS = {
    "approve": "approve",
    "reject": "reject",
    "complete_json": "complete with JSON",
    "force_timeout": "force a timeout on",
    "cancel": "cancel",
}


# ------------------------------------------------------------------------------------------------
# Access helpers
# ------------------------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> services.Actor:
    return actor_from_request(
        request,
        TokenEvent.Channel.DASHBOARD,
        credential=TokenEvent.Credential.SESSION,
        user=request.user,
    )


def _token_for_user(request: HttpRequest, token_id: str) -> tuple[Token, str | None]:
    """The token and the user's role in its project; 404 (as for an unknown id) otherwise."""
    try:
        token = selectors.token_get_for_user(user=request.user, token_id=token_id)
    except NotFound:
        raise Http404("Waitpoint not found") from None
    project = token.environment.project
    return token, selectors.membership_role_for_user(user=request.user, project=project)


def _token_for_action(request: HttpRequest, token_id: str, action: str) -> Token | None:
    """The access helper of every action: None (refused, audited, with a message) when the
    user's role does not allow ``action``; a viewer's forged POST ends here."""
    token, role = _token_for_user(request, token_id)
    if selectors.role_allows(role, action):
        return token
    services.token_action_denied(token=token, actor=_actor(request), action=action)
    messages.error(request, _denied_message(role, action, token))
    return None


def _denied_message(role: str | None, action: str, token: Token) -> str:
    label = Membership.Role(role).label.lower() if role else "no"
    return (
        f"Not allowed: as {label} in {token.environment.project} you cannot "
        f"{ACTION_LABELS.get(action, action)} tokens. Nothing was changed."
    )


def _environment_for_user(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    try:
        return selectors.environment_get_for_user(
            user=request.user, project_slug=project_slug, slug=slug
        )
    except NotFound:
        raise Http404("Environment not found") from None


def _next_or(request: HttpRequest, default: str) -> str:
    """Where to go after an action: the page it was started from, if it is ours."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else default


def _detail_url(token: Token) -> str:
    return reverse("dashboard:token_detail", args=[token.friendly_id])


# ------------------------------------------------------------------------------------------------
# Messages about outcomes
# ------------------------------------------------------------------------------------------------


def resolved_message(token: Token, resolution: TokenEvent | None) -> str:
    """ "Nothing changed: … was already completed by alice (Dashboard) on 3 Mar 2026, 14:05 UTC."""
    status = Token.Status(token.status).label.lower()
    text = f"Nothing changed: {token.friendly_id} was already {status}"
    if resolution is not None:
        at = resolution.created_at.astimezone(UTC)
        when = f"{at.day} {at:%b %Y, %H:%M}"
        text += f" by {resolution.actor_label} ({resolution.get_channel_display()}) on {when} UTC"
    return text + "."


def _report(request: HttpRequest, result: services.TransitionResult, done: str) -> None:
    if result.applied:
        messages.success(request, f"{done} {result.token.friendly_id}.")
    else:
        messages.warning(request, resolved_message(result.token, result.resolution))


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Waiting for me: WAITING tokens I can decide, across my projects, oldest first."""
    now = timezone.now()
    queryset = selectors.token_list_waiting_for_user(user=request.user, now=now)
    after = keys.parse_token_id(request.GET.get("after", ""))
    if after:
        queryset = queryset.filter(pk__gt=after)
    rows = list(queryset.order_by("pk")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {
        "nav": "home",
        "tokens": rows,
        "now": now,
        "next_url": _query_url(request, after=rows[-1].pk) if more else "",
        "environments": selectors.environment_list_for_user(user=request.user, now=now),
        "waiting_cap": selectors.WAITING_COUNT_CAP,
        "is_first_page": not after,
    }
    return render(request, "dashboard/home.html", context)


@login_required
@require_GET
def token_list(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    """One environment's tokens, newest first, filtered by the GET form (bookmarkable)."""
    environment = _environment_for_user(request, project_slug, environment_slug)
    now = timezone.now()
    filterset = forms.DashboardTokenFilter(
        request.GET, queryset=selectors.token_list(environment=environment), now=now
    )
    page = PageRequest(
        size=PAGE_SIZE,
        after=keys.parse_token_id(request.GET.get("after", "")),
        before=keys.parse_token_id(request.GET.get("before", "")),
    )
    queryset = filterset.qs if filterset.is_valid() else Token.objects.none()
    rows, pagination = paginate(queryset, page)
    for token in rows:
        token.environment = environment  # known, with its project: no query per row
        token.state = state = token.effective(now)  # type: ignore[attr-defined]
        token.decision = decision_of(state.output, state.output_type).get("status")  # type: ignore[attr-defined]
    role = selectors.membership_role_for_user(user=request.user, project=environment.project)
    context = {
        "environment": environment,
        "filterset": filterset,
        "tokens": rows,
        "now": now,
        "role": role,
        "can_decide": selectors.role_allows(role, "approve"),
        "next_url": _query_url(request, after=pagination.get("next")),
        "previous_url": _query_url(request, before=pagination.get("previous")),
        "known_tags": selectors.tag_names_for_environment(environment=environment, limit=200),
        "list_url": request.path,  # this page: every tag links to it, filtered by the tag
    }
    return render(request, "dashboard/token_list.html", context)


def _query_url(request: HttpRequest, **cursor: str | None) -> str:
    """This page's URL with the same filters and another cursor ("" when there is none)."""
    if not any(cursor.values()):
        return ""
    query: QueryDict = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    query.update({name: value for name, value in cursor.items() if value})
    return f"{request.path}?{query.urlencode()}"


@login_required
@require_GET
def tag_list(request: HttpRequest, project_slug: str, environment_slug: str) -> JsonResponse:
    """Tag names for the filter's typeahead: ``{"tags": [...]}``, by prefix."""
    environment = _environment_for_user(request, project_slug, environment_slug)
    prefix = request.GET.get("q", "")[:128]
    names = selectors.tag_names_for_environment(environment=environment, prefix=prefix)
    return JsonResponse({"tags": names})


@login_required
@require_GET
def token_detail(request: HttpRequest, token_id: str) -> HttpResponse:
    token, role = _token_for_user(request, token_id)
    return _render_detail(request, token, role)


def _render_detail(
    request: HttpRequest,
    token: Token,
    role: str | None,
    *,
    json_form: forms.CompleteJsonForm | None = None,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    state = token.effective(now)
    events = list(selectors.token_events_for_token(token=token))
    decided = decision_of(state.output, state.output_type)
    context = {
        "token": token,
        "state": state,
        "now": now,
        "role": role,
        "can_decide": selectors.role_allows(role, "approve"),
        "can_admin": selectors.role_allows(role, "cancel"),
        "callback_url": callback_url(token, base=base_url(request)),
        "output": pretty_output(state.output, state.output_type),
        "events": events,
        "resolution": next((e for e in events if e.kind in selectors.RESOLVING_KINDS), None),
        "decision": decided.get("status") if decided.get("status") in DECISIONS else None,
        "comment": decided.get("comment") if isinstance(decided.get("comment"), str) else "",
        "json_form": json_form or forms.CompleteJsonForm(),
        "environment": token.environment,
    }
    return render(request, "dashboard/token_detail.html", context, status=status)


def pretty_output(output: str | None, output_type: str) -> str | None:
    """The output as a person reads it: JSON indented (super+json unwrapped), text as is."""
    if output is None or output_type == "text/plain":
        return output
    try:
        value = json.loads(output)
    except ValueError:
        return output
    if output_type == "application/super+json" and isinstance(value, dict) and "json" in value:
        value = value["json"]
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


# ------------------------------------------------------------------------------------------------
# Actions: POST only, login required, access helper first, then a service, then redirect
# ------------------------------------------------------------------------------------------------


def _decide(request: HttpRequest, token_id: str, decision: str) -> HttpResponse:
    action = "approve" if decision == "approved" else "reject"
    token = _token_for_action(request, token_id, action)
    if token is not None:
        form = forms.DecisionForm(request.POST)
        if form.is_valid():
            output = decision_output(
                decision, form.cleaned_data["comment"].strip(), by=request.user.get_username()
            )
            result = services.token_complete(token=token, actor=_actor(request), data=output)
            _report(request, result, "Approved" if decision == "approved" else "Rejected")
        else:
            messages.error(request, f"Comments are at most {forms.MAX_COMMENT_LENGTH} characters.")
    fallback = _detail_url(token) if token else reverse("dashboard:token_detail", args=[token_id])
    return redirect(_next_or(request, fallback))


@login_required
@require_POST
def token_approve(request: HttpRequest, token_id: str) -> HttpResponse:
    return _decide(request, token_id, "approved")


@login_required
@require_POST
def token_reject(request: HttpRequest, token_id: str) -> HttpResponse:
    return _decide(request, token_id, "rejected")


@login_required
@require_POST
def token_complete(request: HttpRequest, token_id: str) -> HttpResponse:
    """Admins: complete with any JSON output; invalid JSON re-renders the page with the error."""
    token = _token_for_action(request, token_id, "complete_json")
    if token is None:
        return redirect("dashboard:token_detail", token_id)
    form = forms.CompleteJsonForm(request.POST)
    if not form.is_valid():
        role = selectors.membership_role_for_user(
            user=request.user, project=token.environment.project
        )
        return _render_detail(request, token, role, json_form=form, status=400)
    result = services.token_complete(
        token=token, actor=_actor(request), data=form.cleaned_data["data"]
    )
    _report(request, result, "Completed")
    return redirect(_detail_url(token))


@login_required
@require_POST
def token_force_timeout(request: HttpRequest, token_id: str) -> HttpResponse:
    token = _token_for_action(request, token_id, "force_timeout")
    if token is not None:
        result = services.token_force_timeout(token=token, actor=_actor(request))
        _report(request, result, "Timed out")
    return redirect("dashboard:token_detail", token_id)


@login_required
@require_POST
def token_cancel(request: HttpRequest, token_id: str) -> HttpResponse:
    token = _token_for_action(request, token_id, "cancel")
    if token is not None:
        form = forms.CancelForm(request.POST)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            result = services.token_cancel(token=token, actor=_actor(request), reason=reason)
            _report(request, result, "Cancelled")
        else:
            messages.error(request, f"The reason is at most {forms.MAX_REASON_LENGTH} characters.")
    return redirect("dashboard:token_detail", token_id)


@login_required
@require_POST
def token_bulk(request: HttpRequest) -> HttpResponse:
    """Approve or reject the selected tokens; each one is checked and audited on its own."""
    back = _next_or(request, reverse("dashboard:home"))
    form = forms.BulkDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, str(next(iter(form.errors.values()))[0]))
        return redirect(back)
    decision, comment = form.cleaned_data["decision"], form.cleaned_data["comment"].strip()
    roles: dict[int, str | None] = {}
    outcomes = Counter(
        _bulk_one(request, token_id, decision, comment, roles)
        for token_id in dict.fromkeys(form.cleaned_data["ids"])
    )
    _bulk_messages(request, decision, outcomes)
    return redirect(back)


def _bulk_one(
    request: HttpRequest, token_id: str, decision: str, comment: str, roles: dict[int, str | None]
) -> str:
    try:
        token = selectors.token_get_for_user(user=request.user, token_id=token_id)
    except NotFound:
        return "missing"
    project = token.environment.project
    if project.pk not in roles:
        roles[project.pk] = selectors.membership_role_for_user(user=request.user, project=project)
    action = "approve" if decision == "approved" else "reject"
    if not selectors.role_allows(roles[project.pk], action):
        services.token_action_denied(token=token, actor=_actor(request), action=action)
        return "denied"
    output = decision_output(decision, comment, by=request.user.get_username())
    result = services.token_complete(token=token, actor=_actor(request), data=output)
    return "applied" if result.applied else "ignored"


def _plural(count: int, word: str = "token") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _bulk_messages(request: HttpRequest, decision: str, outcomes: Counter[str]) -> None:
    verb = "Approved" if decision == "approved" else "Rejected"
    send: list[tuple[Callable[..., None], str]] = []
    if outcomes["applied"]:
        send.append((messages.success, f"{verb} {_plural(outcomes['applied'])}."))
    if outcomes["ignored"]:
        send.append(
            (
                messages.warning,
                f"{_plural(outcomes['ignored'])} had already been resolved; nothing changed there.",
            )
        )
    if outcomes["denied"]:
        send.append(
            (
                messages.error,
                f"Not allowed for {_plural(outcomes['denied'])}: your role there cannot decide.",
            )
        )
    if outcomes["missing"]:
        send.append((messages.error, f"{_plural(outcomes['missing'])} not found."))
    for add, text in send:
        add(request, text)
