"""The published OpenAPI contract of the v1 API (drf-spectacular): components and helpers.

The views build their JSON by hand (upstream's exact shapes), so the serializers here exist only
to describe it: they are never used to validate or render. Fields and operations that upstream
does not have carry ``x-waitpoints-extension: true``. Served at ``/api/schema/`` (with Swagger UI
at ``/api/docs/``) and checked by ``manage.py spectacular --validate --fail-on-warn`` and by
schemathesis against a live server (``tests/contract``).
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

from tokens.delivery.webhooks.events import ALL_EVENTS
from tokens.domain.limits import (
    MAX_APPROVERS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_URL_LENGTH,
)
from tokens.domain.limits import MAX_WEBHOOK_DESCRIPTION_LENGTH as MAX_DESCRIPTION_LENGTH
from tokens.persistence.filters import API_STATUSES
from tokens.persistence.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tokens.surfaces.common.openapi import (
    EXTENSION,
    V1_STATUSES,
    AnyJsonField,
    Ours,
    TrueField,
    ours,
)

AUTH_TAG = "Auth"
OUTPUT_TYPES = ("text/plain", "application/super+json", "application/json")
DURATION = (
    "a duration (`30s`, `10m`, `2h`, `1hr`, `3d`, `4w`, or combinations such as `1h30m`) "
    "of at most 365 days"
)


# ------------------------------------------------------------------------------------------------
# Marking our extensions
# ------------------------------------------------------------------------------------------------


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
                    "complete and consume."
                ),
            },
        ]


# ------------------------------------------------------------------------------------------------
# Components
# ------------------------------------------------------------------------------------------------


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


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "number", "description": "Epoch milliseconds, as upstream."},
        ]
    }
)
class TimeoutField(serializers.Field):
    """A duration or date-time string, or a number of epoch milliseconds."""


_EMAILS = {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["timeout", "reject", "approve"]},
            {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["timeout", "reject", "approve"]}
                },
                "required": ["action"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["escalate"]},
                    "escalateTo": {**_EMAILS, "maxItems": MAX_APPROVERS},
                    "timeout": {
                        "type": "string",
                        "description": f"The second deadline, after the first: {DURATION}.",
                    },
                    "then": {
                        "type": "string",
                        "enum": ["timeout", "reject", "approve"],
                        "description": "What the second deadline brings (default `timeout`).",
                    },
                    "rule": {
                        "type": "string",
                        "description": (
                            "Only on the token: the environment's deadline rule that chose it "
                            "(its tag, `*` for every request)."
                        ),
                        "readOnly": True,
                    },
                },
                "required": ["action", "escalateTo", "timeout"],
                "additionalProperties": False,
            },
        ],
        EXTENSION: True,  # the annotation replaces what ours() would add
    }
)
class OnTimeoutField(serializers.Field):
    """What the deadline brings when nobody decides in time (tokens.domain.outcomes)."""


class CreateTokenRequestSerializer(serializers.Serializer):
    timeout = TimeoutField(
        required=False,
        help_text=(
            f"When the token times out: {DURATION}, an ISO-8601 date-time with a time zone, or "
            "a number of epoch milliseconds (as upstream), in the next 365 days. Default `10m` "
            "(setting `WAITPOINTS_DEFAULT_TIMEOUT`). Anything else, a moment in the past and "
            "`null` are a 400 (upstream silently ignores some, and times out at once on others)."
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
            f"Each 1–{MAX_TAG_LENGTH} characters and not blank (400, checked first), at most "
            f"{MAX_TAGS} as submitted (more: 422, as upstream). Stored exactly as sent, commas "
            "and spaces included; duplicates are removed, order is kept."
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
    proposal = ours(AnyJsonField)(
        required=False,
        help_text=(
            "A JSON object (at most 32 KiB) the approvers may edit before approving, e.g. the "
            "arguments of the call that waits. The approval's output carries the final "
            '`proposal` and `"edited": true|false` (docs/edits.md).'
        ),
    )
    proposalSchema = ours(AnyJsonField)(  # noqa: N815
        required=False,
        help_text=(
            "A JSON Schema (an object schema, at most 16 KiB) that the proposal and every edit "
            "of it must satisfy."
        ),
    )
    proposalEditable = ours(AnyJsonField)(  # noqa: N815
        required=False,
        help_text="`true` (default), `false`, or a list of the top-level fields that may change.",
    )
    slackChannel = ours(serializers.CharField)(  # noqa: N815
        required=False,
        max_length=81,
        help_text="Post the request to this Slack channel (an id such as `C0123ABCD`, or a "
        "public channel's name) instead of the environment's routing rules; needs `approvers` "
        "and a Slack connection (docs/slack.md).",
    )
    onTimeout = OnTimeoutField(  # noqa: N815
        required=False,
        help_text=(
            "What happens when nobody decides before `timeout`: `timeout` (the default, as "
            'upstream), `reject` or `approve` (completed with `{"status": "rejected"|'
            '"approved", "by": "deadline rule", "decidedBy": "deadline", …}`, decided by the '
            'rule, never a person), or `{"action": "escalate", "escalateTo": [...], '
            '"timeout": "2h", "then": "reject"}`: ask those people at the deadline and give '
            "them a second one (`timeoutAt` is then the second deadline, `escalatesAt` the "
            "first). Absent: the environment's deadline rule for the request's tags, if any. "
            "Needs a timeout."
        ),
    )
    decisionValidFor = ours(serializers.CharField)(  # noqa: N815
        required=False,
        help_text=(
            f"How long an approval may be acted on, from the moment it is recorded: {DURATION}. "
            "The token then shows `decisionExpiresAt`; `consume` refuses after it "
            "(`approval_expired`). Absent: an approval does not expire (it is still used once)."
        ),
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
    onTimeout = OnTimeoutField(  # noqa: N815
        required=False,
        help_text="What the deadline brings, when not `timeout` (the request's or its rule's).",
    )
    escalatesAt = ours(serializers.DateTimeField)(  # noqa: N815
        required=False,
        help_text="`onTimeout` escalate: the first deadline, when `escalateTo` are asked.",
    )
    decisionValidFor = ours(serializers.CharField)(  # noqa: N815
        required=False, help_text="The validity window asked on create, e.g. `15m`."
    )
    decisionExpiresAt = ours(serializers.DateTimeField)(  # noqa: N815
        required=False,
        help_text="When the approval stops being valid (set when it is approved).",
    )
    consumedAt = ours(serializers.DateTimeField)(  # noqa: N815
        required=False, help_text="When the approval was consumed (used once)."
    )
    consumedBy = ours(serializers.CharField)(  # noqa: N815
        required=False,
        help_text="Who consumed it: the `consumer` it named, or the credential's label.",
    )
    proposal = ours(AnyJsonField)(required=False, help_text="Its latest version.")
    proposalVersion = ours(serializers.IntegerField)(required=False)  # noqa: N815
    proposalEditable = ours(AnyJsonField)(required=False)  # noqa: N815
    proposalSchema = ours(AnyJsonField)(required=False)  # noqa: N815


class WaitpointTokenDetailSerializer(WaitpointTokenSerializer):
    """A token as retrieve returns it: the list's fields plus its output, and (as upstream)
    always its type and idempotency key."""

    type = serializers.ChoiceField(choices=["MANUAL"], help_text="Always `MANUAL` (upstream).")
    idempotencyKey = serializers.CharField(  # noqa: N815
        help_text=(
            "The caller's key while it deduplicates; otherwise (none given, or it moved on to a "
            "newer token) a random 24-character one, as upstream."
        )
    )
    userProvidedIdempotencyKey = serializers.BooleanField(  # noqa: N815
        help_text="Whether the caller gave an idempotency key."
    )
    inactiveIdempotencyKey = serializers.CharField(  # noqa: N815
        required=False,
        help_text="The caller's key, after it expired and a newer token took it over.",
    )

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


class ConsumeTokenRequestSerializer(serializers.Serializer):
    consumer = serializers.CharField(
        required=False,
        max_length=300,
        help_text=(
            "Who acts on the approval (a worker's name, a host, a job id): recorded, shown on "
            "the token and named in the 409 of any later consume. Default: the credential."
        ),
    )
    idempotencyKey = serializers.CharField(  # noqa: N815
        required=False,
        min_length=1,
        max_length=300,
        help_text=(
            "A retry with the same key (after a lost answer) succeeds again with "
            "`replayed: true`; any other later consume is a 409. The Python client sends one."
        ),
    )


class ConsumeTokenResponseSerializer(WaitpointTokenDetailSerializer):
    """The consumed token (as retrieve shows it, with its output: the decision to act on)."""

    replayed = serializers.BooleanField(
        help_text="True when this key consumed it before: nothing changed."
    )


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

# ------------------------------------------------------------------------------------------------
# Plain Django views (the callback URL) described like DRF views
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# The audit export (tokens.domain.chain): one of these per line, JSON Lines
# ------------------------------------------------------------------------------------------------


class AuditEventSerializer(serializers.Serializer):
    """One audit event, as a line of the JSON Lines export. ``digest`` is
    sha256("<previous>|<seq>|<token id without waitpoint_>|<content digest>"), the content
    digest the sha256 of the canonical JSON (keys sorted, no spaces, UTF-8) of the nine
    fields from ``kind`` to ``createdAt``."""

    token = serializers.CharField(help_text="The token's id (`waitpoint_…`).")
    seq = serializers.IntegerField(min_value=1, help_text="The event's place in the chain.")
    id = serializers.IntegerField(help_text="The event's id.")
    kind = serializers.CharField(help_text="What happened (`created`, `completed`, `voted`, …).")
    channel = serializers.CharField(help_text="api, callback, dashboard, admin, slack, system.")
    credential = serializers.CharField(help_text="What proved the right to act; may be empty.")
    actor = serializers.CharField(help_text='`key:<id>`, `user:<id>`, both, or "".')
    ip = serializers.CharField(allow_null=True, help_text="The client's address, or null.")
    userAgent = serializers.CharField()  # noqa: N815
    email = serializers.CharField(help_text="The address a personal link was signed for.")
    detail = serializers.DictField(help_text="What the event records besides (by kind).")
    createdAt = serializers.CharField(help_text="UTC, microseconds, `Z`.")  # noqa: N815
    actorLabel = serializers.CharField(  # noqa: N815
        help_text="Who acted, as the dashboard names them (not covered by the digest)."
    )
    previous = serializers.CharField(help_text='The digest of the event before ("" for #1).')
    digest = serializers.CharField(help_text="This event's digest (64 hex digits).")
