"""Every write. API views, dashboard, callback, admin, Celery tasks and commands call these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import audit, decisions, keys, markup, resolution
from tokens.domain.audit import Actor
from tokens.domain.durations import (
    DURATION_HELP,
    MAX_DURATION,
    parse_duration,
    resolve_timeout,
    resolve_ttl,
)
from tokens.domain.exceptions import DecisionRefused, InvalidInput, NotWaiting, TooManyTags
from tokens.models import (
    ApiKey,
    Environment,
    OutboxMessage,
    Project,
    Recipient,
    Token,
    TokenEvent,
    TokenTag,
    Vote,
    cancelled_output,
    iso,
)
from tokens.persistence import selectors, sql

__all__ = ["Actor"]  # re-exported: callers write services.Actor

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
MAX_APPROVERS = 20
MAX_REASON_LENGTH = 1000  # a cancellation's reason
NO_OUTPUT = object()  # "data" absent: the token completes without output


@dataclass(frozen=True)
class RequestInfo:
    """What the approvers are asked (validated): title, Markdown description, context, the
    decision's labels and input fields."""

    title: str = ""
    description: str = ""
    context: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    required_approvals: int = 1
    requested_by: str = ""


@dataclass(frozen=True)
class FollowUps:
    """When to remind the undecided approvers, and when to ask more people (and whom)."""

    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    escalate_to: tuple[str, ...] = ()


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
    """A string or a list of strings; at most 10, each 1–128 characters; duplicates dropped.

    Surrounding whitespace is stripped (" a" and "a" are one tag), and a comma is refused:
    ``filter[tags]`` is comma-separated, so a tag holding one could never be matched.
    """
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInput("Invalid tags: expected a string or an array of strings.")
    for index, tag in enumerate(tags):
        if not tag.strip():
            raise InvalidInput(f"Invalid tag at tags[{index}]: tags cannot be empty or blank.")
        if "," in tag:
            raise InvalidInput(
                f"Invalid tag at tags[{index}]: tags cannot contain a comma "
                "(filter[tags] separates tags with commas)."
            )
        if "\x00" in tag:
            raise InvalidInput(f"Invalid tag at tags[{index}]: tags cannot contain NUL (\\u0000).")
    unique = list(dict.fromkeys(tag.strip() for tag in tags))
    if len(unique) > MAX_TAGS:
        raise TooManyTags(
            f"Waitpoints can only have {MAX_TAGS} tags, you're trying to set {len(unique)}."
        )
    for index, tag in enumerate(unique):
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


def clean_required_approvals(value: Any) -> int:
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_APPROVERS:
        raise InvalidInput(
            f"Invalid requiredApprovals: expected an integer from 1 to {MAX_APPROVERS}."
        )
    return value


def clean_requested_by(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 254:
        raise InvalidInput(
            "Invalid requestedBy: expected an e-mail address or a username "
            "(at most 254 characters)."
        )
    return value.strip()


def _after(value: Any, field: str, now: datetime) -> datetime | None:
    if value is None:
        return None
    duration = parse_duration(value) if isinstance(value, str) else None
    if duration is None or duration > MAX_DURATION:
        raise InvalidInput(f"Invalid {field}: expected a duration from creation, {DURATION_HELP}.")
    return now + duration


def clean_follow_ups(
    *,
    remind_after: Any,
    escalate_after: Any,
    escalate_to: Any,
    now: datetime,
    timeout_at: datetime | None,
) -> FollowUps:
    remind_at = _after(remind_after, "remindAfter", now)
    escalate_at = _after(escalate_after, "escalateAfter", now)
    if (escalate_at is None) != (escalate_to is None):
        raise InvalidInput("Invalid escalation: escalateAfter and escalateTo go together.")
    addresses = clean_approvers(escalate_to) if escalate_to is not None else []
    if escalate_at is not None and not addresses:
        raise InvalidInput("Invalid escalateTo: expected at least one e-mail address.")
    for moment, name in ((remind_at, "remindAfter"), (escalate_at, "escalateAfter")):
        if moment is not None and timeout_at is not None and moment >= timeout_at:
            raise InvalidInput(f"Invalid {name}: it must come before the timeout.")
    return FollowUps(remind_at=remind_at, escalate_at=escalate_at, escalate_to=tuple(addresses))


def _schedule_follow_ups(token: Token, follow_ups: FollowUps, now: datetime) -> None:
    """Scheduled outbox rows: due at their moment, handled in tokens.delivery.emails."""
    rows = []
    if follow_ups.remind_at is not None:
        row = outbox.message(kind=OutboxMessage.Kind.REMINDER, token=token, payload={}, now=now)
        row.next_attempt_at = follow_ups.remind_at
        rows.append(row)
    if follow_ups.escalate_at is not None:
        payload = {"to": list(follow_ups.escalate_to)}
        row = outbox.message(
            kind=OutboxMessage.Kind.ESCALATION, token=token, payload=payload, now=now
        )
        row.next_attempt_at = follow_ups.escalate_at
        rows.append(row)
    outbox.enqueue_many(rows)


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
    title: Any = None,
    description: Any = None,
    context: Any = None,
    decision: Any = None,
    required_approvals: Any = None,
    requested_by: Any = None,
    remind_after: Any = None,
    escalate_after: Any = None,
    escalate_to: Any = None,
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
    request = RequestInfo(
        title=markup.clean_title(title),
        description=markup.clean_description(description),
        context=markup.clean_context(context),
        decision=decisions.clean_decision(decision),
        required_approvals=clean_required_approvals(required_approvals),
        requested_by=clean_requested_by(requested_by),
    )
    follow_ups = clean_follow_ups(
        remind_after=remind_after,
        escalate_after=escalate_after,
        escalate_to=escalate_to,
        now=now,
        timeout_at=timeout_at,
    )

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
                        request,
                        follow_ups,
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
    request: RequestInfo,
    follow_ups: FollowUps,
) -> Token:
    digest = keys.idempotency_digest(idempotency_key) if idempotency_key else None
    token = Token(
        environment=environment,
        timeout_at=timeout_at,
        idempotency_key=idempotency_key,
        idempotency_key_digest=digest,
        active_key_digest=digest,
        idempotency_key_expires_at=key_expires_at,
        tags=tags,
        approvers=approvers,
        title=request.title,
        description=request.description,
        context_json=_json_text(request.context),
        decision_json=_json_text(request.decision),
        required_approvals=request.required_approvals,
        requested_by=request.requested_by,
        created_at=now,
    )
    event = audit.build(token.pk, TokenEvent.Kind.CREATED, actor, now)
    if connection.vendor == "postgresql":
        _insert_in_one_statement(token, tags, event)
    else:
        token.save(force_insert=True)
        TokenTag.objects.bulk_create(
            [TokenTag(token=token, environment=environment, name=tag) for tag in tags]
        )
        event.save()
    if approvers:
        _enqueue_approval_emails(token, approvers, now)
    _schedule_follow_ups(token, follow_ups, now)
    return token


def _insert_in_one_statement(token: Token, tags: list[str], event: TokenEvent) -> None:
    """The token, its tag rows and its audit event in one statement (PostgreSQL): three
    round trips and three passes through the ORM's insert machinery were most of a create."""
    token_columns, token_values, token_params = sql.insert_parts(token)
    event_columns, event_values, event_params = sql.insert_parts(event)
    statement = (
        f"WITH token AS (INSERT INTO {Token._meta.db_table} ({token_columns}) "  # noqa: S608 - names are ours
        f"VALUES ({token_values}) RETURNING id, environment_id), "
        f"tags AS (INSERT INTO {TokenTag._meta.db_table} (token_id, environment_id, name) "
        f"SELECT token.id, token.environment_id, tag FROM token, unnest(%s::text[]) AS tag), "
        f"event AS (INSERT INTO {TokenEvent._meta.db_table} ({event_columns}) "
        f"SELECT {event_values} FROM token RETURNING id) "
        f"SELECT id FROM event"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*token_params, tags, *event_params])
        (event_id,) = cursor.fetchone()
    sql.saved(token)
    sql.saved(event, event_id)


def _json_text(value: dict[str, Any] | None) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else ""


def _enqueue_approval_emails(
    token: Token, addresses: list[str], now: datetime, *, purpose: str = ""
) -> int:
    """One e-mail per address, each carrying that recipient's own link; revoked recipients
    get nothing (a resend does not undo a revocation). ``purpose``: "reminder" or
    "escalation" (the e-mail says so), "" for the first request."""
    existing = {r.email: r for r in Recipient.objects.filter(token=token, email__in=addresses)}
    new = [
        Recipient(token=token, email=address, created_at=now)
        for address in addresses
        if address not in existing
    ]
    for recipient in Recipient.objects.bulk_create(new):
        existing[recipient.email] = recipient
    active = [existing[address] for address in addresses if existing[address].is_active]
    outbox.enqueue_many(
        [
            outbox.message(
                kind=OutboxMessage.Kind.APPROVAL_EMAIL,
                token=token,
                payload={"to": recipient.email, "recipient": recipient.pk}
                | ({"purpose": purpose} if purpose else {}),
                now=now,
            )
            for recipient in active
        ]
    )
    return len(active)


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


def token_extend(*, token: Token, actor: Actor, timeout: Any, now: datetime | None = None) -> Token:
    """Move a WAITING token's deadline to ``timeout`` (a duration from now or an ISO date).

    One conditional UPDATE: only while the token is WAITING and its old deadline has not passed,
    on the database's clock (as ``resolution.resolve_one``), so an extension never revives a
    token that readers already see as timed out, and a concurrent sweep either skips the row
    (it is locked) or resolves it first (then this refuses). Raises ``NotWaiting`` otherwise,
    audited as a refused extension."""
    from django.db.models import Q
    from django.db.models.functions import Now

    moment = now or timezone.now()
    if timeout is None:
        raise InvalidInput('Invalid timeout: required, e.g. "1h" or an ISO-8601 date.')
    new_deadline = resolve_timeout(timeout, now=moment)
    clock: Any = now or Now()
    with transaction.atomic():
        old = token.timeout_at
        updated = (
            Token.objects.filter(pk=token.pk, status=Token.Status.WAITING)
            .filter(Q(timeout_at__isnull=True) | Q(timeout_at__gt=clock))
            .update(timeout_at=new_deadline)
        )
        if updated:
            token.refresh_from_db()
            audit.record(
                token,
                TokenEvent.Kind.EXTENDED,
                actor,
                moment,
                **{"from": iso(old) if old else "none", "to": iso(new_deadline)},
            )
            return token
    refused = _refused(token, TokenEvent.Kind.EXTEND_IGNORED, actor, now).token
    status = Token.Status(refused.status).label.lower()
    raise NotWaiting(
        f"Cannot extend {refused.friendly_id}: it is already {status}. "
        "Only a waiting token's deadline can move."
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


def recipient_revoke(*, recipient: Recipient, actor: Actor, now: datetime | None = None) -> bool:
    """Revoke one recipient's personal link (the others and the plain callback URL keep
    working). Returns False if it already was revoked; audited on the token."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = Recipient.objects.filter(pk=recipient.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if updated:
            audit.record(
                recipient.token, TokenEvent.Kind.LINK_REVOKED, actor, now, to=recipient.email
            )
    recipient.refresh_from_db(fields=["revoked_at"])
    return updated == 1


def token_action_denied(
    *, token: Token, actor: Actor, action: str, now: datetime | None = None
) -> TokenEvent:
    """Nothing changes: audit an attempt the caller's role does not allow (a forged POST)."""
    return audit.record(token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=action)


# ------------------------------------------------------------------------------------------------
# Decisions by people: requestedBy, requiredApprovals (votes)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voter:
    """A person deciding: ``key`` identifies them across surfaces (a lower-cased e-mail address
    when known), ``label`` names them in the output, ``aliases`` are matched against
    ``requestedBy`` (their address and username, lower-cased)."""

    key: str
    label: str
    aliases: frozenset[str]

    @classmethod
    def for_email(cls, address: str) -> Voter:
        return cls(key=address.lower(), label=address, aliases=frozenset({address.lower()}))

    @classmethod
    def for_user(cls, *, username: str, email: str) -> Voter:
        key = email.lower() if email else f"user:{username.lower()}"
        aliases = {username.lower()} | ({email.lower()} if email else set())
        return cls(key=key, label=username, aliases=frozenset(aliases))


@dataclass(frozen=True)
class DecideResult:
    token: Token
    applied: bool  # the vote or decision was recorded (False: the token was already resolved)
    resolved: bool  # this decision resolved the token
    approvals: int = 0
    required: int = 1
    resolution: TokenEvent | None = None


class _TooLate(Exception):  # noqa: N818 - internal: roll a vote back with its transaction
    pass


class _AlreadyVoted(Exception):  # noqa: N818 - internal: refused after the lock, audited after
    pass


def token_decide(
    *,
    token: Token,
    actor: Actor,
    voter: Voter | None,
    decision: str,
    comment: str = "",
    fields: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> DecideResult:
    """A person approves or rejects (dashboard, personal link, confirmation page).

    Refuses (``DecisionRefused``, audited) the requester's own approval, a second vote by the
    same person, and an anonymous decision where the request needs to know who decides. With
    ``required_approvals`` 1 it completes the token at once; otherwise it records a vote and the
    N-th distinct approval (or the first rejection) resolves the token through
    ``resolution.resolve_one``, in the same transaction, with every vote in the output."""
    needs_identity = token.required_approvals > 1 or bool(token.requested_by)
    if voter is None and needs_identity:
        raise _deny(
            token,
            actor,
            now,
            "decide anonymously",
            "This request needs to know who decides: use your personal link from the e-mail, "
            "or the dashboard.",
        )
    if voter is not None and decision == "approved" and token.requested_by.lower() in voter.aliases:
        raise _deny(
            token,
            actor,
            now,
            "approve own request",
            f"You requested this ({token.requested_by}), so you cannot approve it: "
            "another approver must.",
        )
    if token.required_approvals <= 1:
        by = voter.label if voter else None
        output = decisions.decision_output(decision, comment, by=by, fields=fields)
        result = token_complete(token=token, actor=actor, data=output, now=now)
        return DecideResult(
            token=result.token,
            applied=result.applied,
            resolved=result.applied,
            approvals=int(result.applied and decision == "approved"),
            resolution=result.resolution,
        )
    assert voter is not None
    try:
        with transaction.atomic():
            return _vote(token, actor, voter, decision, comment, fields or {}, now)
    except IntegrityError as error:
        if not resolution.is_deadline_refusal(error):
            raise
    except _TooLate:
        pass
    except _AlreadyVoted:
        raise _deny(
            token,
            actor,
            now,
            "vote twice",
            "You already decided on this request; each person counts once.",
        ) from None
    with transaction.atomic():
        refused = _refused(token, TokenEvent.Kind.COMPLETE_IGNORED, actor, now)
    return DecideResult(
        token=refused.token,
        applied=False,
        resolved=False,
        required=token.required_approvals,
        resolution=refused.resolution,
    )


def _vote(
    token: Token,
    actor: Actor,
    voter: Voter,
    decision: str,
    comment: str,
    fields: dict[str, Any],
    now: datetime | None,
) -> DecideResult:
    from django.db.models import Q
    from django.db.models.functions import Now

    clock: Any = now or Now()
    # The row lock serialises the votes on one token: two final votes cannot both resolve it,
    # and neither is recorded against a token the other one resolved.
    locked = (
        Token.objects.select_for_update()
        .filter(pk=token.pk, status=Token.Status.WAITING)
        .filter(Q(timeout_at__isnull=True) | Q(timeout_at__gt=clock))
        .first()
    )
    if locked is None:
        raise _TooLate
    if Vote.objects.filter(token=token, voter=voter.key).exists():
        raise _AlreadyVoted
    moment = now or timezone.now()
    Vote.objects.create(
        token=token,
        voter=voter.key,
        label=voter.label,
        decision=decision,
        comment=comment,
        fields=fields,
        created_at=moment,
    )
    votes = list(Vote.objects.filter(token=token).order_by("id"))
    approvals = sum(vote.decision == "approved" for vote in votes)
    audit.record(
        token,
        TokenEvent.Kind.VOTED,
        actor,
        moment,
        decision=decision,
        by=voter.label,
        approvals=f"{approvals} of {token.required_approvals}",
    )
    if decision == "approved" and approvals < token.required_approvals:
        return DecideResult(
            token=token,
            applied=True,
            resolved=False,
            approvals=approvals,
            required=token.required_approvals,
        )
    output = decisions.decision_output(decision, comment, by=voter.label, fields=fields)
    output["votes"] = [_vote_json(vote) for vote in votes]
    encoded, output_type = encode_output(output)
    outcome = resolution.Outcome(
        status=Token.Status.COMPLETED,
        event_kind=TokenEvent.Kind.COMPLETED,
        output=encoded,
        output_type=output_type,
    )
    event = resolution.resolve_one(token=token, outcome=outcome, actor=actor, now=now)
    if event is None:
        raise _TooLate  # the deadline passed between the lock and the update
    return DecideResult(
        token=token,
        applied=True,
        resolved=True,
        approvals=approvals,
        required=token.required_approvals,
        resolution=event,
    )


def _vote_json(vote: Vote) -> dict[str, Any]:
    data: dict[str, Any] = {"by": vote.label, "status": vote.decision, "at": iso(vote.created_at)}
    if vote.comment:
        data["comment"] = vote.comment
    if vote.fields:
        data["fields"] = vote.fields
    return data


def _deny(
    token: Token, actor: Actor, now: datetime | None, action: str, message: str
) -> DecisionRefused:
    """Audit a refused decision (in a transaction of its own) and return the error to raise."""
    audit.record(token, TokenEvent.Kind.DENIED, actor, now or timezone.now(), action=action)
    return DecisionRefused(message)


# ------------------------------------------------------------------------------------------------
# Follow-ups: reminders and escalations (run by the worker when their outbox row falls due)
# ------------------------------------------------------------------------------------------------


def _undecided(token: Token) -> list[str]:
    """The e-mailed approvers who have not voted (all of them while a 1-approval token waits)."""
    voted = set(Vote.objects.filter(token=token).values_list("voter", flat=True))
    return [
        recipient.email
        for recipient in Recipient.objects.filter(token=token, revoked_at__isnull=True)
        if recipient.email.lower() not in voted
    ]


def token_remind(*, token: Token, now: datetime | None = None) -> int:
    """One reminder e-mail to each approver who has not decided; 0 if the token was resolved."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Token.objects.select_for_update().get(pk=token.pk)
        if locked.effective(now).status != Token.Status.WAITING:
            return 0
        addresses = _undecided(locked)
        queued = _enqueue_approval_emails(locked, addresses, now, purpose="reminder")
        audit.record(locked, TokenEvent.Kind.REMINDED, Actor.system(), now, to=addresses)
        return queued


def token_escalate(*, token: Token, addresses: list[str], now: datetime | None = None) -> int:
    """Ask more people: they become approvers of the token (with links of their own)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Token.objects.select_for_update().get(pk=token.pk)
        if locked.effective(now).status != Token.Status.WAITING:
            return 0
        new = [a for a in addresses if a not in locked.approvers]
        if new:
            Token.objects.filter(pk=locked.pk).update(approvers=[*locked.approvers, *new])
        queued = _enqueue_approval_emails(locked, new, now, purpose="escalation")
        audit.record(locked, TokenEvent.Kind.ESCALATED, Actor.system(), now, to=new)
        return queued


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
    return audit.record(token, TokenEvent.Kind.AUTH_FAILED, actor, now, refused=credential)
