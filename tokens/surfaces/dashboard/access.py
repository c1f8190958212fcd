"""Who is asking, and what they may see and do: the dashboard's access helpers.

Every page and action asks these first: a token or environment outside the user's projects is
a 404 (as an unknown id), and an action the user's role does not allow is refused with a
message and an audit event. Decisions are authorised by ``tokens.domain.decide`` itself; the
other actions by ``tokens.domain.tenancy.role_allows``.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from tokens.domain import actors, decide, lifecycle, tenancy
from tokens.domain.exceptions import NotFound
from tokens.models import Environment, Membership, Token, TokenEvent
from tokens.persistence import selectors
from tokens.surfaces.common.http import session_actor

ACTION_LABELS = {
    "complete_json": "complete with JSON",
    "force_timeout": "force a timeout on",
    "cancel": "cancel",
    "extend": "extend the deadline of",
    "revoke_link": "revoke personal links of",
}


def actor(request: HttpRequest) -> actors.Actor:
    return session_actor(request, TokenEvent.Channel.DASHBOARD)


def voter(request: HttpRequest) -> decide.Voter:
    user = request.user
    return decide.Voter.for_user(
        username=user.get_username(), email=getattr(user, "email", "") or ""
    )


def token_for_user(request: HttpRequest, token_id: str) -> tuple[Token, str | None]:
    """The token and the user's role in its project; 404 (as for an unknown id) otherwise."""
    try:
        token = selectors.token_get_for_user(user=request.user, token_id=token_id)
    except NotFound:
        raise Http404("Waitpoint not found") from None
    project = token.environment.project
    return token, selectors.membership_role_for_user(user=request.user, project=project)


def token_for_action(request: HttpRequest, token_id: str, action: str) -> Token | None:
    """The token if the user's role allows ``action`` (not a decision: ``decide`` checks
    those); None, refused, audited and with a message, otherwise (a viewer's forged POST)."""
    token, role = token_for_user(request, token_id)
    if tenancy.role_allows(role, action):
        return token
    lifecycle.token_action_denied(token=token, actor=actor(request), action=action)
    messages.error(request, denied_message(role, action, token))
    return None


def denied_message(role: str | None, action: str, token: Token) -> str:
    label = Membership.Role(role).label.lower() if role else "no"
    return (
        f"Not allowed: as {label} in {token.environment.project} you cannot "
        f"{ACTION_LABELS.get(action, action)} tokens. Nothing was changed."
    )


def environment_for_user(request: HttpRequest, project_slug: str, slug: str) -> Environment:
    try:
        return selectors.environment_get_for_user(
            user=request.user, project_slug=project_slug, slug=slug
        )
    except NotFound:
        raise Http404("Environment not found") from None


def environment_for_action(
    request: HttpRequest, project_slug: str, slug: str, action: str
) -> Environment:
    """The environment, if the user's role in its project allows ``action`` (managing webhooks,
    integrations); a 404 otherwise, as for a project the user is not a member of."""
    environment = environment_for_user(request, project_slug, slug)
    role = selectors.membership_role_for_user(user=request.user, project=environment.project)
    if not tenancy.role_allows(role, action):
        raise Http404("Only admins manage this")
    return environment


def next_or(request: HttpRequest, default: str) -> str:
    """Where to go after an action: the page it was started from, if it is ours."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else default


def detail_url(token: Token) -> str:
    return reverse("dashboard:token_detail", args=[token.friendly_id])
