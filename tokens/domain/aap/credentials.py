"""Provisioner tokens and instance credentials: 256 random bits behind a prefix that says which
is which (``aapp_`` / ``aapi_``), shown once, kept as a keyed digest (``keys.key_digest``), so a
database dump alone reveals none. Revoking a provisioner token leaves its instances working;
deleting an instance revokes its credential."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tokens.domain import keys
from tokens.domain.aap.errors import AapError
from tokens.models import AapInstance, AapProvisioner, Environment
from tokens.persistence import aap_paths

PROVISIONER_PREFIX = "aapp_"
CREDENTIAL_PREFIX = "aapi_"
VISIBLE = 12


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def provisioner_create(
    *, environment: Environment, name: str = "", now: datetime | None = None
) -> tuple[AapProvisioner, str]:
    """A new provisioner token for this environment: the row and the token (shown once)."""
    token = new_secret(PROVISIONER_PREFIX)
    provisioner = AapProvisioner.objects.create(
        environment=environment,
        name=name[:100],
        prefix=token[:VISIBLE],
        digest=keys.key_digest(token),
        created_at=now or timezone.now(),
    )
    return provisioner, token


@transaction.atomic
def provisioner_revoke(*, provisioner: AapProvisioner, now: datetime | None = None) -> bool:
    """Active → revoked (it can manage nothing any more); False if it already was."""
    return bool(
        AapProvisioner.objects.filter(pk=provisioner.pk, revoked_at__isnull=True).update(
            revoked_at=now or timezone.now()
        )
    )


@dataclass(frozen=True)
class Caller:
    """Who an ``Authorization`` header proves: exactly one of the two."""

    provisioner: AapProvisioner | None = None
    instance: AapInstance | None = None


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AapError(
            "Send the credential as Authorization: Bearer <credential>.",
            status=401,
            code="missing_credential",
        )
    return value.strip()


def authenticate(header: str, *, now: datetime | None = None) -> Caller:
    """The provisioner or instance the header names; 401 for a missing, unknown or revoked one."""
    secret = _bearer(header)
    digest = keys.key_digest(secret)
    moment = now or timezone.now()
    if secret.startswith(PROVISIONER_PREFIX):
        provisioner = (
            AapProvisioner.objects.select_related("environment__project")
            .filter(digest=digest, revoked_at__isnull=True)
            .first()
        )
        if provisioner is not None:
            AapProvisioner.objects.filter(pk=provisioner.pk).update(last_used_at=moment)
            return Caller(provisioner=provisioner)
    elif secret.startswith(CREDENTIAL_PREFIX):
        instance = aap_paths.instance_by_credential(digest)
        if instance is not None:
            return Caller(instance=instance)
    raise AapError(
        "The credential is invalid, expired or revoked.", status=401, code="invalid_credential"
    )


def as_provisioner(caller: Caller) -> AapProvisioner:
    if caller.provisioner is None:
        raise AapError(
            "An instance credential cannot manage instances: use a provisioner token.",
            status=403,
            code="provisioner_token_required",
        )
    return caller.provisioner


def as_instance(caller: Caller) -> AapInstance:
    if caller.instance is None:
        raise AapError(
            "A provisioner token cannot make approval requests: use an instance credential.",
            status=403,
            code="instance_credential_required",
        )
    return caller.instance
