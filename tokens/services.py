"""Every write. API views, dashboard, callback, admin, Celery tasks and commands call these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from tokens import keys, selectors
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
    timeout_output,
)

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
MAX_APPROVERS = 20
MAX_REASON_LENGTH = 1000  # a cancellation's reason
NO_OUTPUT = object()  # "data" absent: the token completes without output


@dataclass(frozen=True)
class Actor:
    """Who acts, and through which channel; recorded on every audit event."""

    channel: str
    api_key: ApiKey | None = None
    user: AbstractBaseUser | None = None
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(channel=TokenEvent.Channel.SYSTEM)

    @classmethod
    def from_request(
        cls,
        request: HttpRequest,
        channel: str,
        *,
        api_key: ApiKey | None = None,
        user: AbstractBaseUser | None = None,
    ) -> Actor:
        """An actor for an HTTP adapter: the channel and credential, plus where it came from."""
        return cls(
            channel=channel,
            api_key=api_key,
            user=user,
            ip=request.META.get("REMOTE_ADDR"),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )


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


def _record(token: Token, kind: str, actor: Actor, now: datetime, **detail: Any) -> TokenEvent:
    return TokenEvent.objects.create(
        token=token,
        kind=kind,
        channel=actor.channel,
        api_key=actor.api_key,
        user=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:512],
        detail=detail,
        created_at=now,
    )


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
                with transaction.atomic():  # savepoint: a concurrent insert may win the key
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
    _record(token, TokenEvent.Kind.CREATED, actor, now)
    if approvers:
        OutboxMessage.objects.bulk_create(
            [
                OutboxMessage(
                    kind=OutboxMessage.Kind.APPROVAL_EMAIL,
                    token=token,
                    payload={"to": address},
                    created_at=now,
                    next_attempt_at=now,
                )
                for address in approvers
            ]
        )
        transaction.on_commit(_kick_outbox)
    return token


def _kick_outbox() -> None:
    """Ask the worker to deliver now; if the broker is away the periodic delivery picks it up.

    One bounded connection attempt, no retries: the pooled connection would retry for
    broker_connection_timeout on every request, and Redis sockets have no connect timeout.
    """
    from tokens.tasks import deliver_outbox as deliver_outbox_task

    bounded = {"max_retries": 0, "socket_connect_timeout": 1, "socket_timeout": 2}
    try:
        with deliver_outbox_task.app.connection_for_write(transport_options=bounded) as conn:
            deliver_outbox_task.apply_async(retry=False, connection=conn)
    except Exception:  # noqa: BLE001 - the outbox row is safe; never fail or hang the request
        import logging

        logging.getLogger(__name__).warning("broker unavailable; outbox delivery deferred")


def _waiting(token_id: str, now: datetime) -> Any:
    """The conditional-update guard: still WAITING and not past its timeout."""
    return Token.objects.filter(pk=token_id, status=Token.Status.WAITING).filter(
        Q(timeout_at__isnull=True) | Q(timeout_at__gt=now)
    )


def _refused(token: Token, kind: str, actor: Actor, now: datetime) -> TransitionResult:
    """Nothing applied: persist an overdue timeout, audit the attempt, report who resolved it."""
    if token.is_due(now):
        _expire_one(token, now)
    token.refresh_from_db()
    _record(token, kind, actor, now, status=token.status)
    return TransitionResult(
        token=token, applied=False, resolution=selectors.token_resolution_event(token=token)
    )


def _timed_out(timeout_at: datetime) -> dict[str, Any]:
    """The row of a token that timed out at ``timeout_at``. Its resolution time is that moment,
    not when a sweep got to it, so reads before and after the sweep agree."""
    return {
        "status": Token.Status.TIMED_OUT,
        "completed_at": timeout_at,
        "output": timeout_output(timeout_at),
        "output_type": "application/json",
        "output_is_error": True,
    }


def _expire_one(token: Token, now: datetime) -> None:
    assert token.timeout_at is not None
    updated = Token.objects.filter(pk=token.pk, status=Token.Status.WAITING).update(
        **_timed_out(token.timeout_at)
    )
    if updated:
        _record(token, TokenEvent.Kind.TIMED_OUT, Actor.system(), now)


@transaction.atomic
def token_complete(
    *, token: Token, actor: Actor, data: Any = NO_OUTPUT, now: datetime | None = None
) -> TransitionResult:
    """WAITING → COMPLETED with this output; the first writer wins, later ones change nothing."""
    now = now or timezone.now()
    output, output_type = encode_output(data)
    applied = _waiting(token.pk, now).update(
        status=Token.Status.COMPLETED,
        completed_at=now,
        output=output,
        output_type=output_type,
        output_is_error=False,
    )
    if not applied:
        return _refused(token, TokenEvent.Kind.COMPLETE_IGNORED, actor, now)
    token.refresh_from_db()
    event = _record(token, TokenEvent.Kind.COMPLETED, actor, now)
    return TransitionResult(token=token, applied=True, resolution=event)


@transaction.atomic
def token_cancel(
    *, token: Token, actor: Actor, reason: str = "", now: datetime | None = None
) -> TransitionResult:
    """WAITING → CANCELLED with an optional reason."""
    now = now or timezone.now()
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"Invalid reason: expected a string of at most {MAX_REASON_LENGTH} characters."
        )
    reason = reason.strip()
    applied = _waiting(token.pk, now).update(
        status=Token.Status.CANCELLED,
        completed_at=now,
        cancelled_at=now,
        cancel_reason=reason,
        output=cancelled_output(reason),
        output_type="application/json",
        output_is_error=True,
    )
    if not applied:
        return _refused(token, TokenEvent.Kind.CANCEL_IGNORED, actor, now)
    token.refresh_from_db()
    event = _record(token, TokenEvent.Kind.CANCELLED, actor, now, reason=reason)
    return TransitionResult(token=token, applied=True, resolution=event)


@transaction.atomic
def token_force_timeout(
    *, token: Token, actor: Actor, now: datetime | None = None
) -> TransitionResult:
    """WAITING → TIMED_OUT now (support staff and admins), as upstream's "Force timeout"."""
    now = now or timezone.now()
    applied = _waiting(token.pk, now).update(**_timed_out(now))
    if not applied:
        return _refused(token, TokenEvent.Kind.TIMEOUT_IGNORED, actor, now)
    token.refresh_from_db()
    event = _record(token, TokenEvent.Kind.TIMED_OUT, actor, now, forced=True)
    return TransitionResult(token=token, applied=True, resolution=event)


def token_expire_due(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """WAITING tokens past timeout_at → TIMED_OUT, in batches; safe with several sweepers.

    Each batch locks its rows with SKIP LOCKED, so concurrent sweeps split the work instead of
    waiting for each other, and the update still requires WAITING, so a completion that won the
    row first is never overwritten.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.WAITPOINTS_SWEEP_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                Token.objects.select_for_update(skip_locked=True)
                .filter(status=Token.Status.WAITING, timeout_at__lte=now)
                .order_by("timeout_at")
                .values_list("pk", "timeout_at")[:batch_size]
            )
            expired = [
                pk
                for pk, timeout_at in due
                if Token.objects.filter(pk=pk, status=Token.Status.WAITING).update(
                    **_timed_out(timeout_at)
                )
            ]
            TokenEvent.objects.bulk_create(
                [
                    TokenEvent(
                        token_id=pk,
                        kind=TokenEvent.Kind.TIMED_OUT,
                        channel=TokenEvent.Channel.SYSTEM,
                        created_at=now,
                    )
                    for pk in expired
                ]
            )
        total += len(expired)
        if len(due) < batch_size:
            return total


# ------------------------------------------------------------------------------------------------
# Outbox
# ------------------------------------------------------------------------------------------------

OUTBOX_MAX_ATTEMPTS = 8


def outbox_deliver_due(*, now: datetime | None = None, batch_size: int = 50) -> int:
    """Deliver pending outbox messages once each; failures retry with backoff, then give up.

    Rows are claimed with SKIP LOCKED and marked in the same transaction, so two workers never
    send the same message twice; a crash before commit leaves the row pending for a retry.
    """
    from tokens import emails

    now = now or timezone.now()
    delivered = 0
    with transaction.atomic():
        due = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .select_related("token__environment__project")
            .filter(delivered_at__isnull=True, failed_at__isnull=True, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:batch_size]
        )
        for message in due:
            if message.token.effective(now).status != Token.Status.WAITING:
                # Decided (or timed out) before we got to it: asking now would only confuse.
                message.failed_at = now
                message.last_error = "Not sent: the token was already resolved."
                message.save(update_fields=["failed_at", "last_error"])
                continue
            message.attempts += 1
            try:
                emails.send_approval_email(message)
            except Exception as error:  # noqa: BLE001 - SMTP raises many kinds; record them all
                message.last_error = f"{type(error).__name__}: {error}"[:2000]
                if message.attempts >= OUTBOX_MAX_ATTEMPTS:
                    message.failed_at = now
                    _record(
                        message.token,
                        TokenEvent.Kind.EMAIL_FAILED,
                        Actor.system(),
                        now,
                        to=message.payload.get("to"),
                        error=message.last_error,
                    )
                else:
                    message.next_attempt_at = now + timedelta(seconds=30 * 2**message.attempts)
            else:
                message.delivered_at = now
                message.last_error = ""
                delivered += 1
                _record(
                    message.token,
                    TokenEvent.Kind.EMAIL_SENT,
                    Actor.system(),
                    now,
                    to=message.payload.get("to"),
                )
            message.save(
                update_fields=[
                    "attempts",
                    "last_error",
                    "failed_at",
                    "next_attempt_at",
                    "delivered_at",
                ]
            )
    return delivered


def outbox_retry(*, message: OutboxMessage, now: datetime | None = None) -> bool:
    """A failed or pending message → pending again, due now (support staff: "retry").

    Returns False for a message that was already delivered (it is never sent twice)."""
    now = now or timezone.now()
    updated = OutboxMessage.objects.filter(pk=message.pk, delivered_at__isnull=True).update(
        failed_at=None, next_attempt_at=now, attempts=0
    )
    if updated:
        transaction.on_commit(_kick_outbox)
    return updated == 1


@transaction.atomic
def token_resend_approval_emails(*, token: Token, now: datetime | None = None) -> int:
    """Queue the approval e-mails of a WAITING token again (admin action)."""
    now = now or timezone.now()
    if token.effective(now).status != Token.Status.WAITING or not token.approvers:
        return 0
    OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                kind=OutboxMessage.Kind.APPROVAL_EMAIL,
                token=token,
                payload={"to": address},
                created_at=now,
                next_attempt_at=now,
            )
            for address in token.approvers
        ]
    )
    transaction.on_commit(_kick_outbox)
    return len(token.approvers)


def token_action_denied(
    *, token: Token, actor: Actor, action: str, now: datetime | None = None
) -> TokenEvent:
    """Nothing changes: audit an attempt the caller's role does not allow (a forged POST)."""
    return _record(token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=action)


CREDENTIAL_AUDIT_INTERVAL = timedelta(minutes=1)


@transaction.atomic
def token_credential_refused(
    *, token: Token, actor: Actor, credential: str, now: datetime | None = None
) -> TokenEvent | None:
    """Nothing changes: audit a refused credential for this token (a wrong callback hash), at
    most once a minute per token, so that a flood of guesses cannot flood the audit trail."""
    now = now or timezone.now()
    recent = TokenEvent.objects.filter(
        token=token,
        kind=TokenEvent.Kind.AUTH_FAILED,
        created_at__gt=now - CREDENTIAL_AUDIT_INTERVAL,
    )
    if recent.exists():
        return None
    return _record(token, TokenEvent.Kind.AUTH_FAILED, actor, now, credential=credential)
