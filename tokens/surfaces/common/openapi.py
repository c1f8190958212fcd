"""OpenAPI building blocks shared by every documented surface (drf-spectacular).

The serializers here describe JSON that the views build by hand; they never validate or
render. ``described`` lets plain Django views (the callback URL, the long-poll wait) appear in
the schema beside DRF views.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.generators import EndpointEnumerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from tokens.persistence.filters import API_STATUSES

EXTENSION = "x-waitpoints-extension"
TOKENS_TAG = "Waitpoint tokens"
V1_STATUSES = ("WAITING", "COMPLETED", "TIMED_OUT")  # all the official SDK can parse

F = TypeVar("F", bound=serializers.Field)


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
    # Upstream's 403 for a public access token without the scope; the SDK copies these onto its
    # PermissionDeniedError.
    code = serializers.CharField(
        required=False,
        help_text=(
            "`unauthorized` on a refused scope; on a refused consume, why: `already_consumed`, "
            "`approval_expired` or `not_approved`."
        ),
    )
    param = serializers.CharField(required=False, help_text="`access_token` on a refused scope.")
    type = serializers.CharField(required=False, help_text="`authorization` on a refused scope.")
    # A refused consume (409) names the first consumption, or when the approval expired.
    consumedAt = ours(serializers.DateTimeField)(  # noqa: N815
        required=False, help_text="`already_consumed`: when the approval was consumed."
    )
    consumedBy = ours(serializers.CharField)(  # noqa: N815
        required=False, help_text="`already_consumed`: who consumed it."
    )
    decisionExpiresAt = ours(serializers.DateTimeField)(  # noqa: N815
        required=False, help_text="`approval_expired`: when the approval stopped being valid."
    )
    statusDetail = ours(serializers.ChoiceField)(  # noqa: N815
        choices=API_STATUSES, required=False, help_text="On a refused consume: the token's status."
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
    409: (
        "Consume refused, and retrying cannot help (`x-should-retry: false`): `code` says why, "
        "`already_consumed` (naming the first consumption), `approval_expired` (the approval's "
        "validity window ended) or `not_approved` (still waiting, rejected, timed out, "
        "cancelled, or completed without an approval)."
    ),
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


V = TypeVar("V", bound=Callable[..., Any])


def described(
    *,
    authentication_classes: Sequence[type[BaseAuthentication]] = (),
    public_access_token: bool = False,
    **operations: Any,
) -> Callable[[V], V]:
    """Describe a plain Django view to drf-spectacular, which only sees DRF views.

    ``@described(post=extend_schema(…))`` attaches a stand-in DRF view with the decorated
    methods; ``include_plain_views`` (a preprocessing hook) puts it on the view's URL.
    ``authentication_classes``: the credentials the view takes, as for a DRF view (none: the
    URL is the credential); ``public_access_token``: it also takes a public access token.
    """

    def attach(view: V) -> V:
        def method(name: str) -> Callable[..., Any]:
            def handler(self: APIView, request: Request, *args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError("a schema stand-in: the real view is plain Django")

            handler.__name__ = name
            return operations[name](handler)

        attrs: dict[str, Any] = {
            "authentication_classes": list(authentication_classes),
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
