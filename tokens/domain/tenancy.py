"""Tenancy: projects and their environments, API keys, members and what each role may do."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from tokens.delivery import invitations
from tokens.domain import keys
from tokens.domain.exceptions import InvalidInput
from tokens.models import ApiKey, Environment, Membership, Project
from tokens.persistence import keycache

logger = logging.getLogger(__name__)
MAX_USERNAME_LENGTH = 150  # django.contrib.auth's User.username


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
    api_key.refresh_from_db(fields=["revoked_at", "digest"])
    # Here at once; other processes within WAITPOINTS_API_KEY_CACHE_SECONDS (keycache).
    keycache.forget(api_key.digest)
    return updated == 1


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Record use, at most once a minute per key so busy keys do not write on every request."""
    now = now or timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < timedelta(minutes=1):
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
    keycache.note_used(api_key)


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
    "manage_integrations": Membership.Role.ADMIN,  # Slack (the dashboard's Slack page)
    "manage_deadline_rules": Membership.Role.ADMIN,  # onTimeout defaults (tokens.domain.outcomes)
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


# ------------------------------------------------------------------------------------------------
# Members: project admins invite people by e-mail and set their role
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    """What ``member_invite`` did: the membership, whether the account is new, and whether the
    e-mail went out (``email_error`` says why not; the membership stands either way)."""

    membership: Membership
    created_user: bool
    created_membership: bool
    emailed: bool = False
    email_error: str = ""

    @property
    def needs_password(self) -> bool:
        """Never set a password: the e-mail carries a one-time link to choose one."""
        return not self.membership.user.has_usable_password()


def member_invite(
    *, project: Project, email: str, role: str, invited_by: str = "", send_email: bool = True
) -> Invitation:
    """Add the person with this address to ``project`` with ``role`` (or change their role),
    creating their account if there is none; then e-mail them: a one-time link to choose a
    password when the account has none, otherwise a note that they were added."""
    invitation = _member_add(project=project, email=email, role=role)
    logger.info(
        "membership: %s is %s in %s (added by %s)",
        invitation.membership.user.get_username(),
        role,
        project.slug,
        invited_by or "an operator",
    )
    if not send_email:
        return invitation
    return member_notify(invitation, invited_by=invited_by)


def member_notify(invitation: Invitation, *, invited_by: str = "") -> Invitation:
    """Send (again) the e-mail of an invitation; a failure is reported, never raised."""
    try:
        invitations.send_invitation(
            membership=invitation.membership,
            invited_by=invited_by,
            needs_password=invitation.needs_password,
        )
    except Exception as error:  # noqa: BLE001 - SMTP, DNS, TLS: the membership stands anyway
        logger.warning("membership: the invitation e-mail could not be sent: %s", error)
        return replace(invitation, emailed=False, email_error=f"{type(error).__name__}: {error}")
    return replace(invitation, emailed=True, email_error="")


@transaction.atomic
def _member_add(*, project: Project, email: str, role: str) -> Invitation:
    address = _clean_email(email)
    _check_role(role)
    users = list(User.objects.select_for_update().filter(email__iexact=address)[:2])
    if not users:
        users = list(User.objects.select_for_update().filter(username__iexact=address)[:2])
    if len(users) > 1:
        raise InvalidInput(
            f"Several accounts use {address}; add the right one in the admin (Memberships)."
        )
    created_user = not users
    if created_user:
        user = User.objects.create_user(username=address.lower(), email=address)  # no password
    else:
        user = users[0]
        if not user.is_active:
            raise InvalidInput(
                f"The account {user.get_username()} is deactivated; "
                "reactivate it in the admin first."
            )
    membership = Membership.objects.filter(user=user, project=project).first()
    created_membership = membership is None
    if membership is None:
        membership = Membership.objects.create(user=user, project=project, role=role)
    elif membership.role != role:
        _keep_an_admin(membership, new_role=role)
        membership.role = role
        membership.save(update_fields=["role"])
    return Invitation(
        membership=membership, created_user=created_user, created_membership=created_membership
    )


@transaction.atomic
def member_set_role(*, membership: Membership, role: str) -> Membership:
    """A member's new role; a project always keeps at least one admin."""
    _check_role(role)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role != role:
        _keep_an_admin(locked, new_role=role)
        locked.role = role
        locked.save(update_fields=["role"])
    return locked


@transaction.atomic
def member_remove(*, membership: Membership) -> None:
    """Take someone out of a project (their account stays); never its last admin."""
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    _keep_an_admin(locked, new_role=None)
    locked.delete()


def _keep_an_admin(membership: Membership, *, new_role: str | None) -> None:
    if membership.role != Membership.Role.ADMIN or new_role == Membership.Role.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        project_id=membership.project_id, role=Membership.Role.ADMIN
    )
    if not admins.exclude(pk=membership.pk).exists():
        raise InvalidInput(
            f"{membership.user.get_username()} is the only admin of {membership.project}; "
            "make someone else an admin first."
        )


def _clean_email(email: object) -> str:
    address = email.strip() if isinstance(email, str) else ""
    try:
        validate_email(address)
    except ValidationError:
        raise InvalidInput(f"{address or 'That'!r} is not an e-mail address.") from None
    if len(address) > MAX_USERNAME_LENGTH:
        raise InvalidInput(
            f"E-mail addresses used as usernames are at most {MAX_USERNAME_LENGTH} characters."
        )
    return address


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role {role!r}: use viewer, approver or admin.")
