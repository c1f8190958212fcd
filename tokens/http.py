"""What every HTTP adapter (API, dashboard, callback page, admin) derives from a request."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from tokens import links
from tokens.audit import Actor
from tokens.models import ApiKey


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the audit trail records it."""
    return request.META.get("REMOTE_ADDR")


def base_url(request: HttpRequest | None) -> str:
    """The origin for absolute links: PUBLIC_BASE_URL if set, else the request's own."""
    if settings.PUBLIC_BASE_URL or request is None:
        return links.public_base_url()
    return request.build_absolute_uri("/").rstrip("/")


def actor_from_request(
    request: HttpRequest,
    channel: str,
    *,
    credential: str,
    api_key: ApiKey | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> Actor:
    """An actor for an HTTP adapter: channel and credential, plus where the request came from."""
    return Actor(
        channel=channel,
        credential=credential,
        api_key=api_key,
        user=user,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
