"""The token's callback URL. The URL (its HMAC) is the credential: no API key, no session.

POST completes: a JSON body is the output (upstream), a form post from our confirmation page
becomes ``{"status": "approved"|"rejected", "comment": …}``. GET and HEAD never change anything:
they render the confirmation page, because mail scanners and chat previews fetch links.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from tokens.domain import actors, deadline, decide, decisions, keys, lifecycle, proposals, snoozes
from tokens.domain.aap import presentation
from tokens.domain.decisions import DECISIONS, decision_of
from tokens.domain.exceptions import (
    DecisionInvalid,
    DecisionRefused,
    NotFound,
    OutputRefused,
    TokenError,
)
from tokens.domain.limits import MAX_COMMENT_LENGTH
from tokens.domain.representation import transition_body
from tokens.models import Recipient, Token, TokenEvent
from tokens.persistence import selectors
from tokens.surfaces.common import negotiation, ratelimit
from tokens.surfaces.common.body import (
    COMPLETE_BODY_LIMIT,
    EMPTY,
    UnacceptableJson,
    parse_json,
    read_body,
)
from tokens.surfaces.common.http import actor_from_request
from tokens.surfaces.common.openapi import (
    EXTENSION,
    RATE_LIMIT_HEADERS,
    TOKENS_TAG,
    ErrorSerializer,
    TransitionResponseSerializer,
    described,
    errors,
)
from tokens.surfaces.links.schema import CALLBACK_PARAMETERS, PERSONAL_PARAMETERS


def _prefers_json(request: HttpRequest) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    if not accept:
        return False
    preferred = request.get_preferred_type(["text/html", "application/json"])
    return preferred == "application/json"


def _private(response: HttpResponse) -> HttpResponse:
    """A capability URL's page: never cached, indexed, framed or leaked through Referer."""
    response["Cache-Control"] = "no-store"
    # Not "no-referrer": under it browsers send "Origin: null" with the form POST and Django's
    # CSRF check refuses every real click (seen in Chromium). "same-origin" (T17's alternative)
    # still never sends this URL to another site.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["X-Frame-Options"] = "DENY"
    return response


def _actor(request: HttpRequest, recipient: Recipient | None = None) -> actors.Actor:
    if recipient is not None:  # a personal link: the decision is this address's
        actor = actor_from_request(
            request, TokenEvent.Channel.CALLBACK, credential=TokenEvent.Credential.PERSONAL_LINK
        )
        return replace(actor, email=recipient.email)
    return actor_from_request(
        request, TokenEvent.Channel.CALLBACK, credential=TokenEvent.Credential.CALLBACK_URL
    )


class InvalidHash(TokenError):
    http_status = 401


class LinkRevoked(TokenError):
    http_status = 403


class TooManyAttempts(TokenError):
    http_status = 429


@dataclass(frozen=True)
class Link:
    """The plain callback URL (``recipient_id`` None) or one recipient's personal link."""

    token_id: str
    digest: str
    recipient_id: int | None = None


def _authorised(request: HttpRequest, link: Link) -> tuple[Token, Recipient | None]:
    """The token (and recipient) the link is for. The link is checked before any limit: a
    valid link always works, whoever else mangled links from the same address (a mail gateway,
    Slack, a company's NAT). Only refused links are counted, per client address; over that limit
    a refused link answers 429 instead of 401/404. A refusal names no token, and the audit trail
    of a real token gets at most one event a minute."""
    try:
        token = selectors.token_get_by_id(token_id=link.token_id)
    except NotFound:
        _count_refusal(request)
        raise
    secret = token.environment.callback_secret
    recipient = None
    if link.recipient_id is None:
        valid = keys.callback_hash_matches(
            callback_secret=secret, internal_id=token.id, given=link.digest
        )
    else:
        recipient = selectors.recipient_get(token=token, recipient_id=link.recipient_id)
        valid = recipient is not None and keys.personal_hash_matches(
            callback_secret=secret, internal_id=token.id, address=recipient.email, given=link.digest
        )
    if not valid:
        lifecycle.token_credential_refused(
            token=token, actor=_actor(request), credential="callback_hash"
        )
        _count_refusal(request)
        raise InvalidHash("Invalid URL, hash doesn't match")
    if recipient is not None and not recipient.is_active:
        raise LinkRevoked("This link was revoked.")
    return token, recipient


def _count_refusal(request: HttpRequest) -> None:
    """Count a refused link for its address; over the limit, refuse it with 429 instead."""
    decision = ratelimit.hit(ratelimit.CALLBACK_FAILURES, ratelimit.client_ip(request))
    if decision is not None and not decision.allowed:
        ratelimit.remember(request, decision)
        raise TooManyAttempts(ratelimit.message(decision))


@described(
    post=extend_schema(
        operation_id="completeWaitpointTokenByCallback",
        summary="Complete a token through its callback URL",
        description=(
            "No API key: the hash in the URL (HMAC-SHA256 of the token's id, keyed by the "
            "environment's callback secret) is the credential. The whole JSON body is the "
            "output; an empty or invalid body means `{}`. The confirmation page's own form "
            "(`decision`, `comment`, CSRF-protected) posts here too and is answered with a "
            "redirect to the page; that form is not part of the API."
        ),
        tags=[TOKENS_TAG],
        request={"application/json": OpenApiTypes.ANY},
        parameters=[*CALLBACK_PARAMETERS, *RATE_LIMIT_HEADERS],
        responses={
            200: TransitionResponseSerializer,
            **errors(400, 401, 404, 411, 413, 429, 503),
        },
    ),
    get=extend_schema(
        operation_id="showWaitpointTokenConfirmation",
        summary="The callback URL's confirmation page",
        description=(
            "An HTML page with Approve / Reject buttons; GET never completes anything (mail "
            "scanners and link previews fetch links). `?decision=approved|rejected` preselects "
            "a button. A request whose `Accept` prefers `application/json` gets upstream's "
            "405 instead."
        ),
        tags=[TOKENS_TAG],
        parameters=[
            *CALLBACK_PARAMETERS,
            OpenApiParameter(
                "decision",
                str,
                OpenApiParameter.QUERY,
                description="`approved` or `rejected` preselects that button; other values "
                "are ignored (it is a link people follow).",
            ),
        ],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The page."),
            (404, "text/html"): OpenApiResponse(
                OpenApiTypes.STR, description="Unknown token or wrong hash: a page that says so."
            ),
            **errors(405),
        },
        extensions={EXTENSION: True},
    ),
)
@csrf_exempt
@negotiation.answers(negotiation.people_or_json)
def token_callback(request: HttpRequest, token_id: str, digest: str) -> HttpResponse:
    return _callback(request, Link(token_id=token_id, digest=digest))


@described(
    post=extend_schema(
        operation_id="completeWaitpointTokenByPersonalLink",
        summary="Complete a token through one recipient's personal link",
        description=(
            "Our extension. The link e-mailed to one approver: the hash is an HMAC-SHA256 of "
            "the token's id and that address, keyed by the environment's callback secret. As "
            "the callback URL, but the decision is recorded as that address; a revoked link "
            'is a 403. A body `{"decision": "approved"|"rejected", "comment"?, '
            '"fields"?, "proposal"?, "proposalVersion"?}` is that person\'s decision '
            "(as on the confirmation page: an edited `proposal` is checked against the "
            "request's schema and editable fields; 400 with `details` per field, 403 when a "
            "field may not change); the answer adds `resolved` and `edited`."
        ),
        tags=[TOKENS_TAG],
        request={"application/json": OpenApiTypes.ANY},
        parameters=[*PERSONAL_PARAMETERS, *RATE_LIMIT_HEADERS],
        responses={
            200: TransitionResponseSerializer,
            403: OpenApiResponse(ErrorSerializer, description="`This link was revoked.`"),
            **errors(400, 401, 404, 411, 413, 429, 503),
        },
        extensions={EXTENSION: True},
    ),
    get=extend_schema(
        operation_id="showWaitpointTokenPersonalConfirmation",
        summary="A personal link's confirmation page",
        description='As the callback URL\'s page, saying who decides ("You are deciding as …").',
        tags=[TOKENS_TAG],
        parameters=[
            *PERSONAL_PARAMETERS,
            OpenApiParameter(
                "decision",
                str,
                OpenApiParameter.QUERY,
                description="`approved` or `rejected` preselects that button.",
            ),
        ],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The page."),
            (403, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="Revoked."),
            (404, "text/html"): OpenApiResponse(
                OpenApiTypes.STR, description="Unknown token or wrong hash: a page that says so."
            ),
            **errors(405),
        },
        extensions={EXTENSION: True},
    ),
)
@csrf_exempt
@negotiation.answers(negotiation.people_or_json)
def token_personal(
    request: HttpRequest, token_id: str, recipient_id: str, digest: str
) -> HttpResponse:
    """One recipient's link: as the callback URL, but the decision is recorded as theirs.
    (Any text routes here, so a mangled link gets this page's answers, not a bare 404.)"""
    valid = recipient_id.isascii() and recipient_id.isdigit() and len(recipient_id) < 18
    number = int(recipient_id) if valid else 0
    return _callback(request, Link(token_id=token_id, digest=digest, recipient_id=number))


def _callback(request: HttpRequest, link: Link) -> HttpResponse:
    if request.method in ("GET", "HEAD"):
        if _prefers_json(request):
            response = JsonResponse({"error": "Method not allowed"}, status=405)
            response["Allow"] = "POST"
            return response
        return confirmation_page(request, link)
    if request.method != "POST":
        response = JsonResponse({"error": "Method not allowed"}, status=405)
        response["Allow"] = "POST"
        return response
    try:
        raw = read_body(request, limit=COMPLETE_BODY_LIMIT)
        token, recipient = _authorised(request, link)
    except TokenError as error:
        return JsonResponse({"error": error.message}, status=error.http_status)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _decide_from_form(request, token, recipient, link)
    try:
        data: Any = parse_json(raw)
    except UnacceptableJson as error:
        # NaN, NUL, lone surrogates, deep nesting: a 400, never a silent {} output.
        return JsonResponse({"error": error.message}, status=error.http_status)
    except TokenError:
        data = {}
    if recipient is not None and isinstance(data, dict) and data.get("decision") in DECISIONS:
        return _decide_from_json(request, token, recipient, data)
    # Upstream: the whole body is the output; an empty or invalid (not JSON at all) body means {}.
    try:
        result = lifecycle.token_complete(
            token=token, actor=_actor(request, recipient), data={} if data is EMPTY else data
        )
    except OutputRefused as refused:  # an AAP request's token takes only a decision
        return JsonResponse({"error": refused.message}, status=refused.http_status)
    body = transition_body(result.token, applied=result.applied, now=timezone.now())
    return JsonResponse(body)


def _decide_from_json(
    request: HttpRequest, token: Token, recipient: Recipient, body: dict[str, Any]
) -> JsonResponse:
    """A named approver decides over the API, through their personal link: ``{"decision":
    "approved"|"rejected", "comment"?, "fields"?, "proposal"?, "proposalVersion"?}``."""
    version = body.get("proposalVersion")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        return JsonResponse({"error": "Invalid proposalVersion: a whole number."}, status=400)
    fields = body.get("fields")
    if fields is not None and not isinstance(fields, dict):
        return JsonResponse({"error": "Invalid fields: a JSON object."}, status=400)
    try:
        result = decide.decide(
            token=token,
            actor=_actor(request, recipient),
            authority=decide.Authority.recipient(),
            voter=decide.Voter.for_email(recipient.email),
            decision=body["decision"],
            comment=body.get("comment", ""),
            fields=fields,
            proposal=body.get("proposal"),
            proposal_version=version,
        )
    except DecisionInvalid as invalid:
        details = [{"path": [name], "message": text} for name, text in invalid.field_errors.items()]
        answer: dict[str, Any] = {"error": invalid.message}
        if details:
            answer["details"] = details
        return JsonResponse(answer, status=400)
    except DecisionRefused as refused:
        return JsonResponse({"error": refused.message}, status=403)
    answer = transition_body(result.token, applied=result.applied, now=timezone.now())
    answer.update(resolved=result.resolved, edited=result.edited)
    if token.required_approvals > 1:
        answer.update(approvals=result.approvals, required=result.required)
    return JsonResponse(answer)


def _no_view(request: HttpRequest) -> HttpResponse:
    """Stands in for a view where CsrfViewMiddleware needs one; it is never called."""
    return HttpResponse()


def _decide_from_form(
    request: HttpRequest, token: Token, recipient: Recipient | None, link: Link
) -> HttpResponse:
    # The page carries a CSRF token: a cross-site form cannot ride on a link someone opened.
    refusal = CsrfViewMiddleware(_no_view).process_view(request, _no_view, (), {})
    if refusal is not None:
        return _private(refusal)
    if "not_now" in request.POST:
        return _not_now(request, token, recipient, link)
    comment = request.POST.get("comment", "")
    try:
        result = decide.decide(
            token=token,
            actor=_actor(request, recipient),
            authority=decide.Authority.recipient() if recipient else decide.Authority.link(),
            voter=decide.Voter.for_email(recipient.email) if recipient else None,
            decision=request.POST.get("decision", ""),
            comment=comment,
            fields=decisions.form_values(request.POST),
            proposal=proposals.from_form(token, request.POST),
            proposal_version=proposals.version_of(request.POST),
        )
    except (DecisionInvalid, DecisionRefused) as refused:
        # 200, as Django re-renders an invalid form (a 4xx HTML page on /api/ becomes JSON).
        field_errors = refused.field_errors if isinstance(refused, DecisionInvalid) else None
        return confirmation_page(
            request, link, error=refused.message, comment=comment, field_errors=field_errors
        )
    # Post/redirect/get: the page then shows the outcome, and a reload cannot post again.
    if result.applied and not result.resolved:
        return _private(redirect(f"{request.path}?voted=1"))
    return _private(redirect(request.path if result.applied else f"{request.path}?ignored=1"))


def _not_now(
    request: HttpRequest, token: Token, recipient: Recipient | None, link: Link
) -> HttpResponse:
    """The personal link's "not now": aside for that address until the chosen time (or back)."""
    voter = decide.Voter.for_email(recipient.email) if recipient else None
    actor = _actor(request, recipient)
    if voter is not None and request.POST.get("not_now") == "clear":
        snoozes.token_unsnooze(token=token, actor=actor, voter=voter)
        return _private(redirect(f"{request.path}?back=1"))
    until = snoozes.form_until(request.POST.get("until", ""), request.POST.get("until_at", ""))
    try:
        snoozes.token_snooze(
            token=token,
            actor=actor,
            authority=decide.Authority.recipient() if recipient else decide.Authority.link(),
            voter=voter,
            until=until,
        )
    except (DecisionRefused, TokenError) as refused:
        return confirmation_page(request, link, error=f"Not put aside: {refused.message}")
    return _private(redirect(request.path))


@ensure_csrf_cookie
def confirmation_page(
    request: HttpRequest,
    link: Link,
    *,
    error: str = "",
    comment: str = "",
    field_errors: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        token, recipient = _authorised(request, link)
    except LinkRevoked:
        response = render(request, "callback/invalid.html", {"revoked": True}, status=403)
        return _private(response)
    except TooManyAttempts as error:
        page = render(request, "callback/too_many.html", {"message": error.message}, status=429)
        return _private(page)
    except TokenError:
        response = render(request, "callback/invalid.html", status=404)
        return _private(response)
    now = timezone.now()
    state = deadline.effective(token, now)
    votes = selectors.votes_for_token(token=token) if token.required_approvals > 1 else []
    decision = request.GET.get("decision", "")
    context = {
        "token": token,
        "recipient": recipient,
        "state": state,
        "now": now,
        "decision": decision if decision in DECISIONS else "",
        "error": error,
        "comment": comment,
        "max_comment_length": MAX_COMMENT_LENGTH,
        "labels": decisions.labels(token.decision_spec),
        "field_specs": decisions.field_specs(token.decision_spec),
        "field_values": request.POST if request.method == "POST" else {},
        "field_errors": field_errors or {},
        "ignored": request.GET.get("ignored") == "1",
        "voted": request.GET.get("voted") == "1",
        "votes": votes,
        "approvals": sum(vote.decision == "approved" for vote in votes),
        "my_vote": next(
            (v for v in votes if recipient and v.voter == recipient.email.lower()), None
        ),
        "output": decision_of(state.output, state.output_type),
        "resolution": selectors.token_resolution_event(token=token),
        "aside": snoozes.snooze_of(
            token, decide.Voter.for_email(recipient.email) if recipient else None, now
        ),
        "not_now_choices": snoozes.UNTIL_CHOICES,
        "aap_call": presentation.proposed_call(token),
        "back": request.GET.get("back") == "1",
        **proposals.form_context(token, request.POST if request.method == "POST" else None),
    }
    return _private(render(request, "callback/confirm.html", context, status=status))
