"""Scoped reads. Every query starts from the caller's environment (or the user's projects)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from tokens import keys
from tokens.exceptions import NotFound
from tokens.models import ApiKey, Environment, Token


def status_q(status: str, *, now: datetime, cancelled_as_timed_out: bool) -> Q:
    """The rows a reader sees in ``status``; overdue WAITING rows already count as TIMED_OUT.

    The v1 API shows cancelled tokens as TIMED_OUT (the SDK knows no other terminal status), so
    its TIMED_OUT filter includes them; human surfaces show CANCELLED on its own.
    """
    overdue = Q(status=Token.Status.WAITING, timeout_at__lte=now)
    if status == Token.Status.WAITING:
        return Q(status=Token.Status.WAITING) & ~Q(timeout_at__lte=now)
    if status == Token.Status.TIMED_OUT:
        q = Q(status=Token.Status.TIMED_OUT) | overdue
        return q | Q(status=Token.Status.CANCELLED) if cancelled_as_timed_out else q
    return Q(status=status)


def api_key_get_by_secret(*, secret: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("environment__project")
        .filter(digest=keys.key_digest(secret), revoked_at__isnull=True)
        .first()
    )


def api_keys_active_for_environment(*, environment: Environment) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(environment=environment, revoked_at__isnull=True)


def environment_get_by_public_id(*, public_id: str) -> Environment | None:
    return Environment.objects.filter(public_id=public_id).first()


def token_list(*, environment: Environment) -> QuerySet[Token]:
    return Token.objects.filter(environment=environment)


def token_get_for_environment(*, environment: Environment, token_id: str) -> Token:
    """The token with this id (either form) in this environment; NotFound otherwise."""
    internal = keys.parse_token_id(token_id)
    token = Token.objects.filter(environment=environment, pk=internal).first() if internal else None
    if token is None:
        raise NotFound()
    return token


def token_get_by_id(*, token_id: str) -> Token:
    """Unscoped lookup for the callback URL, whose hash is the credential."""
    internal = keys.parse_token_id(token_id)
    token = (
        Token.objects.select_related("environment__project").filter(pk=internal).first()
        if internal
        else None
    )
    if token is None:
        raise NotFound()
    return token
