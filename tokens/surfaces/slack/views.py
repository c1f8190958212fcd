"""``POST /integrations/slack/interactivity``: what Slack sends when someone clicks a request's
button or submits its form (https://api.slack.com/interactivity/handling).

1. The request must carry Slack's signature of exactly this body and a timestamp within five
   minutes (the official ``slack_sdk`` SignatureVerifier, keyed by the signing secret of the
   environment the token belongs to); anything else is a 401, rate-limited per address and
   audited on the token as a refused credential.
2. The clicker is the e-mail address Slack has confirmed for their account
   (``tokens.delivery.slack.people``), never anything in the payload.
3. ``tokens.domain.decide`` decides as that address (``Authority.recipient``: one of the
   request's approvers; no approval of one's own request; one vote per person; quorum; the
   input fields). This module checks nothing of its own; it words the domain's answers for
   Slack: a note only the clicker sees (sent by the worker), or the form's own errors.

Slack waits three seconds for the answer: nothing here waits on Slack, except ``users.info``
for a clicker not yet cached and ``views.open`` (a form's trigger expires in 3 s), both within
``SLACK_CLICK_TIMEOUT``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import QueryDict
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from slack_sdk.signature import SignatureVerifier

from tokens.delivery.slack import api, blocks, connections, people
from tokens.delivery.slack import channel as slack_channel
from tokens.domain import decide, decisions, keys, lifecycle, links
from tokens.domain.actors import Actor
from tokens.domain.exceptions import DecisionInvalid, DecisionRefused, NotFound, TokenError
from tokens.models import SlackConnection, Token, TokenEvent
from tokens.persistence import selectors
from tokens.surfaces.common import ratelimit
from tokens.surfaces.common.body import read_body
from tokens.surfaces.common.http import actor_from_request

BODY_LIMIT = 256 * 1024  # Slack's payloads are a few KiB; a view with many fields stays small

UNIDENTIFIED = {
    "unknown": "We could not tell who you are: your Slack account has no confirmed e-mail "
    "address we can read. Nothing was changed; use the link in your e-mail instead.",
    "unavailable": "Slack did not tell us who you are in time. Nothing was changed; try again "
    "in a minute, or use the link in your e-mail.",
}


def _refusal_text(refused: DecisionRefused, token: Token, email: str) -> str:
    if refused.problem == "not_approver":
        return (
            f"Only the people this request was sent to can decide it, and your Slack address "
            f"({email}) is not one of them. Nothing was changed."
        )
    return f"{refused.message} Nothing was changed."


def _ok() -> HttpResponse:
    return HttpResponse(status=200)


def _refuse(request: HttpRequest, message: str, status: int = 401) -> HttpResponse:
    ratelimit.hit(ratelimit.CALLBACK_FAILURES, ratelimit.client_ip(request))
    return JsonResponse({"error": message}, status=status)


def _token_named(payload: dict[str, Any]) -> Token | None:
    """The token the payload is about (not yet trusted: only to find whose secret signs it)."""
    if isinstance(payload.get("view"), dict):  # a form submitted or closed
        named = blocks.metadata_of(payload["view"]).get("token", "")
    else:
        actions = payload.get("actions") or [{}]
        named = str((actions[0] or {}).get("value") or "")
    token_id = keys.parse_token_id(named)
    if token_id is None:
        return None
    try:
        return selectors.token_get_by_id(token_id=token_id)
    except NotFound:
        return None


def _verified(request: HttpRequest, raw: bytes, connection: SlackConnection) -> bool:
    secret = connections.signing_secret(connection)
    if not secret:
        return False
    return SignatureVerifier(secret).is_valid(
        body=raw.decode("utf-8", errors="replace"),
        timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
        signature=request.headers.get("X-Slack-Signature", ""),
    )


def _actor(request: HttpRequest, email: str = "") -> Actor:
    actor = actor_from_request(
        request, TokenEvent.Channel.SLACK, credential=TokenEvent.Credential.SLACK_SIGNATURE
    )
    return replace(actor, email=email)


@csrf_exempt
def interactivity(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = JsonResponse({"error": "Method not allowed"}, status=405)
        response["Allow"] = "POST"
        return response
    limited = ratelimit.peek(ratelimit.CALLBACK_FAILURES, ratelimit.client_ip(request))
    if limited is not None and not limited.allowed:
        ratelimit.remember(request, limited)
        return JsonResponse({"error": ratelimit.message(limited)}, status=429)
    try:
        raw = read_body(request, limit=BODY_LIMIT)
    except TokenError as error:
        return JsonResponse({"error": error.message}, status=error.http_status)
    try:
        payload = json.loads(QueryDict(raw.decode("utf-8", errors="replace")).get("payload", ""))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _refuse(request, "Expected Slack's form-encoded payload.", status=400)
    token = _token_named(payload)
    connection = slack_channel.connection_for(token.environment_id) if token else None
    if token is None or connection is None or not _verified(request, raw, connection):
        if token is not None:
            lifecycle.token_credential_refused(
                token=token, actor=_actor(request), credential="slack_signature"
            )
        return _refuse(request, "Invalid Slack signature")
    if payload.get("type") == "block_actions":
        return _clicked(request, payload, token, connection)
    if payload.get("type") == "view_submission":
        return _submitted(request, payload, token, connection)
    return _ok()  # view_closed and anything else: nothing to do


def _clicked(
    request: HttpRequest, payload: dict[str, Any], token: Token, connection: SlackConnection
) -> HttpResponse:
    action = (payload.get("actions") or [{}])[0] or {}
    decision = blocks.ACTION_DECISIONS.get(str(action.get("action_id")))
    if decision is None:
        return _ok()  # "Open in waitpoints" (a link) also reports its click
    user_id = str((payload.get("user") or {}).get("id") or "")
    channel_id = str(
        (payload.get("channel") or {}).get("id")
        or (payload.get("container") or {}).get("channel_id")
        or ""
    )
    now = timezone.now()

    def note(text: str) -> HttpResponse:
        if channel_id and user_id:
            slack_channel.notice(token, channel=channel_id, user=user_id, text=text, now=now)
        return _ok()

    identified = people.email_of(connection, user_id)
    if not identified.email:
        return note(UNIDENTIFIED[identified.problem])
    voter = decide.Voter.for_email(identified.email)
    authority = decide.Authority.recipient()
    if decisions.field_specs(token.decision_spec):
        return _open_form(payload, token, connection, decision, voter, note)
    try:
        result = decide.decide(
            token=token,
            actor=_actor(request, identified.email),
            authority=authority,
            voter=voter,
            decision=decision,
        )
    except DecisionRefused as refused:
        return note(_refusal_text(refused, token, identified.email))
    except DecisionInvalid as invalid:
        return note(f"{invalid.message} Nothing was changed.")
    if not result.applied:
        return note(blocks.decided_notice(blocks.view_of(token.pk)))
    if not result.resolved:
        return note(
            f"Your approval counts: {result.approvals} of {result.required} so far. "
            "The request waits for the others."
        )
    return _ok()  # the message itself now shows the outcome (updated by the worker)


def _open_form(
    payload: dict[str, Any],
    token: Token,
    connection: SlackConnection,
    decision: str,
    voter: decide.Voter,
    note: Any,
) -> HttpResponse:
    """A request with input fields: the form, unless the click could not count anyway."""
    view = blocks.view_of(token.pk)
    if not view.waiting:
        return note(blocks.decided_notice(view))
    problem = decide.check(
        token=token, authority=decide.Authority.recipient(), voter=voter, decision=decision
    )
    if isinstance(problem, DecisionRefused):
        return note(_refusal_text(problem, token, voter.key))
    form = blocks.modal(
        token, decision, metadata={"token": token.friendly_id, "decision": decision}
    )
    trigger = str(payload.get("trigger_id") or "")
    try:
        api.call(
            connection,
            "views.open",
            lambda web: web.views_open(trigger_id=trigger, view=form),
            timeout=settings.SLACK_CLICK_TIMEOUT,
        )
    except api.SlackError:
        url = links.dashboard_url(token, base=links.public_base_url())
        return note(f"Slack did not open the form in time. Decide on the token page: {url}")
    return _ok()


def _submitted(
    request: HttpRequest, payload: dict[str, Any], token: Token, connection: SlackConnection
) -> HttpResponse:
    view_payload = payload.get("view") or {}
    decision = blocks.metadata_of(view_payload).get("decision", "")
    values = ((view_payload.get("state") or {}).get("values")) or {}
    fields, comment = blocks.form_values(values)
    user_id = str((payload.get("user") or {}).get("id") or "")
    identified = people.email_of(connection, user_id)
    if not identified.email:
        return _show("Not recorded", UNIDENTIFIED[identified.problem])
    try:
        result = decide.decide(
            token=token,
            actor=_actor(request, identified.email),
            authority=decide.Authority.recipient(),
            voter=decide.Voter.for_email(identified.email),
            decision=decision,
            comment=comment,
            fields=fields,
        )
    except DecisionInvalid as invalid:
        if invalid.problem == "fields":
            errors = blocks.field_errors(invalid.field_errors)
        else:
            errors = {blocks.COMMENT_BLOCK: invalid.message[:150]}
        return JsonResponse({"response_action": "errors", "errors": errors})
    except DecisionRefused as refused:
        return _show("Not allowed", _refusal_text(refused, token, identified.email))
    if not result.applied:
        return _show("Already decided", blocks.decided_notice(blocks.view_of(token.pk)))
    if not result.resolved:
        return _show(
            "Recorded",
            f"Your approval counts: {result.approvals} of {result.required} so far. "
            "The request waits for the others.",
        )
    return JsonResponse({"response_action": "clear"})


def _show(title: str, text: str) -> JsonResponse:
    return JsonResponse({"response_action": "update", "view": blocks.notice_modal(title, text)})
