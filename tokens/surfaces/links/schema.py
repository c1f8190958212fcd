"""The OpenAPI parameters of the callback URL and the personal links (their path segments)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter

from tokens.surfaces.common.openapi import token_id_parameter

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
