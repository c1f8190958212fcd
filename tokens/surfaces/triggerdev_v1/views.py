"""The v1 waitpoint-token API: thin adapters around services and selectors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.domain import actors, chain, consumption, deadline, lifecycle, links
from tokens.domain.exceptions import InvalidInput, TokenError
from tokens.domain.representation import (
    TokenOutputSerializer,
    consumption_fields,
    transition_body,
    v1_filter_statuses,
)
from tokens.models import Token, TokenEvent
from tokens.persistence import selectors
from tokens.persistence.filters import ApiTokenFilterSet
from tokens.persistence.pagination import paginate_with, parse_page_request
from tokens.persistence.rows import token_rows
from tokens.surfaces.common.body import COMPLETE_BODY_LIMIT, CREATE_BODY_LIMIT, read_json_object
from tokens.surfaces.common.http import actor_from_request, base_url
from tokens.surfaces.common.openapi import (
    COMMON_ERRORS,
    EXTENSION,
    RATE_LIMIT_HEADERS,
    TOKENS_TAG,
    TransitionResponseSerializer,
    errors,
    token_id_parameter,
)
from tokens.surfaces.triggerdev_v1.authentication import (
    ApiPrincipal,
    check_write_scope,
    issue_public_access_token,
    principal,
    public_claims,
)
from tokens.surfaces.triggerdev_v1.schema import (
    AUTH_TAG,
    CREATE_RESPONSE_HEADERS,
    LIST_PARAMETERS,
    AuditEventSerializer,
    CancelTokenRequestSerializer,
    CompleteTokenRequestSerializer,
    ConsumeTokenRequestSerializer,
    ConsumeTokenResponseSerializer,
    CreateTokenRequestSerializer,
    CreateTokenResponseSerializer,
    ExtendTokenRequestSerializer,
    JwtClaimsSerializer,
    TokenListSerializer,
    WaitpointTokenDetailSerializer,
)

FILTER_PARAMS = {
    "filter[status]": "status",
    "filter[tags]": "tags",
    "filter[idempotencyKey]": "idempotencyKey",
    "filter[createdAt][period]": "period",
    "filter[createdAt][from]": "createdFrom",
    "filter[createdAt][to]": "createdTo",
}


# Optional, but never null when present: upstream's schema refuses null for its four fields, and
# ours follow suit (the published schema has none of them nullable).
NOT_NULL_ON_CREATE = (
    *("timeout", "idempotencyKey", "idempotencyKeyTTL", "tags"),
    *("approvers", "title", "description", "context", "decision", "requiredApprovals"),
    *("requestedBy", "remindAfter", "escalateAfter", "escalateTo", "decisionValidFor"),
    "onTimeout",
    *("requestedBy", "remindAfter", "escalateAfter", "escalateTo"),
    *("proposal", "proposalSchema", "proposalEditable"),
)


def api_actor(
    request: Request | HttpRequest, channel: str = TokenEvent.Channel.API
) -> actors.Actor:
    """The key, or the public access token (and the key that signed it, if one did)."""
    principal = getattr(request, "user", None)
    if not isinstance(principal, ApiPrincipal):
        return actor_from_request(request, channel, credential="")
    return actor_from_request(
        request, channel, credential=principal.credential, api_key=principal.api_key
    )


class JsonErrors(BaseContentNegotiation):
    """The audit export answers JSON Lines whatever the client accepts, and its errors JSON
    (as every API error), so no ``Accept`` makes it a 406."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class TokenViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="createWaitpointToken",
        summary="Create a token",
        tags=[TOKENS_TAG],
        request=CreateTokenRequestSerializer,
        parameters=[*CREATE_RESPONSE_HEADERS, *RATE_LIMIT_HEADERS],
        responses={
            200: CreateTokenResponseSerializer,
            **errors(400, 411, 413, 422, *COMMON_ERRORS),
        },
    )
    def create(self, request: Request) -> Response:
        body = read_json_object(request, limit=CREATE_BODY_LIMIT, allow_empty=False)
        for field in NOT_NULL_ON_CREATE:
            if field in body and body[field] is None:
                # Upstream's schema refuses these; taking null for "absent" hid client bugs.
                raise InvalidInput(
                    f"Invalid {field}: null is not accepted; omit the field instead."
                )
        environment = principal(request).environment
        result = lifecycle.token_create(
            environment=environment,
            actor=api_actor(request),
            timeout=body.get("timeout"),
            idempotency_key=body.get("idempotencyKey"),
            idempotency_key_ttl=body.get("idempotencyKeyTTL"),
            tags=body.get("tags"),
            approvers=body.get("approvers"),
            title=body.get("title"),
            description=body.get("description"),
            context=body.get("context"),
            decision=body.get("decision"),
            required_approvals=body.get("requiredApprovals"),
            requested_by=body.get("requestedBy"),
            remind_after=body.get("remindAfter"),
            escalate_after=body.get("escalateAfter"),
            escalate_to=body.get("escalateTo"),
            slack_channel=body.get("slackChannel"),
            decision_valid_for=body.get("decisionValidFor"),
            on_timeout=body.get("onTimeout"),
            proposal=body.get("proposal"),
            proposal_schema=body.get("proposalSchema"),
            proposal_editable=body.get("proposalEditable"),
        )
        token = result.token
        jwt = issue_public_access_token(
            environment=environment, friendly_id=token.friendly_id, now=int(time.time())
        )
        return Response(
            {
                "id": token.friendly_id,
                "isCached": result.is_cached,
                "url": links.callback_url(token, base=base_url(request)),
            },
            headers={
                "x-trigger-jwt": jwt,
                "x-trigger-jwt-claims": json.dumps(public_claims(environment)),
            },
        )

    @extend_schema(
        operation_id="listWaitpointTokens",
        summary="List tokens",
        description="Newest first, keyset-paginated; a bad query is a 400 `Query Error`.",
        tags=[TOKENS_TAG],
        parameters=[*LIST_PARAMETERS, *RATE_LIMIT_HEADERS],
        responses={200: TokenListSerializer, **errors(400, *COMMON_ERRORS)},
    )
    def list(self, request: Request) -> Response:
        now = timezone.now()
        params = {key: request.query_params[key] for key in request.query_params}  # last wins
        page, issues = parse_page_request(params)
        data = {FILTER_PARAMS[k]: v for k, v in params.items() if k in FILTER_PARAMS}
        environment = principal(request).environment
        filterset = ApiTokenFilterSet(data, queryset=Token.objects.none())
        if not filterset.is_valid():
            reverse_names = {v: k for k, v in FILTER_PARAMS.items()}
            for name, messages in filterset.errors.items():
                issues += [
                    {"path": [reverse_names.get(name, name)], "message": m} for m in messages
                ]
        if issues or page is None:
            raise TokenError("Query Error", details=issues)
        wanted = filterset.token_filter(now=now, statuses_for=v1_filter_statuses())
        rows, pagination = paginate_with(
            wanted.apply_parts(selectors.token_list(environment=environment)),
            page,
            lambda page_rows: token_rows(page_rows, environment),  # no model instances
        )
        output = TokenOutputSerializer(now=now, base=base_url(request), detail=False)
        return Response(
            {"data": [output.to_representation(t) for t in rows], "pagination": pagination}
        )

    @extend_schema(
        operation_id="retrieveWaitpointToken",
        summary="Retrieve a token",
        tags=[TOKENS_TAG],
        parameters=[token_id_parameter("id"), *RATE_LIMIT_HEADERS],
        responses={200: WaitpointTokenDetailSerializer, **errors(404, *COMMON_ERRORS)},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        token = selectors.token_get_for_environment(
            environment=principal(request).environment, token_id=pk
        )
        output = TokenOutputSerializer(now=timezone.now(), base=base_url(request), detail=True)
        return Response(output.to_representation(token))

    @extend_schema(
        operation_id="cancelWaitpointToken",
        summary="Cancel a waiting token",
        description=(
            "The token then reads as `status: TIMED_OUT` with `statusDetail: CANCELLED`. "
            "Cancelling a resolved token changes nothing (`applied: false`)."
        ),
        tags=[TOKENS_TAG],
        request=CancelTokenRequestSerializer,
        parameters=[token_id_parameter("id"), *RATE_LIMIT_HEADERS],
        responses={
            200: TransitionResponseSerializer,
            **errors(400, 404, 411, 413, *COMMON_ERRORS),
        },
        extensions={EXTENSION: True},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        token = selectors.token_get_for_environment(
            environment=principal(request).environment, token_id=pk
        )
        body = read_json_object(request, limit=CREATE_BODY_LIMIT)
        reason = body.get("reason")  # null means absent; any other non-string is a 400
        result = lifecycle.token_cancel(
            token=token, actor=api_actor(request), reason="" if reason is None else reason
        )
        return transition_response(result)

    @extend_schema(
        operation_id="extendWaitpointToken",
        summary="Move a waiting token's deadline",
        description=(
            "Our extension. Only while the token is `WAITING` and its old deadline has not "
            "passed (database clock); otherwise 422. Audited."
        ),
        tags=[TOKENS_TAG],
        request=ExtendTokenRequestSerializer,
        parameters=[token_id_parameter("id"), *RATE_LIMIT_HEADERS],
        responses={
            200: WaitpointTokenDetailSerializer,
            **errors(400, 404, 411, 413, 422, *COMMON_ERRORS),
        },
        extensions={EXTENSION: True},
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str) -> Response:
        """Our extension: move a waiting token's deadline (``{"timeout": "1h"}``)."""
        token = selectors.token_get_for_environment(
            environment=principal(request).environment, token_id=pk
        )
        body = read_json_object(request, limit=CREATE_BODY_LIMIT)
        token = lifecycle.token_extend(
            token=token, actor=api_actor(request), timeout=body.get("timeout")
        )
        output = TokenOutputSerializer(now=timezone.now(), base=base_url(request), detail=True)
        return Response(output.to_representation(token))

    @extend_schema(
        operation_id="exportWaitpointTokenAudit",
        summary="Export a token's audit trail (JSON Lines)",
        description=(
            "Our extension. Every event of the token's audit trail in chain order, one JSON "
            "object per line, each with its `digest`: a hash chain over the event's content and "
            "the previous digest, so a changed, removed or reordered event shows "
            "(`python manage.py verify_audit`, docs/audit.md). Secret key only."
        ),
        tags=[TOKENS_TAG],
        parameters=[token_id_parameter("id"), *RATE_LIMIT_HEADERS],
        responses={
            (200, chain.JSONL_MEDIA_TYPE): OpenApiResponse(
                response=AuditEventSerializer,
                description="JSON Lines: one audit event (this schema) per line.",
            ),
            **errors(404, *COMMON_ERRORS),
        },
        extensions={EXTENSION: True},
    )
    @action(detail=True, methods=["get"], content_negotiation_class=JsonErrors)
    def audit(self, request: Request, pk: str) -> HttpResponse:
        token = selectors.token_get_for_environment(
            environment=principal(request).environment, token_id=pk
        )
        lines = chain.jsonl(selectors.audit_events_for_token(token=token))
        return HttpResponse("".join(lines), content_type=f"{chain.JSONL_MEDIA_TYPE}; charset=utf-8")


def transition_response(result: lifecycle.TransitionResult) -> Response:
    return Response(transition_body(result.token, applied=result.applied, now=timezone.now()))


class CorsMixin:
    """Upstream's CORS on complete: reflect the Origin; preflights need no credentials."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method == "OPTIONS":
            return
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = Response({})
        response["Access-Control-Allow-Methods"] = "GET,HEAD,PUT,PATCH,POST,DELETE"
        requested = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if requested:
            response["Access-Control-Allow-Headers"] = requested
            response["Vary"] = "Access-Control-Request-Headers"
        response["Access-Control-Max-Age"] = "300"
        return response

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any):
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        origin = request.META.get("HTTP_ORIGIN")
        if origin:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Credentials"] = "true"
            vary = response.get("Vary")
            response["Vary"] = f"{vary}, Origin" if vary else "Origin"
        if request.method != "OPTIONS":
            response["Access-Control-Expose-Headers"] = "x-trigger-jwt,x-trigger-jwt-claims"
        return response


# CorsMixin.options answers preflights with DRF's Response, narrower than View.options' type.
class TokenCompleteView(CorsMixin, APIView):  # type: ignore[misc]
    """``POST …/{id}/complete`` with a secret key or this token's public access token."""

    allow_public_access_token = True

    @extend_schema(
        operation_id="completeWaitpointToken",
        summary="Complete a token",
        description=(
            "The first completion wins; completing a resolved token answers 200 and changes "
            "nothing (`applied: false`). CORS: the request's `Origin` is reflected."
        ),
        tags=[TOKENS_TAG],
        request=CompleteTokenRequestSerializer,
        parameters=[token_id_parameter("token_id"), *RATE_LIMIT_HEADERS],
        responses={
            200: TransitionResponseSerializer,
            **errors(400, 403, 404, 411, 413, *COMMON_ERRORS),
        },
    )
    def post(self, request: Request, token_id: str) -> Response:
        caller = principal(request)
        check_write_scope(caller, token_id)
        token = selectors.token_get_for_environment(
            environment=caller.environment, token_id=token_id
        )
        body = read_json_object(request, limit=COMPLETE_BODY_LIMIT, allow_empty=False)
        # `data` as the SDK sends it; `output` (the docs' curl example) means the same.
        if "data" in body:
            data = body["data"]
        elif "output" in body:
            data = body["output"]
        else:
            data = lifecycle.NO_OUTPUT
        result = lifecycle.token_complete(token=token, actor=api_actor(request), data=data)
        return transition_response(result)


class TokenConsumeView(APIView):
    """``POST …/{id}/consume``: act on an approval once (``tokens.domain.consumption``)."""

    allow_public_access_token = True

    @extend_schema(
        operation_id="consumeWaitpointToken",
        summary="Consume an approval, just before acting on it",
        description=(
            "Our extension. The first consume of an approved token succeeds and records who "
            "consumed it; every later one is a 409 naming that first consumption "
            "(`already_consumed`), one after the approval's `decisionExpiresAt` a 409 "
            "`approval_expired`, one of a token that is not approved a 409 `not_approved`. "
            "The 409s carry `x-should-retry: false`. Of concurrent consumes exactly one wins. "
            "Audited, refusals too."
        ),
        tags=[TOKENS_TAG],
        request=ConsumeTokenRequestSerializer,
        parameters=[token_id_parameter("token_id"), *RATE_LIMIT_HEADERS],
        responses={
            200: ConsumeTokenResponseSerializer,
            **errors(400, 403, 404, 409, 411, 413, *COMMON_ERRORS),
        },
        extensions={EXTENSION: True},
    )
    def post(self, request: Request, token_id: str) -> Response:
        caller = principal(request)
        check_write_scope(caller, token_id)
        token = selectors.token_get_for_environment(
            environment=caller.environment, token_id=token_id
        )
        body = read_json_object(request, limit=CREATE_BODY_LIMIT)
        try:
            result = consumption.token_consume(
                token=token,
                actor=api_actor(request),
                consumer=body.get("consumer"),
                key=body.get("idempotencyKey", ""),
            )
        except consumption.ConsumptionRefused as refused:
            return consume_refused(refused)
        output = TokenOutputSerializer(now=timezone.now(), base=base_url(request), detail=True)
        return Response({**output.to_representation(result.token), "replayed": result.replayed})


def consume_refused(refused: consumption.ConsumptionRefused) -> Response:
    """409 naming why, with what the caller needs to say so (never retried: the state holds)."""
    token = refused.token
    body: dict[str, Any] = {"error": refused.message, "code": refused.code}
    body.update(consumption_fields(token))
    body.pop("decisionValidFor", None)
    body["statusDetail"] = deadline.effective(token, timezone.now()).status
    return Response(body, status=409, headers={"x-should-retry": "false"})


class JwtClaimsView(APIView):
    """``POST /api/v1/auth/jwt/claims``: what ``auth.createPublicToken`` signs locally."""

    @extend_schema(
        operation_id="getJwtClaims",
        summary="Claims for a self-signed public access token",
        description="What the SDK's `auth.createPublicToken` signs locally with the secret key.",
        tags=[AUTH_TAG],
        request=None,
        parameters=RATE_LIMIT_HEADERS,
        responses={200: JwtClaimsSerializer, **errors(*COMMON_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        return Response(public_claims(principal(request).environment))
