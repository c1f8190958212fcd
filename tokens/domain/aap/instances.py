"""Provision, read, update and delete AAP instances, within a provisioner token's scope (its
environment). A project admin creates and renames them on the dashboard (``instance_create``,
``instance_rename``) through the same creation (``_create``) and write (``_change``), by the
same name rule (``inputs.clean_name``).

Idempotency: a provisioning or update carries an ``Idempotency-Key``; its record
(``AapOperation``) keeps the parsed body's digest and the original answer, so the same key with
the same body gets that answer again (200; verification is not repeated, the update not
reapplied, a later update never overwritten) and a different body ``409 idempotency_conflict``.
Concurrent submissions by one provisioner are serialised on its row, so one key never verifies
twice in parallel nor commits twice; verification runs inside the transaction that commits the
result, so a failed one (422) leaves nothing behind and may simply be retried.

Deletion takes the instance's row lock, which request creation also takes: it marks the
instance deleted and revokes its credential first, then cancels every pending request (no
``request.resolved`` events: ``delivery.aap`` sees the instance deleted), so no request can be
created after it and none is left pending.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tokens.delivery import aap as aap_delivery
from tokens.delivery import http_client
from tokens.domain import keys, lifecycle
from tokens.domain.aap import credentials, inputs, representation
from tokens.domain.aap.errors import AapError, conflict, not_found
from tokens.domain.actors import Actor
from tokens.domain.exceptions import InvalidInput
from tokens.models import AapInstance, AapOperation, AapProvisioner, AapRequest, Environment, Token

PROVISION = "provision"


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _stored(operation: AapOperation) -> dict[str, Any]:
    text = keys.decrypt(operation.encrypted_response)
    if text is None:
        raise AapError("The original answer cannot be read.", status=500, code="internal")
    value: dict[str, Any] = json.loads(text)
    return value


def _check_url(delivery: inputs.Delivery) -> str:
    """The receiver URL as the spec wants it: https (http loopback only when private targets
    are allowed, for local development), no userinfo or fragment, a public destination."""
    url = delivery.url
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    if not (url.startswith("https://") or (allow_private and url.startswith("http://"))):
        raise AapError(
            "delivery.url must be an https URL.",
            status=400,
            code="invalid_webhook_url",
            param="delivery",
        )
    if "#" in url or "@" in url.split("?", 1)[0]:
        raise AapError(
            "delivery.url must not contain userinfo or a fragment.",
            status=400,
            code="invalid_webhook_url",
            param="delivery",
        )
    try:
        return http_client.clean_target_url(url)
    except InvalidInput as error:
        raise AapError(
            error.message, status=400, code="invalid_webhook_url", param="delivery"
        ) from None


def _verify(delivery: inputs.Delivery, url: str, instance_id: uuid.UUID) -> None:
    """One verification, within the destination's delivery rates (verification traffic counts
    toward them as events do): over one, 429 ``rate_limited`` with nothing sent or changed."""
    try:
        ok = aap_delivery.verify_receiver(
            url=url,
            registration_id=delivery.registration_id,
            secret=delivery.signing_secret,
            instance_id=str(instance_id),
        )
    except aap_delivery.DestinationLimited as limited:
        retry_after = limited.retry_after()
        raise AapError(
            f"Too much traffic to this receiver's destination; retry in {retry_after} s.",
            status=429,
            code="rate_limited",
            param=str(retry_after),  # the Retry-After header, as the surface's rate limits
        ) from None
    if not ok:
        raise AapError(
            "The webhook receiver could not be verified.",
            status=422,
            code="webhook_verification_failed",
            param="delivery",
        )


def _lock_provisioner(provisioner: AapProvisioner) -> None:
    if (
        not AapProvisioner.objects.select_for_update()
        .filter(pk=provisioner.pk, revoked_at__isnull=True)
        .exists()
    ):
        raise AapError("The provisioner token was revoked.", status=401, code="invalid_credential")


def _replay(provisioner: AapProvisioner, scope: str, key: str, body_digest: str) -> Any:
    operation = (
        AapOperation.objects.select_related("instance")
        .filter(provisioner=provisioner, scope=scope, key_digest=inputs.key_digest(key))
        .first()
    )
    if operation is None:
        return None
    if operation.body_digest != body_digest:
        raise conflict(
            "The idempotency key was already used for a different submission.",
            code="idempotency_conflict",
        )
    return operation


def _record(
    provisioner: AapProvisioner,
    scope: str,
    key: str,
    body_digest: str,
    instance: AapInstance,
    status: int,
    answer: dict[str, Any],
    now: datetime,
) -> None:
    AapOperation.objects.create(
        provisioner=provisioner,
        scope=scope,
        key_digest=inputs.key_digest(key),
        body_digest=body_digest,
        instance=instance,
        status_code=status,
        encrypted_response=keys.encrypt(_json(answer)),
        created_at=now,
    )


def _create(
    *,
    environment: Environment,
    provisioner: AapProvisioner | None,
    name: str | None,
    delivery: inputs.Delivery | None,
    url: str,
    now: datetime,
) -> tuple[AapInstance, str]:
    """The one way an instance and its credential are made (protocol, dashboard, admin): the
    receiver, if any, verified first, under the caller's transaction; the credential returned
    once and kept only as its digest."""
    instance_id = uuid.uuid4()
    if delivery is not None:
        _verify(delivery, url, instance_id)
    secret = credentials.new_secret(credentials.CREDENTIAL_PREFIX)
    instance = AapInstance.objects.create(
        id=instance_id,
        environment=environment,
        provisioner=provisioner,
        name=name or f"instance-{str(instance_id)[:8]}",
        credential_prefix=secret[: credentials.VISIBLE],
        credential_digest=keys.key_digest(secret),
        delivery_url=url,
        delivery_registration_id=delivery.registration_id if delivery else None,
        encrypted_signing_secret=keys.encrypt(delivery.signing_secret) if delivery else "",
        created_at=now,
        updated_at=now,
    )
    return instance, secret


def instance_provision(
    *, provisioner: AapProvisioner, key: str, body: dict[str, Any], now: datetime | None = None
) -> tuple[int, dict[str, Any]]:
    """A new instance of the provisioner's environment and its credential (201), or, for the
    same key and body, the original answer (200); 409 ``instance_deleted`` once it was deleted."""
    name, delivery = inputs.clean_provision(body)
    url = _check_url(delivery) if delivery is not None else ""
    body_digest = inputs.digest(body)
    now = now or timezone.now()
    with transaction.atomic():
        _lock_provisioner(provisioner)
        previous = _replay(provisioner, PROVISION, key, body_digest)
        if previous is not None:
            if previous.instance.deleted_at is not None:
                raise conflict("That instance was deleted.", code="instance_deleted")
            return 200, _stored(previous)
        instance, secret = _create(
            environment=provisioner.environment,
            provisioner=provisioner,
            name=name,
            delivery=delivery,
            url=url,
            now=now,
        )
        answer = {
            "instance": representation.instance_wire(instance),
            "credential": {"token": secret},
        }
        _record(provisioner, PROVISION, key, body_digest, instance, 201, answer, now)
        return 201, answer


def _scoped(provisioner: AapProvisioner, instance_id: str, *, lock: bool) -> AapInstance:
    parsed = inputs.parse_id(instance_id)
    if parsed is None:
        raise not_found("instance")
    rows = AapInstance.objects.filter(pk=parsed, environment_id=provisioner.environment_id)
    instance = (rows.select_for_update() if lock else rows).first()
    if instance is None:
        raise not_found("instance")
    return instance


def instance_get(*, provisioner: AapProvisioner, instance_id: str) -> AapInstance:
    """An instance of the provisioner's environment; 404 alike for unknown, deleted or
    another environment's."""
    instance = _scoped(provisioner, instance_id, lock=False)
    if instance.deleted_at is not None:
        raise not_found("instance")
    return instance


def instance_update(
    *,
    provisioner: AapProvisioner,
    instance_id: str,
    key: str,
    body: dict[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Rename and/or replace (verified first) or remove the receiver; the original answer for
    a replay. A failed verification changes nothing, the name included."""
    name, mentioned, delivery = inputs.clean_update(body)
    url = _check_url(delivery) if delivery is not None else ""
    body_digest = inputs.digest(body)
    now = now or timezone.now()
    with transaction.atomic():
        _lock_provisioner(provisioner)
        instance = _scoped(provisioner, instance_id, lock=True)
        if instance.deleted_at is not None:
            raise not_found("instance")
        scope = f"update:{instance.pk}"
        previous = _replay(provisioner, scope, key, body_digest)
        if previous is not None:
            return _stored(previous)
        if delivery is not None:
            _verify(delivery, url, instance.pk)
        fields: dict[str, Any] = {}
        if mentioned:
            fields.update(
                delivery_url=url,
                delivery_registration_id=delivery.registration_id if delivery else None,
                encrypted_signing_secret=keys.encrypt(delivery.signing_secret) if delivery else "",
            )
        _change(instance, name=name, fields=fields, now=now)
        answer = representation.instance_wire(instance)
        _record(provisioner, scope, key, body_digest, instance, 200, answer, now)
        return answer


def _change(
    instance: AapInstance, *, name: str | None, fields: dict[str, Any], now: datetime
) -> None:
    """Under the instance's row lock: the one write of a rename (protocol or dashboard) and of
    a receiver change; ``instance`` is refreshed."""
    changes: dict[str, Any] = {**fields, "updated_at": now}
    if name is not None:
        changes["name"] = name
    AapInstance.objects.filter(pk=instance.pk).update(**changes)
    instance.refresh_from_db()


def instance_rename(
    *, instance: AapInstance, name: str, now: datetime | None = None
) -> AapInstance:
    """A person (dashboard) renames a live instance, by the protocol's name rule (400 with
    ``param`` ``instance_name``); 404 once it was deleted. Returns it renamed."""
    clean = inputs.clean_name({"instance_name": name})
    with transaction.atomic():
        locked = AapInstance.objects.select_for_update().get(pk=instance.pk)
        if locked.deleted_at is not None:
            raise not_found("instance")
        _change(locked, name=clean, fields={}, now=now or timezone.now())
        return locked


def instance_delete(
    *, provisioner: AapProvisioner, instance_id: str, now: datetime | None = None
) -> None:
    """Revoke the credential, end delivery, cancel every pending request; repeated: nothing."""
    with transaction.atomic():
        instance = _scoped(provisioner, instance_id, lock=True)
        _retire(instance, now or timezone.now())


def instance_retire(*, instance: AapInstance, now: datetime | None = None) -> bool:
    """The same deletion by a person (admin, dashboard); False if it was already deleted."""
    with transaction.atomic():
        locked = AapInstance.objects.select_for_update().get(pk=instance.pk)
        return _retire(locked, now or timezone.now())


def _retire(instance: AapInstance, now: datetime) -> bool:
    """Under the instance's row lock: mark it deleted and revoked first (no request can be
    created after, no event sent for what follows), then cancel what is pending."""
    if instance.deleted_at is not None:
        return False
    AapInstance.objects.filter(pk=instance.pk).update(
        deleted_at=now,
        credential_revoked_at=now,
        delivery_url="",
        delivery_registration_id=None,
        encrypted_signing_secret="",
        updated_at=now,
    )
    pending = Token.objects.filter(
        aap_request__instance=instance, status=Token.Status.WAITING
    ).order_by("pk")
    actor = Actor.system()
    for token in pending:
        lifecycle.token_cancel(token=token, actor=actor, reason=representation.DELETED_REASON)
    return True


def instance_create(
    *, environment: Environment, name: str, now: datetime | None = None
) -> tuple[AapInstance, str]:
    """A project admin's new instance (dashboard): the protocol's name rule (empty: a generated
    name, as when ``instance_name`` is left out), no receiver; the credential shown once."""
    clean = inputs.clean_name({"instance_name": name}) if name else None
    with transaction.atomic():
        return _create(
            environment=environment,
            provisioner=None,
            name=clean,
            delivery=None,
            url="",
            now=now or timezone.now(),
        )


def instance_create_for_environment(
    *, environment: Any, name: str, now: datetime | None = None
) -> tuple[AapInstance, str]:
    """An instance made by support staff (admin) or a script: the name as given (cut to the
    limit), no receiver, the credential shown once."""
    with transaction.atomic():
        return _create(
            environment=environment,
            provisioner=None,
            name=(name or "instance")[: inputs.MAX_NAME_LENGTH],
            delivery=None,
            url="",
            now=now or timezone.now(),
        )


def requests_of(instance: AapInstance) -> Any:
    return AapRequest.objects.filter(instance=instance)
