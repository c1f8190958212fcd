"""Bulk approve and bulk reject, in two steps: a review, then Confirm.

The bulk bar's POST (and a one-click approval in a production environment, when the browser has
not already asked) renders a review page that lists what would be decided: each token, its
project and environment (production flagged), its deadline, and the tokens left out with the
reason. Nothing is decided there. Only the review's Confirm button (``confirm=yes``) decides,
one token at a time through ``tokens.domain.decide``, each checked and audited on its own, and
the outcome is reported per token. Works without JavaScript.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from tokens.domain import deadline, decide, decisions, keys
from tokens.domain.decisions import decision_of
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused, NotFound
from tokens.models import Environment, Membership, Token
from tokens.persistence import selectors
from tokens.surfaces.dashboard import access, forms

CONFIRMED = "yes"  # the review's Confirm button: confirm=yes
TITLE_IN_MESSAGES = 60  # a title is up to 200 characters; messages name many tokens


@dataclass
class Row:
    """One selected token on the review page: decidable (``reason`` empty) or left out."""

    token_id: str
    token: Token | None = None
    reason: str = ""


def _name(token: Token) -> str:
    title = token.title or ""
    if len(title) > TITLE_IN_MESSAGES:
        title = title[: TITLE_IN_MESSAGES - 1] + "…"
    return f"{title} ({token.friendly_id})" if title else token.friendly_id


def _status_text(token: Token, now: datetime) -> str:
    """ "approved", "timed out at 09:12 UTC", "cancelled": what a token became meanwhile."""
    state = deadline.effective(token, now)
    if state.status == Token.Status.COMPLETED:
        decided = decision_of(state.output, state.output_type).get("status")
        return str(decided) if decided in decisions.DECISIONS else "completed"
    if state.status == Token.Status.TIMED_OUT and state.completed_at is not None:
        return f"timed out at {state.completed_at.astimezone(UTC):%H:%M} UTC"
    return Token.Status(state.status).label.lower()


class _Access:
    """The user's role per project and their identity, looked up once per request."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.voter = access.voter(request)
        self.roles: dict[int, str | None] = {}

    def role(self, token: Token) -> str | None:
        project = token.environment.project
        if project.pk not in self.roles:
            self.roles[project.pk] = selectors.membership_role_for_user(
                user=self.request.user, project=project
            )
        return self.roles[project.pk]


def _review_row(
    access_: _Access, token_id: str, token: Token | None, decision: str, now: datetime
) -> Row:
    """Whether this token can be decided now, and if not, why (said as the review shows it);
    ``decide.check`` answers, so the review and the decision never disagree."""
    if token is None:
        return Row(token_id, reason="Not found in your projects.")
    role = access_.role(token)
    problem = decide.check(
        token=token,
        authority=decide.Authority.member(role),
        voter=access_.voter,
        decision=decision,
    )
    if problem is not None and problem.problem == "role":
        label = Membership.Role(role).label.lower() if role else "not a member"
        return Row(
            token_id, token, f"Your role in {token.environment.project} ({label}) cannot decide."
        )
    if not deadline.is_waiting(token, now):
        return Row(token_id, token, f"Already {_status_text(token, now)}.")
    if problem is not None:
        return Row(token_id, token, REVIEW_REASONS.get(problem.problem, problem.message))
    return Row(token_id, token)


REVIEW_REASONS = {
    "fields": "Approving it asks for input: open it to decide.",
    "own_request": "You requested it: another approver must approve it.",
    "voted_twice": "You already decided it.",
}


def review(
    request: HttpRequest, *, decision: str, token_ids: list[str], comment: str, back: str
) -> HttpResponse:
    """The review page: nothing is decided here."""
    now = timezone.now()
    access_ = _Access(request)
    found = selectors.token_map_for_user(user=request.user, token_ids=token_ids)
    rows = [
        _review_row(
            access_, token_id, found.get(keys.parse_token_id(token_id) or ""), decision, now
        )
        for token_id in token_ids
    ]
    included = [row for row in rows if not row.reason]
    counts = Counter(row.token.environment for row in included if row.token)
    production = sum(count for env, count in counts.items() if env.slug == Environment.Slug.PROD)
    context = {
        "decision": decision,
        "verb": "Approve" if decision == "approved" else "Reject",
        "selected": len(rows),
        "included": included,
        "excluded": [row for row in rows if row.reason],
        "environments": [{"environment": env, "count": count} for env, count in counts.items()],
        "production": production,
        "comment": comment,
        "back": back,
        "now": now,
    }
    return render(request, "dashboard/bulk_review.html", context)


@login_required
@require_POST
def token_bulk(request: HttpRequest) -> HttpResponse:
    """The bulk bar posts here: without ``confirm=yes`` the review page, with it the decisions."""
    back = access.next_or(request, reverse("dashboard:home"))
    form = forms.BulkDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, str(next(iter(form.errors.values()))[0]))
        return redirect(back)
    decision, comment = form.cleaned_data["decision"], form.cleaned_data["comment"].strip()
    # One row per token, however its id was written (waitpoint_… or bare; the form checked both).
    token_ids = list(
        dict.fromkeys(
            f"{keys.FRIENDLY_PREFIX}{keys.parse_token_id(i)}" for i in form.cleaned_data["ids"]
        )
    )
    if request.POST.get("confirm") != CONFIRMED:
        return review(request, decision=decision, token_ids=token_ids, comment=comment, back=back)
    access_ = _Access(request)
    outcomes: dict[str, list[str]] = {}
    for token_id in token_ids:
        outcome, text = _decide_one(access_, token_id, decision, comment)
        outcomes.setdefault(outcome, []).append(text)
    _report(request, decision, outcomes)
    return redirect(back)


def _decide_one(access_: _Access, token_id: str, decision: str, comment: str) -> tuple[str, str]:
    """(outcome, how the report names the token): each token checked and audited on its own,
    so whatever changed since the review (resolved, timed out, a role removed) is refused."""
    request = access_.request
    try:
        token = selectors.token_get_for_user(user=request.user, token_id=token_id)
    except NotFound:
        return "missing", token_id
    try:
        result = decide.decide(
            token=token,
            actor=access.actor(request),
            authority=decide.Authority.member(access_.role(token)),
            voter=access_.voter,
            decision=decision,
            comment=comment,
        )
    except DecisionInvalid as invalid:
        # Approving it asks for input: only on its own page.
        return ("needs_input" if invalid.problem == "fields" else "invalid"), _name(token)
    except DecisionRefused as refused:
        # Their role, their own request, or a second vote (audited).
        return ("denied" if refused.problem == "role" else "refused"), _name(token)
    if result.applied and not result.resolved:
        return "voted", f"{_name(token)}, {result.approvals} of {result.required}"
    if result.applied:
        return "applied", _name(token)
    return "ignored", f"{_name(token)}: {_status_text(result.token, timezone.now())}"


def _plural(count: int, word: str = "token") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# One message per outcome, in this order, naming each token it concerns ({verb}: Approved/Rejected).
REPORTS: list[tuple[str, Callable[..., None], str]] = [
    ("applied", messages.success, "{verb} {count}: {names}."),
    (
        "voted",
        messages.success,
        "Your approval is recorded; more approvals needed on {count}: {names}.",
    ),
    ("ignored", messages.warning, "Nothing changed on {count} resolved meanwhile: {names}."),
    ("denied", messages.error, "Not allowed for {count}, your role there cannot decide: {names}."),
    ("refused", messages.error, "Not decided, you requested or already decided {count}: {names}."),
    (
        "needs_input",
        messages.error,
        "Not approved, approving asks for input (open each one): {names}.",
    ),
    ("invalid", messages.error, "Not decided, the comment is not accepted: {names}."),
    ("missing", messages.error, "Not found: {names}."),
]


def _report(request: HttpRequest, decision: str, outcomes: dict[str, list[str]]) -> None:
    verb = "Approved" if decision == "approved" else "Rejected"
    for outcome, add, text in REPORTS:
        names = outcomes.get(outcome)
        if names:
            add(request, text.format(verb=verb, count=_plural(len(names)), names="; ".join(names)))
