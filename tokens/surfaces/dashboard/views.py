"""The approvers' dashboard: thin adapters over the selectors and the domain.

Every action is a login-required POST that asks the access helper first (404 for tokens outside
the user's projects; a message and an audit event when the role does not allow the action),
then calls the same service as the API and redirects with a flash message.
"""

from __future__ import annotations

import json
from datetime import UTC

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from tokens.domain import (
    approvals,
    chain,
    deadline,
    decide,
    decisions,
    keys,
    lifecycle,
    proposals,
    snoozes,
    tenancy,
)
from tokens.domain.aap import presentation
from tokens.domain.decisions import DECISIONS, decision_of
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused, OutputRefused, TokenError
from tokens.domain.limits import MAX_COMMENT_LENGTH, MAX_REASON_LENGTH
from tokens.domain.links import callback_url
from tokens.models import Environment, Membership, Token, TokenEvent
from tokens.persistence import selectors
from tokens.persistence.pagination import PageRequest, paginate
from tokens.surfaces.common.http import base_url
from tokens.surfaces.dashboard import access, bulk, forms

PAGE_SIZE = 25
NUL_ERROR = "null_characters_not_allowed"  # Django's CharField refuses NUL with this code


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


def _report(request: HttpRequest, result: lifecycle.TransitionResult, done: str) -> None:
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
    """Waiting for me, a triage queue: WAITING tokens I can decide across my projects, those
    that e-mailed me first, then soonest deadline first; filter by project and environment."""
    now = timezone.now()
    environments = list(selectors.environment_list_for_user(user=request.user, now=now))
    projects = sorted({env.project.slug for env in environments})
    project = request.GET.get("project", "")
    slug = request.GET.get("env", "")
    person = access.voter(request).key
    queryset = selectors.token_without_aside(
        selectors.token_list_waiting_for_user(user=request.user, now=now), person=person, now=now
    )
    if project in projects:
        queryset = queryset.filter(environment__project__slug=project)
    else:
        project = ""
    if slug in Environment.Slug.values:
        queryset = queryset.filter(environment__slug=slug)
    else:
        slug = ""
    try:
        page = max(1, min(int(request.GET.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    rows = selectors.token_triage_page(
        queryset,
        email=getattr(request.user, "email", "") or "",
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    _add_row_urls(rows, "token_detail", "token_approve", "token_reject")
    list_urls: dict[int, str] = {}
    for token in rows:  # the tags' links: one environment's list, reversed once per environment
        env = token.environment
        if env.pk not in list_urls:
            list_urls[env.pk] = reverse("dashboard:token_list", args=[env.project.slug, env.slug])
        token.list_url = list_urls[env.pk]  # type: ignore[attr-defined]
    context = {
        "nav": "home",
        "tokens": rows,
        "now": now,
        "next_url": _page_url(request, page + 1) if more else "",
        "previous_url": _page_url(request, page - 1) if page > 1 else "",
        "environments": environments,
        # Projects whose members this user manages (admins invite people by e-mail).
        "admin_projects": list(
            {
                e.project.slug: e.project
                for e in environments
                if getattr(e, "role", None) == Membership.Role.ADMIN  # annotated by the selector
            }.values()
        ),
        "waiting_cap": selectors.WAITING_COUNT_CAP,
        "is_first_page": page == 1,
        "projects": projects,
        "env_slugs": Environment.Slug.choices,
        "project": project,
        "env": slug,
        "clear_project_url": _without(request, "project"),
        "clear_env_url": _without(request, "env"),
        "aside": selectors.token_list_aside_for_user(user=request.user, person=person, now=now),
    }
    return render(request, "dashboard/home.html", context)


# Stands for a token's id in a URL reversed once per page (_add_row_urls): no URL prefix holds it.
_ROW_ID = "waitpoint_rowid"


def _add_row_urls(rows: list[Token], *names: str) -> None:
    """Each row's link to each of the views ``names`` (token views that take only the id), as
    ``<name>_url``: one ``reverse`` per name and page and a substitution per row, instead of a
    ``{% url %}`` per link (a page of 25 rows reversed 75 URLs, a tenth of its CPU)."""
    for name in names:
        head, _, tail = reverse(f"dashboard:{name}", args=[_ROW_ID]).rpartition(_ROW_ID)
        attribute = f"{name.removeprefix('token_')}_url"
        for row in rows:
            setattr(row, attribute, f"{head}{row.friendly_id}{tail}")


def _page_url(request: HttpRequest, page: int) -> str:
    query: QueryDict = request.GET.copy()
    query["page"] = str(page)
    return f"{request.path}?{query.urlencode()}"


def _without(request: HttpRequest, name: str) -> str:
    """This page's URL without one filter (an active filter's chip removes it)."""
    query: QueryDict = request.GET.copy()
    query.pop(name, None)
    query.pop("page", None)
    return f"{request.path}?{query.urlencode()}" if query else request.path


@login_required
@require_GET
def token_list(request: HttpRequest, project_slug: str, environment_slug: str) -> HttpResponse:
    """One environment's tokens, newest first, filtered by the GET form (bookmarkable)."""
    environment = access.environment_for_user(request, project_slug, environment_slug)
    now = timezone.now()
    filterset = forms.TokenListFilter(request.GET)
    page = PageRequest(
        size=PAGE_SIZE,
        after=keys.parse_token_id(request.GET.get("after", "")),
        before=keys.parse_token_id(request.GET.get("before", "")),
    )
    queryset = (
        filterset.token_filter(now=now).apply(selectors.token_list(environment=environment))
        if filterset.is_valid()
        else Token.objects.none()
    )
    rows, pagination = paginate(queryset, page)
    for token in rows:
        token.environment = environment  # known, with its project: no query per row
        token.state = deadline.effective(token, now)  # type: ignore[attr-defined]
    _add_row_urls(rows, "token_detail")
    role = selectors.membership_role_for_user(user=request.user, project=environment.project)
    context = {
        "environment": environment,
        "filterset": filterset,
        "tokens": rows,
        "now": now,
        "role": role,
        "can_decide": tenancy.role_allows(role, "approve"),
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
    environment = access.environment_for_user(request, project_slug, environment_slug)
    prefix = request.GET.get("q", "")[:128]
    if "\x00" in prefix:
        return JsonResponse({"error": "q cannot contain null characters (\\u0000)."}, status=400)
    names = selectors.tag_names_for_environment(environment=environment, prefix=prefix)
    return JsonResponse({"tags": names})


@login_required
@require_GET
def token_detail(request: HttpRequest, token_id: str) -> HttpResponse:
    token, role = access.token_for_user(request, token_id)
    return _render_detail(request, token, role)


def _render_detail(
    request: HttpRequest,
    token: Token,
    role: str | None,
    *,
    json_form: forms.CompleteJsonForm | None = None,
    field_errors: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    state = deadline.effective(token, now)
    events = list(selectors.token_events_for_token(token=token))
    decided = decision_of(state.output, state.output_type)
    votes = selectors.votes_for_token(token=token) if token.required_approvals > 1 else []
    context = {
        "token": token,
        "state": state,
        "now": now,
        "role": role,
        "can_decide": tenancy.role_allows(role, "approve"),
        "can_admin": tenancy.role_allows(role, "cancel"),
        # The callback URL is a credential (whoever holds it completes the token): only roles
        # that may complete with any output see it; a viewer's page never carries it.
        "callback_url": (
            callback_url(token, base=base_url(request))
            if tenancy.role_allows(role, "complete_json")
            else ""
        ),
        "output": pretty_output(state.output, state.output_type),
        "events": events,
        "resolution": next((e for e in events if e.kind in selectors.RESOLVING_KINDS), None),
        "decision": decided.get("status") if decided.get("status") in DECISIONS else None,
        "comment": decided.get("comment") if isinstance(decided.get("comment"), str) else "",
        "json_form": json_form or forms.CompleteJsonForm(),
        "labels": decisions.labels(token.decision_spec),
        "field_specs": decisions.field_specs(token.decision_spec),
        "field_values": request.POST if request.method == "POST" else {},
        "field_errors": field_errors or {},
        "votes": votes,
        "recipients": selectors.recipient_list_for_token(token=token) if token.approvers else [],
        "can_revoke_links": tenancy.role_allows(role, "revoke_link"),
        "approvals": sum(vote.decision == "approved" for vote in votes),
        "in_queue": request.GET.get("queue") == "1" or request.POST.get("queue") == "1",
        "decided_fields": decided.get("fields") if isinstance(decided.get("fields"), dict) else {},
        "environment": token.environment,
        "aside": snoozes.snooze_of(token, access.voter(request), now),
        "not_now_choices": snoozes.UNTIL_CHOICES,
        "not_now_action": reverse("dashboard:token_not_now", args=[token.friendly_id]),
        # Whether the history verifies (tokens.domain.chain): the trail read in chain order.
        "aap_call": presentation.proposed_call(token),
        "audit_break": chain.verify(token, sorted(events, key=lambda event: event.seq)),
        # The proposal's form, with what was posted when it is shown again with errors.
        **proposals.form_context(token, request.POST if request.method == "POST" else None),
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
    token, role = access.token_for_user(request, token_id)
    if _asks_once_more(request, token, decision) and tenancy.role_allows(role, "approve"):
        return bulk.review(
            request,
            decision=decision,
            token_ids=[token.friendly_id],
            comment=request.POST.get("comment", "").strip()[:MAX_COMMENT_LENGTH],
            back=access.next_or(request, reverse("dashboard:home")),
        )
    try:
        result = decide.decide(
            token=token,
            actor=access.actor(request),
            authority=decide.Authority.member(role),
            voter=access.voter(request),
            decision=decision,
            comment=request.POST.get("comment", ""),
            fields=decisions.form_values(request.POST),
            proposal=proposals.from_form(token, request.POST),
            proposal_version=proposals.version_of(request.POST),
        )
    except DecisionInvalid as invalid:
        if invalid.problem.startswith("proposal") and invalid.field_errors:
            messages.error(request, invalid.message)
            return _render_detail(
                request, token, role, field_errors=invalid.field_errors, status=400
            )
        if invalid.problem != "fields":
            messages.error(request, DECISION_PROBLEMS.get(invalid.problem, invalid.message))
        elif request.POST.get("next"):  # a quick decision from a list: ask on the token's page
            messages.error(request, f"{token.friendly_id} needs your input first.")
            return redirect(access.detail_url(token))
        else:
            messages.error(request, "Check the highlighted fields; nothing was decided.")
            return _render_detail(
                request, token, role, field_errors=invalid.field_errors, status=400
            )
    except DecisionRefused as refusal:
        text = refusal.message if refusal.problem == "role" else f"Not recorded: {refusal.message}"
        messages.error(request, text)
    else:
        _report_decision(request, result, decision)
        if request.POST.get("queue") == "1":  # opened from "Waiting for me": open the next
            return redirect(_next_in_queue(request, token))
    return redirect(access.next_or(request, access.detail_url(token)))


# How the dashboard words a decision refused as given (tokens.domain.decide).
DECISION_PROBLEMS = {
    "comment_nul": "Comments cannot contain null characters (\\u0000).",
    "comment_too_long": f"Comments are at most {MAX_COMMENT_LENGTH} characters.",
}


def _report_decision(request: HttpRequest, result: decide.DecideResult, decision: str) -> None:
    if result.applied and not result.resolved:
        messages.success(
            request,
            f"Your approval of {result.token.friendly_id} is recorded: {result.approvals} of "
            f"{result.required} approvals.",
        )
        return
    verb = "Approved" if decision == "approved" else "Rejected"
    _report(
        request,
        lifecycle.TransitionResult(
            token=result.token, applied=result.applied, resolution=result.resolution
        ),
        verb,
    )


def _asks_once_more(request: HttpRequest, token: Token, decision: str) -> bool:
    """A one-click approval from a list (it carries ``next``) in a production environment is
    reviewed first, unless the browser already asked (its script adds ``confirm=yes``)."""
    return (
        decision == "approved"
        and bool(request.POST.get("next"))
        and token.environment.slug == Environment.Slug.PROD
        and request.POST.get("confirm") != "yes"
    )


def _next_in_queue(request: HttpRequest, decided: Token) -> str:
    """The next request of the user's triage queue (its page, still in queue mode), or home."""
    now = timezone.now()
    waiting = selectors.token_list_waiting_for_user(user=request.user, now=now)
    queue = (
        selectors.token_without_aside(waiting, person=access.voter(request).key, now=now)
        .exclude(pk=decided.pk)
        .exclude(votes__voter=access.voter(request).key)  # not yet decided by me
    )
    email = getattr(request.user, "email", "") or ""
    following = next(iter(selectors.token_triage_page(queue, email=email, offset=0, limit=1)), None)
    if following is None:
        messages.info(request, "Nothing else is waiting for you.")
        return reverse("dashboard:home")
    return f"{access.detail_url(following)}?queue=1"


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
def token_not_now(request: HttpRequest, token_id: str) -> HttpResponse:
    """Put the request aside for me until a time I choose, or bring it back ("Back now")."""
    token, role = access.token_for_user(request, token_id)
    voter, actor = access.voter(request), access.actor(request)
    if request.POST.get("not_now") == "clear":
        snoozes.token_unsnooze(token=token, actor=actor, voter=voter)
        messages.success(request, f"{token.friendly_id} is back in your queue.")
        return redirect(access.detail_url(token))
    until = snoozes.form_until(request.POST.get("until", ""), request.POST.get("until_at", ""))
    try:
        aside = snoozes.token_snooze(
            token=token,
            actor=actor,
            authority=decide.Authority.member(role),
            voter=voter,
            until=until,
        )
    except (DecisionRefused, TokenError) as refused:
        messages.error(request, f"Not put aside: {refused.message}")
        return redirect(access.detail_url(token))
    at = aside.until.astimezone(UTC)
    messages.success(
        request,
        f"Put {token.friendly_id} aside until {at.day} {at:%b %Y, %H:%M} UTC; nothing was decided.",
    )
    return redirect(reverse("dashboard:home"))


@login_required
@require_POST
def token_complete(request: HttpRequest, token_id: str) -> HttpResponse:
    """Admins: complete with any JSON output; invalid JSON re-renders the page with the error."""
    token = access.token_for_action(request, token_id, "complete_json")
    if token is None:
        return redirect("dashboard:token_detail", token_id)
    form = forms.CompleteJsonForm(request.POST)
    if not form.is_valid():
        role = selectors.membership_role_for_user(
            user=request.user, project=token.environment.project
        )
        return _render_detail(request, token, role, json_form=form, status=400)
    try:
        result = lifecycle.token_complete(
            token=token, actor=access.actor(request), data=form.cleaned_data["data"]
        )
    except OutputRefused as refused:  # an AAP request's token takes only a decision
        messages.error(request, refused.message)
        return redirect(access.detail_url(token))
    _report(request, result, "Completed")
    return redirect(access.detail_url(token))


@login_required
@require_POST
def token_force_timeout(request: HttpRequest, token_id: str) -> HttpResponse:
    token = access.token_for_action(request, token_id, "force_timeout")
    if token is not None:
        result = lifecycle.token_force_timeout(token=token, actor=access.actor(request))
        _report(request, result, "Timed out")
    return redirect("dashboard:token_detail", token_id)


@login_required
@require_POST
def token_cancel(request: HttpRequest, token_id: str) -> HttpResponse:
    token = access.token_for_action(request, token_id, "cancel")
    if token is not None:
        form = forms.CancelForm(request.POST)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            result = lifecycle.token_cancel(token=token, actor=access.actor(request), reason=reason)
            _report(request, result, "Cancelled")
        else:
            messages.error(
                request,
                "The reason cannot contain null characters (\\u0000)."
                if form.has_error("reason", code=NUL_ERROR)
                else f"The reason is at most {MAX_REASON_LENGTH} characters.",
            )
    return redirect("dashboard:token_detail", token_id)


@login_required
@require_POST
def token_extend(request: HttpRequest, token_id: str) -> HttpResponse:
    """Admins: move a waiting token's deadline ("2h", "1d" or an ISO date-time)."""
    token = access.token_for_action(request, token_id, "extend")
    if token is not None:
        try:
            token = lifecycle.token_extend(
                token=token,
                actor=access.actor(request),
                timeout=request.POST.get("timeout", "").strip(),
            )
        except TokenError as error:
            messages.error(request, f"Not extended: {error.message}")
        else:
            assert token.timeout_at is not None
            at = token.timeout_at.astimezone(UTC)
            messages.success(
                request, f"Extended {token.friendly_id} until {at.day} {at:%b %Y, %H:%M} UTC."
            )
    return redirect("dashboard:token_detail", token_id)


@login_required
@require_POST
def recipient_revoke(request: HttpRequest, token_id: str, recipient_id: int) -> HttpResponse:
    """Admins: revoke one recipient's personal link; the other recipients' links and the plain
    callback URL keep working."""
    token, role = access.token_for_user(request, token_id)
    if not tenancy.role_allows(role, "revoke_link"):
        lifecycle.token_action_denied(
            token=token, actor=access.actor(request), action="revoke_link"
        )
        messages.error(request, access.denied_message(role, "revoke_link", token))
        return redirect(access.detail_url(token))
    recipient = selectors.recipient_get(token=token, recipient_id=recipient_id)
    if recipient is None:
        raise Http404("Recipient not found")
    if approvals.recipient_revoke(recipient=recipient, actor=access.actor(request)):
        messages.success(
            request,
            f"Revoked the personal link of {recipient.email}. The other links and the "
            "callback URL still work.",
        )
    else:
        messages.info(request, f"The personal link of {recipient.email} was already revoked.")
    return redirect(access.detail_url(token))


# ------------------------------------------------------------------------------------------------
# The audit trail, exported as JSON Lines (tokens.domain.chain)
# ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def token_audit(request: HttpRequest, token_id: str) -> HttpResponse:
    """The token's audit trail as a JSON Lines download (anyone who may see the token)."""
    token, _role = access.token_for_user(request, token_id)
    lines = chain.jsonl(selectors.audit_events_for_token(token=token))
    response = HttpResponse("".join(lines), content_type=f"{chain.JSONL_MEDIA_TYPE}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{token.friendly_id}-audit.jsonl"'
    return response


@login_required
@require_GET
def audit_export(
    request: HttpRequest, project_slug: str, environment_slug: str
) -> HttpResponse | StreamingHttpResponse:
    """The environment's audit events of a period: a form, then a JSON Lines download."""
    environment = access.environment_for_user(request, project_slug, environment_slug)
    form = forms.AuditExportForm(request.GET if request.GET else None)
    if not form.is_valid():
        context = {"environment": environment, "form": form}
        status = 400 if form.is_bound else 200
        return render(request, "dashboard/audit_export.html", context, status=status)
    since, until = form.period()
    events = selectors.audit_events_for_environment(
        environment=environment, since=since, until=until
    )
    response = StreamingHttpResponse(
        chain.jsonl(events.iterator(chunk_size=500)),
        content_type=f"{chain.JSONL_MEDIA_TYPE}; charset=utf-8",
    )
    name = f"{environment.project.slug}-{environment.slug}-audit-{since:%Y%m%d}-{until:%Y%m%d}"
    response["Content-Disposition"] = f'attachment; filename="{name}.jsonl"'
    return response
