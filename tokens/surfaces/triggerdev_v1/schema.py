"""The published OpenAPI contract of the v1 API (drf-spectacular): components and helpers.

The views build their JSON by hand (upstream's exact shapes), so the serializers here exist only
to describe it: they are never used to validate or render. Fields and operations that upstream
does not have carry ``x-waitpoints-extension: true``. Served at ``/api/schema/`` (with Swagger UI
at ``/api/docs/``) and checked by ``manage.py spectacular --validate --fail-on-warn`` and by
schemathesis against a live server (``tests/contract``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.generators import EndpointEnumerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from tokens.delivery.webhooks import ALL_EVENTS, MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH
from tokens.domain.services import (
    MAX_APPROVERS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from tokens.persistence.filters import API_STATUSES
from tokens.persistence.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

EXTENSION = "x-waitpoints-extension"
TOKENS_TAG = "Waitpoint tokens"
AUTH_TAG = "Auth"

V1_STATUSES = ("WAITING", "COMPLETED", "TIMED_OUT")  # all the official SDK can parse
OUTPUT_TYPES = ("text/plain", "application/super+json", "application/json")
DURATION = (
    "a duration (`30s`, `10m`, `2h`, `1hr`, `3d`, `4w`, or combinations such as `1h30m`) "
    "of at most 365 days"
)

F = TypeVar("F", bound=serializers.Field)


# ------------------------------------------------------------------------------------------------
# Marking our extensions
# ------------------------------------------------------------------------------------------------


class Ours:
    """Mixin for a serializer field that upstream's contract does not have."""


@functools.cache
def ours(field_class: type[F]) -> type[F]:
    """``ours(serializers.CharField)(…)``: the field, marked as a waitpoints extension."""
    return cast(type[F], type(field_class.__name__, (Ours, field_class), {}))


class OursFieldExtension(OpenApiSerializerFieldExtension):
    target_class = Ours
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, EXTENSION: True}


class AnyJsonField(serializers.JSONField):
    """Any JSON value: object, array, string, number, boolean or null."""


class AnyJsonFieldExtension(OpenApiSerializerFieldExtension):
    target_class = AnyJsonField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return build_basic_type(OpenApiTypes.ANY) or {}


class TrueField(serializers.BooleanField):
    """A boolean that is always ``true`` (upstream's ``z.literal(true)``)."""


class TrueFieldExtension(OpenApiSerializerFieldExtension):
    target_class = TrueField

    def get_name(self) -> str:
        return "AlwaysTrue"  # one component, not an enum per field

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {"type": "boolean", "enum": [True]}


# ------------------------------------------------------------------------------------------------
# Security: a secret key everywhere; a public access token (JWT) only where a view allows it
# ------------------------------------------------------------------------------------------------


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "tokens.surfaces.triggerdev_v1.authentication.ApiKeyAuthentication"
    name = ["secretKey", "publicAccessToken"]

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[Any]]]:
        if getattr(auto_schema.view, "allow_public_access_token", False):
            return [{"secretKey": []}, {"publicAccessToken": []}]
        return [{"secretKey": []}]

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "An environment's secret API key, `Authorization: Bearer tr_dev_…` "
                    "(`tr_stg_…`, `tr_prod_…`). Created in the admin or with "
                    "`manage.py create_api_key`; it scopes every request to its environment."
                ),
            },
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": (
                    "A public access token: the `x-trigger-jwt` header of the create response "
                    "(HS256, 24 hours, scope `write:waitpoints:<id>`), or one the SDK's "
                    "`auth.createPublicToken` signed with the secret key. Accepted only by "
                    "complete."
                ),
            },
        ]


# ------------------------------------------------------------------------------------------------
# Components
# ------------------------------------------------------------------------------------------------


class ErrorIssueSerializer(serializers.Serializer):
    path = serializers.JSONField(
        help_text="Where the problem is: a query parameter name in a list, or a dotted path."
    )
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error on `/api/`: always JSON, never an HTML page."""

    error = serializers.CharField(help_text="What went wrong, for people.")
    details = ErrorIssueSerializer(
        many=True, required=False, help_text="One entry per problem (`Query Error`)."
    )


class OneOrManyField(serializers.Field):
    """A value or an array of values (``tags``, ``approvers``): upstream's ``z.union``."""

    def __init__(self, item: dict[str, Any], *, max_items: int | None = None, **kwargs: Any):
        self.item, self.max_items = item, max_items
        super().__init__(**kwargs)


class OneOrManyFieldExtension(OpenApiSerializerFieldExtension):
    target_class = OneOrManyField
    match_subclasses = True
    priority = 1  # before OursFieldExtension, which could not map this field

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        field = cast(OneOrManyField, self.target)
        many: dict[str, Any] = {"type": "array", "items": field.item}
        if field.max_items is not None:
            many["maxItems"] = field.max_items
        schema = {"oneOf": [field.item, many]}
        return {**schema, EXTENSION: True} if isinstance(field, Ours) else schema


class CreateTokenRequestSerializer(serializers.Serializer):
    timeout = serializers.CharField(
        required=False,
        help_text=(
            f"When the token times out: {DURATION}, or an ISO-8601 date-time with a time zone "
            "in the next 365 days. Default `10m` (setting `WAITPOINTS_DEFAULT_TIMEOUT`). "
            "Anything else is a 400 (upstream silently ignores it)."
        ),
    )
    idempotencyKey = serializers.CharField(  # noqa: N815
        required=False,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        help_text=(
            "The same key within its TTL returns the original token (`isCached: true`), "
            "whatever its state and whatever the other fields say."
        ),
    )
    idempotencyKeyTTL = serializers.CharField(  # noqa: N815
        required=False,
        help_text=f"How long the key deduplicates: {DURATION}. Default `1h`.",
    )
    tags = OneOrManyField(
        {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH},
        required=False,
        help_text=(
            f"At most {MAX_TAGS} distinct tags (more: 422), each 1–{MAX_TAG_LENGTH} characters "
            "and not blank (400). Duplicates are removed, order is kept."
        ),
    )
    approvers = ours(OneOrManyField)(
        {"type": "string", "format": "email"},
        max_items=MAX_APPROVERS,
        required=False,
        help_text=(
            f"E-mail addresses (at most {MAX_APPROVERS}) that get Approve / Reject links, "
            "sent by the worker."
        ),
    )
    title = ours(serializers.CharField)(
        required=False, max_length=200, help_text="What is asked, in one line (the e-mail subject)."
    )
    description = ours(serializers.CharField)(
        required=False,
        max_length=10_000,
        help_text="Markdown, rendered sanitised (no raw HTML, no images, safe links only).",
    )
    context = ours(AnyJsonField)(
        required=False, help_text="A JSON object of at most 64 KiB, shown as a key/value table."
    )
    decision = ours(AnyJsonField)(
        required=False,
        help_text=(
            '`{"approve": label, "reject": label, "fields": JSON Schema subset}`: '
            "custom labels and the input an approver fills in (README)."
        ),
    )
    requiredApprovals = ours(serializers.IntegerField)(  # noqa: N815
        required=False,
        min_value=1,
        max_value=MAX_APPROVERS,
        help_text="How many different people must approve (default 1); one rejection suffices.",
    )
    requestedBy = ours(serializers.CharField)(  # noqa: N815
        required=False, max_length=254, help_text="Who asked: never allowed to approve it."
    )
    remindAfter = ours(serializers.CharField)(  # noqa: N815
        required=False, help_text=f"One reminder to undecided approvers after {DURATION}."
    )
    escalateAfter = ours(serializers.CharField)(  # noqa: N815
        required=False, help_text=f"Ask `escalateTo` too after {DURATION}."
    )
    escalateTo = ours(OneOrManyField)(  # noqa: N815
        {"type": "string", "format": "email"},
        max_items=MAX_APPROVERS,
        required=False,
        help_text="E-mail addresses asked at `escalateAfter`.",
    )


class CreateTokenResponseSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`waitpoint_` followed by the internal id.")
    isCached = serializers.BooleanField(  # noqa: N815
        help_text="True when an active idempotency key returned an existing token."
    )
    url = serializers.URLField(
        help_text="The callback URL: a POST to it completes the token, no API key needed."
    )


STATUS_HELP = (
    "`WAITING`, `COMPLETED` or `TIMED_OUT`. A cancelled token reads as `TIMED_OUT`, so the "
    "official SDK can parse it; `statusDetail` tells them apart."
)


class WaitpointTokenSerializer(serializers.Serializer):
    """A token as the list returns it."""

    id = serializers.CharField()
    url = serializers.URLField(help_text="The callback URL.")
    status = serializers.ChoiceField(choices=V1_STATUSES, help_text=STATUS_HELP)
    statusDetail = ours(serializers.ChoiceField)(  # noqa: N815
        choices=API_STATUSES, help_text="The real status, including `CANCELLED`."
    )
    completedAt = serializers.DateTimeField(required=False)  # noqa: N815
    timeoutAt = serializers.DateTimeField(required=False)  # noqa: N815
    completedAfter = serializers.DateTimeField(  # noqa: N815
        required=False, help_text="Same as `timeoutAt` (upstream)."
    )
    idempotencyKey = serializers.CharField(required=False)  # noqa: N815
    idempotencyKeyExpiresAt = serializers.DateTimeField(required=False)  # noqa: N815
    tags = serializers.ListField(child=serializers.CharField())
    createdAt = serializers.DateTimeField()  # noqa: N815
    cancelledAt = ours(serializers.DateTimeField)(required=False)  # noqa: N815
    title = ours(serializers.CharField)(required=False)
    description = ours(serializers.CharField)(required=False, help_text="Markdown.")
    context = ours(AnyJsonField)(required=False)
    decision = ours(AnyJsonField)(required=False)
    requiredApprovals = ours(serializers.IntegerField)(required=False)  # noqa: N815
    requestedBy = ours(serializers.CharField)(required=False)  # noqa: N815


class WaitpointTokenDetailSerializer(WaitpointTokenSerializer):
    """A token as retrieve returns it: the list's fields plus its output."""

    output = serializers.CharField(
        required=False,
        help_text=(
            'Serialized output: the string itself (`text/plain`), `{"json": <value>}` '
            "(`application/super+json`), or the error object of a timeout or cancellation "
            "(`application/json`). Absent when the token has no output."
        ),
    )
    outputType = serializers.ChoiceField(choices=OUTPUT_TYPES)  # noqa: N815
    outputIsError = serializers.BooleanField(  # noqa: N815
        help_text="True for a timeout (`TRIGGER_WAITPOINT_TIMEOUT`) or a cancellation."
    )


class PaginationSerializer(serializers.Serializer):
    next = serializers.CharField(
        required=False, help_text="Pass as `page[after]` for the next page; absent on the last."
    )
    previous = serializers.CharField(
        required=False, help_text="Pass as `page[before]` for the previous page."
    )


@extend_schema_serializer(many=False)
class TokenListSerializer(serializers.Serializer):
    # A JSON key named like Serializer.data: DRF's metaclass moves declared fields out of the
    # class namespace, so the property is untouched; only the stubs see a clash.
    data = WaitpointTokenSerializer(many=True)  # type: ignore[assignment]
    pagination = PaginationSerializer()


class CompleteTokenRequestSerializer(serializers.Serializer):
    data = AnyJsonField(  # type: ignore[assignment]  # a JSON key, as in TokenListSerializer
        required=False,
        help_text=(
            "The output, any JSON value (the SDK's `completeToken(id, data)`). Absent: the "
            "token completes without output."
        ),
    )
    output = ours(AnyJsonField)(
        required=False,
        help_text="The same as `data` when `data` is absent (upstream's docs' curl example).",
    )


class TransitionResponseSerializer(serializers.Serializer):
    """Upstream's `{"success": true}`, also when the token was already resolved."""

    success = TrueField()
    applied = ours(serializers.BooleanField)(
        help_text="False when the token was already resolved: nothing changed."
    )
    status = ours(serializers.ChoiceField)(
        choices=V1_STATUSES, help_text="The token's status now, as in `WaitpointToken`."
    )
    statusDetail = ours(serializers.ChoiceField)(choices=API_STATUSES)  # noqa: N815


class ExtendTokenRequestSerializer(serializers.Serializer):
    timeout = serializers.CharField(
        help_text=f"The new deadline: {DURATION} from now, or an ISO-8601 date-time."
    )


class CancelTokenRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=MAX_REASON_LENGTH,
        help_text="Shown in the output: `Cancelled: <reason>`.",
    )


class JwtClaimsSerializer(serializers.Serializer):
    sub = serializers.CharField(help_text="The environment's public id.")
    pub = TrueField()


# ------------------------------------------------------------------------------------------------
# Parameters, headers and error responses shared by the operations
# ------------------------------------------------------------------------------------------------


def token_id_parameter(name: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        str,
        OpenApiParameter.PATH,
        description=(
            "The token's id, `waitpoint_<id>` or the bare id. Unknown ids and other "
            "environments' tokens are a 404."
        ),
    )


CALLBACK_PARAMETERS = [
    token_id_parameter("token_id"),
    OpenApiParameter(
        "digest",
        str,
        OpenApiParameter.PATH,
        description="64 hex digits; a wrong one is a 401 (a page that says so on GET).",
    ),
]


PERSONAL_PARAMETERS = [
    token_id_parameter("token_id"),
    OpenApiParameter("recipient_id", int, OpenApiParameter.PATH, description="The recipient."),
    OpenApiParameter(
        "digest",
        str,
        OpenApiParameter.PATH,
        description="64 hex digits, signed for the recipient's address; a wrong one is a 401.",
    ),
]


def _status_list_pattern() -> str:
    one = "|".join(API_STATUSES)
    return rf"^\s*({one})?\s*(,\s*({one})?\s*)*$"


LIST_PARAMETERS = [
    OpenApiParameter(
        "filter[status]",
        {"type": "string", "pattern": _status_list_pattern()},
        OpenApiParameter.QUERY,
        description=(
            "Comma-separated statuses, any of: `WAITING`, `COMPLETED`, `TIMED_OUT` and our "
            "`CANCELLED` (cancelled tokens also match `TIMED_OUT`)."
        ),
    ),
    OpenApiParameter(
        "filter[tags]",
        str,
        OpenApiParameter.QUERY,
        description="Comma-separated tags; a token matches when it has any of them (≤ 100).",
    ),
    OpenApiParameter(
        "filter[idempotencyKey]",
        str,
        OpenApiParameter.QUERY,
        description="Tokens created with this key, including one whose key has expired.",
    ),
    OpenApiParameter(
        "filter[createdAt][period]",
        str,
        OpenApiParameter.QUERY,
        description=(
            "Created within this period before now: `30m`, `24h`, `7d`, `1w`, `1mo`, `1y`, "
            "`2 days`; a bare number is milliseconds."
        ),
    ),
    OpenApiParameter(
        "filter[createdAt][from]",
        str,
        OpenApiParameter.QUERY,
        description="Created at or after: ISO-8601, or epoch milliseconds (what the SDK sends).",
    ),
    OpenApiParameter(
        "filter[createdAt][to]",
        str,
        OpenApiParameter.QUERY,
        description="Created at or before: ISO-8601, or epoch milliseconds.",
    ),
    OpenApiParameter(
        "page[size]",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        OpenApiParameter.QUERY,
        description=f"Tokens per page, newest first (default {DEFAULT_PAGE_SIZE}).",
    ),
    OpenApiParameter(
        "page[after]",
        str,
        OpenApiParameter.QUERY,
        description="`pagination.next` of the previous page.",
    ),
    OpenApiParameter(
        "page[before]",
        str,
        OpenApiParameter.QUERY,
        description="`pagination.previous` of the current page (wins over `page[after]`).",
    ),
]

CREATE_RESPONSE_HEADERS = [
    OpenApiParameter(
        "x-trigger-jwt",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        required=True,
        description=(
            "A public access token (HS256 JWT, 24 hours) that may complete this token only; "
            "the SDK returns it as `publicAccessToken`."
        ),
    ),
    OpenApiParameter(
        "x-trigger-jwt-claims",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        required=True,
        description='JSON `{"sub": "<environment public id>", "pub": true}`.',
    ),
]

RATE_LIMIT_HEADERS = [
    OpenApiParameter(
        name,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[429],
        description=description,
    )
    for name, description in (
        ("Retry-After", "Seconds to wait before trying again."),
        ("x-ratelimit-limit", "Requests allowed in the window."),
        ("x-ratelimit-remaining", "Requests left in the window."),
        ("x-ratelimit-reset", "When the window resets, in Unix milliseconds (what the SDK reads)."),
    )
]

ERROR_DESCRIPTIONS = {
    400: "Invalid input: the message says what is accepted (`Invalid JSON`, `Query Error`, …).",
    401: (
        "Missing or wrong credential: `Invalid or Missing API key`, `Invalid API key`, "
        "`Invalid Public Access Token`, `Public Access Token is invalid`."
    ),
    403: "A public access token without the scope for this token: `Unauthorized`.",
    404: "`Waitpoint not found`: unknown id, or a token of another environment.",
    405: "`Method not allowed`.",
    411: "`Content-Length header is required`: a body was sent without one (chunked).",
    413: "`Request body too large`.",
    422: (
        "More than 10 tags (`Waitpoints can only have 10 tags, you're trying to set 11.`), or, on "
        "extend, a token no longer waiting (resolved, or its deadline passed): nothing moved."
    ),
    429: "Too many requests from this key or address: wait `Retry-After` seconds.",
    503: "The database is unavailable: try again shortly.",
}

# Every authenticated operation can answer these.
COMMON_ERRORS = (401, 429, 503)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses, always ``{"error": …}``, for the given status codes."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in codes
    }


# ------------------------------------------------------------------------------------------------
# Plain Django views (the callback URL) described like DRF views
# ------------------------------------------------------------------------------------------------

V = TypeVar("V", bound=Callable[..., Any])


def described(
    *, bearer: bool = False, public_access_token: bool = False, **operations: Any
) -> Callable[[V], V]:
    """Describe a plain Django view to drf-spectacular, which only sees DRF views.

    ``@described(post=extend_schema(…))`` attaches a stand-in DRF view with the decorated
    methods; ``include_plain_views`` (a preprocessing hook) puts it on the view's URL.
    ``bearer``: the view takes a secret key (and a public access token if
    ``public_access_token``), as the API views do; otherwise it takes no credential.
    """
    from tokens.surfaces.triggerdev_v1.authentication import ApiKeyAuthentication

    def attach(view: V) -> V:
        def method(name: str) -> Callable[..., Any]:
            def handler(self: APIView, request: Request, *args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError("a schema stand-in: the real view is plain Django")

            handler.__name__ = name
            return operations[name](handler)

        attrs: dict[str, Any] = {
            "authentication_classes": [ApiKeyAuthentication] if bearer else [],
            "allow_public_access_token": public_access_token,
            "permission_classes": [],
            **{name: method(name) for name in operations},
        }
        stand_in = type(f"{view.__name__}_contract", (APIView,), attrs)
        view.schema_stand_in = stand_in.as_view()  # type: ignore[attr-defined]
        return view

    return attach


def include_plain_views(
    endpoints: list[tuple[str, str, str, Any]],
) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: add the views marked with ``@described``."""
    from django.urls import URLPattern, URLResolver, get_resolver

    enumerator = EndpointEnumerator()
    extra: list[tuple[str, str, str, Any]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            regex = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, regex)
            elif isinstance(pattern, URLPattern):
                stand_in = getattr(pattern.callback, "schema_stand_in", None)
                if stand_in is not None:
                    path = enumerator.get_path_from_regex(regex)
                    for method in enumerator.get_allowed_methods(stand_in):
                        extra.append((path, regex, method, stand_in))

    walk(get_resolver().url_patterns, "")
    return [*endpoints, *extra]


# ------------------------------------------------------------------------------------------------
# Our extension: webhook endpoints
# ------------------------------------------------------------------------------------------------

WEBHOOKS_TAG = "Webhooks"


class WebhookEndpointSerializer(serializers.Serializer):
    """A webhook endpoint of the caller's environment."""

    id = serializers.CharField(help_text="`webhook_` followed by the internal id.")
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=ALL_EVENTS))
    enabled = serializers.BooleanField()
    description = serializers.CharField(required=False)
    createdAt = serializers.DateTimeField()  # noqa: N815
    updatedAt = serializers.DateTimeField()  # noqa: N815
    secret = serializers.CharField(
        required=False,
        help_text=(
            "The signing secret (Standard Webhooks, `whsec_…`): only in the answer of create "
            "and rotate-secret, never again."
        ),
    )


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=MAX_URL_LENGTH,
        help_text="An http(s) URL; loopback, link-local and private addresses are refused.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_EVENTS),
        min_length=1,
        help_text="The events to send; all of them when absent on create.",
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_LENGTH, allow_blank=True, required=False
    )
    enabled = serializers.BooleanField(required=False, help_text="Default true.")


class WebhookEndpointCreateSerializer(WebhookEndpointWriteSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_EVENTS), min_length=1, required=False
    )


class WebhookEndpointUpdateSerializer(WebhookEndpointWriteSerializer):
    url = serializers.URLField(max_length=MAX_URL_LENGTH, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_EVENTS), min_length=1, required=False
    )


@extend_schema_serializer(many=False)
class WebhookEndpointListSerializer(serializers.Serializer):
    data = WebhookEndpointSerializer(many=True)  # type: ignore[assignment]  # a JSON key


class WebhookEndpointDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    deleted = TrueField()


def webhook_id_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "id",
        str,
        OpenApiParameter.PATH,
        description="`webhook_<id>`; another environment's endpoint is a 404.",
    )


WAIT_TIMEOUT_PARAMETER = OpenApiParameter(
    "timeout",
    str,
    OpenApiParameter.QUERY,
    description=(
        "How long to wait: a duration such as `30s` or `1m`, or a number of seconds; at most "
        "60 seconds (setting `WAITPOINTS_WAIT_MAX_SECONDS`)."
    ),
)
