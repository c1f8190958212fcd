"""Every write. API views, dashboard, callback, admin, Celery tasks and commands call these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens import audit, keys, outbox, resolution, selectors
from tokens.audit import Actor
from tokens.durations import resolve_timeout, resolve_ttl
from tokens.exceptions import InvalidInput, TooManyTags
from tokens.models import (
    ApiKey,
    Environment,
    OutboxMessage,
    Project,
    Token,
    TokenEvent,
    TokenTag,
    cancelled_output,
)

__all__ = ["Actor"]  # re-exported: callers write services.Actor

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
MAX_APPROVERS = 20
MAX_REASON_LENGTH = 1000  # a cancellation's reason
NO_OUTPUT = object()  # "data" absent: the token completes without output


@dataclass(frozen=True)
class CreateResult:
    token: Token
    is_cached: bool


@dataclass(frozen=True)
class TransitionResult:
    token: Token
    applied: bool
    # Who resolved the token, for "already resolved" messages on human surfaces.
    resolution: TokenEvent | None = field(default=None)


# ------------------------------------------------------------------------------------------------
# Tenancy and keys
# ------------------------------------------------------------------------------------------------


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
    """WAITING key → revoked. Returns False if it already was."""
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


# ------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------


def encode_output(data: Any) -> tuple[str | None, str]:
    """Store output the way the SDK decodes it: strings as text/plain, the rest as super+json."""
    if data is NO_OUTPUT or data == "":
        return None, "application/json"
    if isinstance(data, str):
        return data, "text/plain"
    return json.dumps({"json": data}, separators=(",", ":"), ensure_ascii=False), (
        "application/super+json"
    )


def clean_tags(tags: Any) -> list[str]:
    """A string or a list of strings; at most 10, each 1–128 characters; duplicates dropped."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInput("Invalid tags: expected a string or an array of strings.")
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise TooManyTags(
            f"Waitpoints can only have {MAX_TAGS} tags, you're trying to set {len(unique)}."
        )
    for index, tag in enumerate(unique):
        if not tag.strip():
            raise InvalidInput(f"Invalid tag at tags[{index}]: tags cannot be empty or blank.")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"Invalid tag at tags[{index}]: tags must be at most {MAX_TAG_LENGTH} characters."
            )
    return unique


def clean_approvers(approvers: Any) -> list[str]:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    if approvers is None:
        return []
    if isinstance(approvers, str):
        approvers = [approvers]
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        raise InvalidInput("Invalid approvers: expected an array of e-mail addresses.")
    unique = list(dict.fromkeys(a.strip() for a in approvers))
    if len(unique) > MAX_APPROVERS:
        raise InvalidInput(f"Invalid approvers: at most {MAX_APPROVERS} addresses.")
    for address in unique:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidInput(
                f"Invalid approvers: {address!r} is not an e-mail address."
            ) from None
    return unique


def _default_timeout(now: datetime) -> datetime | None:
    default = (settings.WAITPOINTS_DEFAULT_TIMEOUT or "").strip()
    if default.lower() in ("", "none"):
        return None
    return resolve_timeout(default, now=now, field="WAITPOINTS_DEFAULT_TIMEOUT")


def token_create(
    *,
    environment: Environment,
    actor: Actor,
    timeout: Any = None,
    idempotency_key: Any = None,
    idempotency_key_ttl: Any = None,
    tags: Any = None,
    approvers: Any = None,
    now: datetime | None = None,
) -> CreateResult:
    """Nothing → WAITING token, or the original token while its idempotency key is active."""
    now = now or timezone.now()
    timeout_at = _default_timeout(now) if timeout is None else resolve_timeout(timeout, now=now)
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not idempotency_key
        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH
    ):
        raise InvalidInput(
            "Invalid idempotencyKey: expected a non-empty string of at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters."
        )
    ttl = (
        settings.WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL
        if idempotency_key_ttl is None
        else idempotency_key_ttl  # "" is invalid like any other bad TTL, not "use the default"
    )
    key_expires_at = resolve_ttl(ttl, now=now) if idempotency_key else None
    if idempotency_key_ttl is not None and not idempotency_key:
        resolve_ttl(idempotency_key_ttl, now=now)  # still reject nonsense
    clean = clean_tags(tags)
    addresses = clean_approvers(approvers)

    for _attempt in range(3):
        with transaction.atomic():
            if idempotency_key:
                cached = _take_idempotent(environment, idempotency_key, now)
                if cached is not None:
                    return CreateResult(token=cached, is_cached=True)
            try:
                # A savepoint only with a key, where a concurrent insert may win it: without
                # one no constraint can fail, and the savepoint cost two round trips.
                with transaction.atomic(savepoint=bool(idempotency_key)):
                    token = _insert_token(
                        environment,
                        actor,
                        now,
                        timeout_at,
                        idempotency_key,
                        key_expires_at,
                        clean,
                        addresses,
                    )
            except IntegrityError:
                if not idempotency_key:
                    raise
                continue  # another request created it first: the next round returns that one
        return CreateResult(token=token, is_cached=False)
    raise RuntimeError("could not create or find the token for this idempotency key")


def _take_idempotent(environment: Environment, key: str, now: datetime) -> Token | None:
    """The active token for this key, or None after rotating an expired one out of the way."""
    existing = (
        Token.objects.select_for_update()
        .filter(environment=environment, active_key_digest=keys.idempotency_digest(key))
        .first()
    )
    if existing is None:
        return None
    expires_at = existing.idempotency_key_expires_at
    if expires_at is None or expires_at > now:
        return existing
    # Expired: the old token keeps `idempotency_key` for display but no longer deduplicates.
    Token.objects.filter(pk=existing.pk).update(active_key_digest=None)
    return None


def _insert_token(
    environment: Environment,
    actor: Actor,
    now: datetime,
    timeout_at: datetime | None,
    idempotency_key: str | None,
    key_expires_at: datetime | None,
    tags: list[str],
    approvers: list[str],
) -> Token:
    digest = keys.idempotency_digest(idempotency_key) if idempotency_key else None
    token = Token.objects.create(
        environment=environment,
        timeout_at=timeout_at,
        idempotency_key=idempotency_key,
        idempotency_key_digest=digest,
        active_key_digest=digest,
        idempotency_key_expires_at=key_expires_at,
        tags=tags,
        approvers=approvers,
        created_at=now,
    )
    TokenTag.objects.bulk_create(
        [TokenTag(token=token, environment=environment, name=tag) for tag in tags]
    )
    audit.record(token, TokenEvent.Kind.CREATED, actor, now)
    _enqueue_approval_emails(token, approvers, now)
    return token


def _enqueue_approval_emails(token: Token, addresses: list[str], now: datetime) -> int:
    outbox.enqueue_many(
        [
            outbox.message(
                kind=OutboxMessage.Kind.APPROVAL_EMAIL,
                token=token,
                payload={"to": address},
                now=now,
            )
            for address in addresses
        ]
    )
    return len(addresses)


def _transition(
    *, token: Token, actor: Actor, outcome: resolution.Outcome, ignored: str, now: datetime | None
) -> TransitionResult:
    """Apply ``outcome`` through the one resolution function, or report why nothing changed."""
    try:
        with transaction.atomic():
            event = resolution.resolve_one(token=token, outcome=outcome, actor=actor, now=now)
    except IntegrityError as error:
        if not resolution.is_deadline_refusal(error):
            raise
        event = None  # committed too late: the deadline passed while this transaction ran
    if event is not None:
        return TransitionResult(token=token, applied=True, resolution=event)
    with transaction.atomic():
        return _refused(token, ignored, actor, now)


def _refused(token: Token, kind: str, actor: Actor, now: datetime | None) -> TransitionResult:
    """Nothing applied: persist an overdue timeout, audit the attempt, report who resolved it."""
    token.refresh_from_db()  # the in-memory row may hold a transition that was rolled back
    vars(token).pop("db_now", None)  # the clock of the read that found it is stale now
    # Refused while WAITING: the deadline passed (on the database's clock, or ``now``).
    waiting = token.status == Token.Status.WAITING and token.timeout_at is not None
    if waiting and resolution.expire_due(now=now, limit=1, token_ids=[token.pk]):
        token.refresh_from_db()
    audit.record(token, kind, actor, now or timezone.now(), status=token.status)
    return TransitionResult(
        token=token, applied=False, resolution=selectors.token_resolution_event(token=token)
    )


def token_complete(
    *, token: Token, actor: Actor, data: Any = NO_OUTPUT, now: datetime | None = None
) -> TransitionResult:
    """WAITING → COMPLETED with this output; the first writer wins, later ones change nothing."""
    output, output_type = encode_output(data)
    outcome = resolution.Outcome(
        status=Token.Status.COMPLETED,
        event_kind=TokenEvent.Kind.COMPLETED,
        output=output,
        output_type=output_type,
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.COMPLETE_IGNORED, now=now
    )


def token_cancel(
    *, token: Token, actor: Actor, reason: str = "", now: datetime | None = None
) -> TransitionResult:
    """WAITING → CANCELLED with an optional reason."""
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"Invalid reason: expected a string of at most {MAX_REASON_LENGTH} characters."
        )
    reason = reason.strip()
    outcome = resolution.Outcome(
        status=Token.Status.CANCELLED,
        event_kind=TokenEvent.Kind.CANCELLED,
        output=cancelled_output(reason),
        output_is_error=True,
        cancel_reason=reason,
        detail={"reason": reason},
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.CANCEL_IGNORED, now=now
    )


def token_force_timeout(
    *, token: Token, actor: Actor, now: datetime | None = None
) -> TransitionResult:
    """WAITING → TIMED_OUT now (support staff and admins), as upstream's "Force timeout"."""
    outcome = resolution.Outcome(
        status=Token.Status.TIMED_OUT,
        event_kind=TokenEvent.Kind.TIMED_OUT,
        output_is_error=True,  # the output is derived from completed_at (Token.effective)
        detail={"forced": True},
    )
    return _transition(
        token=token, actor=actor, outcome=outcome, ignored=TokenEvent.Kind.TIMEOUT_IGNORED, now=now
    )


def token_expire_due(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """WAITING tokens past timeout_at → TIMED_OUT, one statement and one transaction per batch;
    safe with several sweepers (see ``resolution.expire_due``)."""
    batch_size = batch_size or settings.WAITPOINTS_SWEEP_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            resolution.relax_durability()
            expired = resolution.expire_due(now=now, limit=batch_size)
        total += len(expired)
        if len(expired) < batch_size:
            return total


# ------------------------------------------------------------------------------------------------
# Approval e-mails
# ------------------------------------------------------------------------------------------------


@transaction.atomic
def token_resend_approval_emails(*, token: Token, now: datetime | None = None) -> int:
    """Queue the approval e-mails of a WAITING token again (admin action)."""
    now = now or timezone.now()
    if token.effective(now).status != Token.Status.WAITING or not token.approvers:
        return 0
    return _enqueue_approval_emails(token, list(token.approvers), now)


def token_action_denied(
    *, token: Token, actor: Actor, action: str, now: datetime | None = None
) -> TokenEvent:
    """Nothing changes: audit an attempt the caller's role does not allow (a forged POST)."""
    return audit.record(token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=action)
