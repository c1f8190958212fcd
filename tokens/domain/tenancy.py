"""Tenancy: projects and their environments, API keys, and what each membership role may do."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from tokens.domain import keys
from tokens.domain.exceptions import InvalidInput
from tokens.models import ApiKey, Environment, Membership, Project


@transaction.atomic
def environment_get_or_create(
    *, project_slug: str, slug: str, project_name: str = ""
) -> Environment:
    """Find or create a project and one of its environments (dev, staging, prod)."""
    if slug not in Environment.Slug.values:
        raise InvalidInput(f"Unknown environment {slug!r}: use dev, staging or prod.")
    project, _ = Project.objects.get_or_create(
        slug=project_slug, defaults={"name": project_name or project_slug}
    )
    environment, _ = Environment.objects.get_or_create(
        project=project,
        slug=slug,
        defaults={
            "public_id": "env_" + keys.generate_token_id(),
            "callback_secret": keys.random_secret(),
            "signing_secret": keys.random_secret(),
        },
    )
    return environment


@transaction.atomic
def api_key_create(*, environment: Environment, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and stored only as a digest plus ciphertext."""
    secret = keys.generate_secret_key(environment.slug)
    api_key = ApiKey.objects.create(
        environment=environment,
        name=name,
        prefix=secret[: keys.VISIBLE_PREFIX_LENGTH],
        digest=keys.key_digest(secret),
        encrypted_key=keys.encrypt(secret),
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey, now: datetime | None = None) -> bool:
    """Active key → revoked. Returns False if it already was."""
    now = now or timezone.now()
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    api_key.refresh_from_db(fields=["revoked_at"])
    return updated == 1


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Record use, at most once a minute per key so busy keys do not write on every request."""
    now = now or timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < timedelta(minutes=1):
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


# What each action on a token (or an environment) needs; a role allows what a lower one does.
ROLE_RANK: dict[str, int] = {
    Membership.Role.VIEWER: 1,
    Membership.Role.APPROVER: 2,
    Membership.Role.ADMIN: 3,
}
ACTION_ROLES = {
    "view": Membership.Role.VIEWER,
    "approve": Membership.Role.APPROVER,
    "reject": Membership.Role.APPROVER,
    "complete_json": Membership.Role.ADMIN,
    "force_timeout": Membership.Role.ADMIN,
    "cancel": Membership.Role.ADMIN,
    "extend": Membership.Role.ADMIN,
    "revoke_link": Membership.Role.ADMIN,
    "manage_webhooks": Membership.Role.ADMIN,
}


def role_allows(role: str | None, action: str) -> bool:
    """Whether a membership role may perform an action (unknown actions: never)."""
    needed = ACTION_ROLES.get(action)
    if role is None or needed is None:
        return False
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[needed]


def roles_allowing(action: str) -> list[str]:
    """The roles that may perform ``action`` (for queries: "tokens I may decide")."""
    return [role for role in ROLE_RANK if role_allows(role, action)]
