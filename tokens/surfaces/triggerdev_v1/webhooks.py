"""``/api/v1/webhooks``: webhook endpoints of the caller's environment (secret key only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.models import Environment, WebhookEndpoint, iso
from tokens.persistence import selectors
from tokens.surfaces.common.body import read_json_object
from tokens.surfaces.common.openapi import (
    COMMON_ERRORS,
    EXTENSION,
    RATE_LIMIT_HEADERS,
    errors,
)
from tokens.surfaces.triggerdev_v1.authentication import ApiPrincipal
from tokens.surfaces.triggerdev_v1.schema import (
    WEBHOOKS_TAG,
    WebhookEndpointCreateSerializer,
    WebhookEndpointDeletedSerializer,
    WebhookEndpointListSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    webhook_id_parameter,
)

BODY_LIMIT = 16 * 1024
FIELDS = {"url": "url", "events": "events", "description": "description", "enabled": "enabled"}


class WebhookEndpointOutputSerializer:
    """camelCase, optional fields omitted; the secret only when it was just made."""

    @staticmethod
    def to_representation(
        endpoint: WebhookEndpoint, *, secret: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": endpoint.friendly_id,
            "url": endpoint.url,
            "events": list(endpoint.events),
            "enabled": endpoint.enabled,
        }
        if endpoint.description:
            data["description"] = endpoint.description
        data["createdAt"] = iso(endpoint.created_at)
        data["updatedAt"] = iso(endpoint.updated_at)
        if secret is not None:
            data["secret"] = secret
        return data


def _render(endpoint: WebhookEndpoint, *, secret: str | None = None) -> Response:
    return Response(WebhookEndpointOutputSerializer.to_representation(endpoint, secret=secret))


def _environment(request: Request) -> Environment:
    """The caller's environment (authentication put an ApiPrincipal in ``request.user``)."""
    principal = request.user
    assert isinstance(principal, ApiPrincipal)
    return principal.environment


def _operation(summary: str, *, detail: bool = True, **kwargs: Any) -> Any:
    parameters = [webhook_id_parameter()] if detail else []
    return extend_schema(
        summary=summary,
        tags=[WEBHOOKS_TAG],
        parameters=[*parameters, *RATE_LIMIT_HEADERS],
        extensions={EXTENSION: True},
        **kwargs,
    )


@extend_schema_view(
    create=_operation(
        "Create a webhook endpoint",
        detail=False,
        operation_id="createWebhookEndpoint",
        request=WebhookEndpointCreateSerializer,
        responses={
            200: WebhookEndpointSerializer,
            **errors(400, 411, 413, *COMMON_ERRORS),
        },
    ),
    list=_operation(
        "List webhook endpoints",
        detail=False,
        operation_id="listWebhookEndpoints",
        responses={200: WebhookEndpointListSerializer, **errors(*COMMON_ERRORS)},
    ),
    retrieve=_operation(
        "Retrieve a webhook endpoint",
        operation_id="retrieveWebhookEndpoint",
        responses={200: WebhookEndpointSerializer, **errors(404, *COMMON_ERRORS)},
    ),
    partial_update=_operation(
        "Change a webhook endpoint",
        operation_id="updateWebhookEndpoint",
        request=WebhookEndpointUpdateSerializer,
        responses={
            200: WebhookEndpointSerializer,
            **errors(400, 404, 411, 413, *COMMON_ERRORS),
        },
    ),
    destroy=_operation(
        "Delete a webhook endpoint",
        operation_id="deleteWebhookEndpoint",
        responses={200: WebhookEndpointDeletedSerializer, **errors(404, *COMMON_ERRORS)},
    ),
    rotate_secret=_operation(
        "Rotate an endpoint's signing secret",
        operation_id="rotateWebhookEndpointSecret",
        request=None,
        responses={200: WebhookEndpointSerializer, **errors(404, *COMMON_ERRORS)},
    ),
)
class WebhookEndpointViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    def _endpoint(self, request: Request, pk: str) -> WebhookEndpoint:
        return selectors.webhook_endpoint_get_for_environment(
            environment=_environment(request), endpoint_id=pk
        )

    def create(self, request: Request) -> Response:
        body = read_json_object(request, limit=BODY_LIMIT)
        given = {name: body[key] for key, name in FIELDS.items() if key in body}
        if "url" not in given:
            given["url"] = None  # the service says what is expected
        endpoint, secret = webhook_endpoints.webhook_endpoint_create(
            environment=_environment(request), **given
        )
        return _render(endpoint, secret=secret)

    def list(self, request: Request) -> Response:
        endpoints = selectors.webhook_endpoint_list(environment=_environment(request))
        output = WebhookEndpointOutputSerializer.to_representation
        return Response({"data": [output(endpoint) for endpoint in endpoints]})

    def retrieve(self, request: Request, pk: str) -> Response:
        return _render(self._endpoint(request, pk))

    def partial_update(self, request: Request, pk: str) -> Response:
        endpoint = self._endpoint(request, pk)
        body = read_json_object(request, limit=BODY_LIMIT)
        given = {name: body[key] for key, name in FIELDS.items() if key in body}
        return _render(webhook_endpoints.webhook_endpoint_update(endpoint=endpoint, **given))

    def destroy(self, request: Request, pk: str) -> Response:
        endpoint = self._endpoint(request, pk)
        friendly_id = endpoint.friendly_id
        webhook_endpoints.webhook_endpoint_delete(endpoint=endpoint)
        return Response({"id": friendly_id, "deleted": True})

    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        endpoint = self._endpoint(request, pk)
        secret = webhook_endpoints.webhook_endpoint_rotate_secret(endpoint=endpoint)
        return _render(endpoint, secret=secret)
