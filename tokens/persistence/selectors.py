"""Scoped reads. Every query starts from the caller's environment (or the user's projects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Now

from tokens.domain import deadline, keys, tenancy
from tokens.domain.exceptions import NotFound
from tokens.models import (
    WEBHOOK_PREFIX,
    ApiKey,
    DeadlineRule,
    Environment,
    Membership,
    OutboxMessage,
    Project,
    Recipient,
    SlackConnection,
    SlackMessage,
    SlackRoute,
    Snooze,
    Token,
    TokenEvent,
    TokenTag,
    Vote,
    WebhookDelivery,
    WebhookEndpoint,
)
from tokens.persistence import fast_paths, keycache


def tagged_q(tags: list[str]) -> Exists:
    """Tokens carrying any of ``tags``, for a token queryset scoped to one environment.

    The tag rows are looked up by (environment, name) from the token's own environment, so the
    plan starts from ``tokentag_lookup`` and reads no other tenant's rows (the same tag name in
    another environment costs nothing); an EXISTS rather than ``IN`` also needs no DISTINCT when
    a token carries several of the tags.
    """
    return Exists(
        TokenTag.objects.filter(
            token_id=OuterRef("pk"), environment_id=OuterRef("environment_id"), name__in=tags
        )
    )


def project_slugs() -> list[str]:
    """Every project's slug, sorted (for operators' commands that name one)."""
    return list(Project.objects.order_by("slug").values_list("slug", flat=True))


def api_key_get_by_secret(*, secret: str) -> ApiKey | None:
    """The active key with this secret, its environment and project loaded; None otherwise.
    Remembered for a few seconds per process (``keycache``: a revocation elsewhere takes effect
    within ``WAITPOINTS_API_KEY_CACHE_SECONDS``, here at once)."""
    digest = keys.key_digest(secret)
    cached = keycache.get(digest)
    if cached is not None:
        return cached
    found = fast_paths.api_key_by_digest(digest)
    if found is not None:
        keycache.put(digest, found)
    return found


def api_keys_active_for_environment(*, environment: Environment) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(environment=environment, revoked_at__isnull=True)


def environment_get_by_public_id(*, public_id: str) -> Environment | None:
    return Environment.objects.filter(public_id=public_id).first()


def _read(tokens: QuerySet[Token]) -> QuerySet[Token]:
    """Tokens as readers see them: each carries ``db_now``, the database's clock when read, so
    that ``deadline.effective`` decides "timed out" on the same clock as the writers do."""
    return tokens.annotate(db_now=Now())


def token_list(*, environment: Environment) -> QuerySet[Token]:
    return _read(Token.objects.filter(environment=environment))


def _one_token(tokens: QuerySet[Token], token_id: str) -> Token:
    """The token with this id (``waitpoint_…`` or bare) among ``tokens``; NotFound otherwise,
    the same for a malformed id, an unknown one and one outside the scope."""
    internal = keys.parse_token_id(token_id)
    token = _read(tokens).filter(pk=internal).first() if internal else None
    if token is None:
        raise NotFound()
    return token


def token_get_for_environment(*, environment: Environment, token_id: str) -> Token:
    """The token with this id in this environment (the API's scope)."""
    internal = keys.parse_token_id(token_id)
    token = (
        fast_paths.token_in_environment(
            lambda: _read(Token.objects.all()), environment=environment, pk=internal
        )
        if internal
        else None
    )
    if token is None:
        raise NotFound()
    token.environment = environment  # the caller's own: no second query to read it
    return token


def token_get_by_id(*, token_id: str) -> Token:
    """Unscoped lookup for the callback URL, whose hash is the credential."""
    return _one_token(Token.objects.select_related("environment__project"), token_id)


def votes_for_token(*, token: Token) -> list[Vote]:
    """The votes cast on a token that needs several approvals, oldest first."""
    return list(Vote.objects.filter(token=token).order_by("id"))


def recipient_get(*, token: Token, recipient_id: int) -> Recipient | None:
    """One recipient of this token (for its personal link), revoked or not; None if unknown."""
    return Recipient.objects.filter(token=token, pk=recipient_id).first()


def recipient_list_for_token(*, token: Token) -> list[Recipient]:
    """The token's e-mailed approvers (one personal link each), revoked ones too, in the order
    they were first e-mailed."""
    return list(Recipient.objects.filter(token=token).order_by("id"))


# ------------------------------------------------------------------------------------------------
# Dashboard: reads scoped to the projects a user is a member of
# ------------------------------------------------------------------------------------------------


def project_get_for_admin(*, user: Any, project_slug: str) -> Project:
    """A project the user administers; NotFound otherwise (also for a mere member)."""
    if not user.is_authenticated:
        raise NotFound()
    project = Project.objects.filter(
        slug=project_slug, memberships__user=user, memberships__role=Membership.Role.ADMIN
    ).first()
    if project is None:
        raise NotFound()
    return project


def memberships_of_project(*, project: Project) -> QuerySet[Membership]:
    """The project's members with their accounts, by username."""
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )


def membership_get(*, project: Project, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(project=project, pk=membership_id)
        .select_related("user", "project")
        .first()
    )
    if membership is None:
        raise NotFound()
    return membership


def membership_role_for_user(*, user: Any, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()
    )


# The home page counts waiting tokens up to here and shows "1000+" beyond: counting every one of
# a million waiting rows took longer than the rest of the page (docs/benchmarks).
WAITING_COUNT_CAP = 1000


class _CappedCount(Subquery):
    """``count(*)`` of a sliced subquery: stops reading rows at the slice's LIMIT."""

    template = "(SELECT count(*) FROM (%(subquery)s) AS capped)"
    output_field = IntegerField()


def environment_list_for_user(*, user: Any, now: datetime | None = None) -> QuerySet[Environment]:
    """The user's environments, each annotated with ``role`` and ``waiting``: its waiting
    tokens, counted up to ``WAITING_COUNT_CAP + 1`` (more than the cap reads as "cap+")."""
    role = Membership.objects.filter(user=user, project=OuterRef("project")).values("role")[:1]
    waiting = (
        Token.objects.filter(environment=OuterRef("pk"))
        .filter(deadline.waiting_q(now))
        .order_by()
        .values("pk")[: WAITING_COUNT_CAP + 1]
    )
    return (
        Environment.objects.filter(project__memberships__user=user)
        .select_related("project")
        .annotate(role=Subquery(role), waiting=_CappedCount(waiting))
        .order_by("project__name", "project__slug", "slug")
    )


def environment_get_for_user(*, user: Any, project_slug: str, slug: str) -> Environment:
    """One of the user's environments; NotFound when it does not exist or is not theirs."""
    environment = (
        Environment.objects.select_related("project")
        .filter(project__slug=project_slug, slug=slug, project__memberships__user=user)
        .first()
    )
    if environment is None:
        raise NotFound()
    return environment


def token_get_for_user(*, user: Any, token_id: str) -> Token:
    """The token with this id in one of the user's projects; NotFound otherwise, exactly as
    for an unknown id, so ids of other tenants reveal nothing."""
    if not user.is_authenticated:
        raise NotFound()
    tokens = Token.objects.select_related("environment__project").filter(
        environment__project__memberships__user=user
    )
    return _one_token(tokens, token_id)


def token_map_for_user(*, user: Any, token_ids: list[str]) -> dict[str, Token]:
    """The tokens with these ids (``waitpoint_…`` or bare) in the user's projects, by internal
    id, with environment and project, in one query (the bulk review lists up to 100); ids that
    are malformed, unknown or another tenant's are simply absent."""
    internal = [pk for pk in map(keys.parse_token_id, token_ids) if pk]
    if not user.is_authenticated or not internal:
        return {}
    tokens = Token.objects.select_related("environment__project").filter(
        environment__project__memberships__user=user, pk__in=internal
    )
    return {token.pk: token for token in _read(tokens)}


def token_list_waiting_for_user(*, user: Any, now: datetime | None = None) -> QuerySet[Token]:
    """WAITING tokens the user can decide, in every project; callers order."""
    deciding = Membership.objects.filter(
        user=user, role__in=tenancy.roles_allowing("approve")
    ).values("project")
    return _read(
        Token.objects.filter(environment__project__in=deciding)
        .filter(deadline.waiting_q(now))
        .select_related("environment__project")
    )


def deadline_rule_list(*, environment: Environment) -> QuerySet[DeadlineRule]:
    return DeadlineRule.objects.filter(environment=environment).order_by("tag")


def deadline_rule_get(*, environment: Environment, rule_id: int) -> DeadlineRule | None:
    return DeadlineRule.objects.filter(environment=environment, pk=rule_id).first()


def token_without_aside(
    queryset: QuerySet[Token], *, person: str, now: datetime
) -> QuerySet[Token]:
    """``queryset`` less the requests ``person`` put aside past ``now`` ("not now")."""
    aside = Snooze.objects.filter(token=OuterRef("pk"), person=person, until__gt=now)
    return queryset.exclude(Exists(aside))


def token_list_aside_for_user(
    *, user: Any, person: str, now: datetime, limit: int = 50
) -> list[Token]:
    """The requests ``person`` (the user's identity key) put aside, soonest back first; each
    carries ``aside_until``."""
    snoozes = (
        Snooze.objects.filter(
            person=person, until__gt=now, token__in=token_list_waiting_for_user(user=user, now=now)
        )
        .select_related("token__environment__project")
        .order_by("until", "id")[:limit]
    )
    tokens = []
    for snooze in snoozes:
        snooze.token.aside_until = snooze.until  # type: ignore[attr-defined]
        tokens.append(snooze.token)
    return tokens


def token_triage_page(
    queryset: QuerySet[Token], *, email: str, offset: int, limit: int
) -> list[Token]:
    """ "Waiting for me" as a triage queue, one page of it: requests that e-mailed me (my
    address among the approvers) first, then by deadline, soonest first (none last), then by
    id. Each row carries ``assigned`` (True when it names me).

    Two queries rather than one ORDER BY on "names me": that order cannot come from an index,
    so PostgreSQL computed it for every waiting token (700,000 rows at the benchmark's size:
    1.8 s a page). The requests naming me are found from my address (``recipient_email``);
    the rest walk ``token_waiting_deadline`` in deadline order and stop at the page's end.
    """
    by_deadline = (F("timeout_at").asc(nulls_last=True), "pk")
    mine: list[Token] = []
    others = queryset
    if email:
        # Through the recipients (one row per e-mailed approver), not a JSON "contains" on
        # Token.approvers, which SQLite (the embedded default) does not support.
        names_me = Exists(Recipient.objects.filter(token=OuterRef("pk"), email__iexact=email))
        assigned = queryset.filter(names_me).order_by(*by_deadline)
        assigned_count = assigned.count()
        if offset < assigned_count:
            mine = list(assigned[offset : offset + limit])
        others = queryset.exclude(names_me)
        offset = max(0, offset - assigned_count)  # where this page starts among the others
    rest = limit - len(mine)
    theirs = list(others.order_by(*by_deadline)[offset : offset + rest]) if rest else []
    for token in mine:
        token.assigned = True  # type: ignore[attr-defined]
    for token in theirs:
        token.assigned = False  # type: ignore[attr-defined]
    return mine + theirs


def tag_names_for_environment(
    *, environment: Environment, prefix: str = "", limit: int = 20
) -> list[str]:
    """Distinct tag names in an environment, for the filter's typeahead (index-backed)."""
    if not prefix:
        return _distinct_tag_names(environment, limit)
    rows = TokenTag.objects.filter(environment=environment, name__startswith=prefix)
    return list(rows.order_by("name").values_list("name", flat=True).distinct()[:limit])


def _distinct_tag_names(environment: Environment, limit: int) -> list[str]:
    """The first ``limit`` distinct names, by a skip scan of ``tokentag_lookup``: one index
    descent per name instead of reading every tag row (a DISTINCT over a million rows took
    most of the dashboard list's time)."""
    table = TokenTag._meta.db_table
    sql = (
        f"WITH RECURSIVE names(name, n) AS ("  # noqa: S608 - the table name is ours
        f"SELECT (SELECT MIN(name) FROM {table} WHERE environment_id = %s), 1 "
        f"UNION ALL SELECT (SELECT MIN(name) FROM {table} WHERE environment_id = %s "
        f"AND name > names.name), n + 1 FROM names WHERE names.name IS NOT NULL AND n < %s) "
        f"SELECT name FROM names WHERE name IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [environment.pk, environment.pk, limit])
        return [row[0] for row in cursor.fetchall()]


# The audit events that end a token's wait; a token has at most one of them.
RESOLVING_KINDS = (TokenEvent.Kind.COMPLETED, TokenEvent.Kind.TIMED_OUT, TokenEvent.Kind.CANCELLED)


def token_resolution_event(*, token: Token) -> TokenEvent | None:
    """Who resolved the token, how and when (None while it waits, or before the sweep)."""
    return token.events.filter(kind__in=RESOLVING_KINDS).select_related("user", "api_key").first()


def token_events_for_token(*, token: Token) -> QuerySet[TokenEvent]:
    return token.events.select_related("user", "api_key").order_by("created_at", "id")


def _with_previous(events: QuerySet[TokenEvent]) -> QuerySet[TokenEvent]:
    """Each event with the digest of the one before it in its token's chain (``previous``; ""
    for the first), found through ``tokenevent_unique_seq``; in chain order, token by token."""
    before = TokenEvent.objects.filter(token_id=OuterRef("token_id"), seq=OuterRef("seq") - 1)
    return (
        events.select_related("user", "api_key")
        .annotate(previous=Coalesce(Subquery(before.values("digest")[:1]), Value("")))
        .order_by("token_id", "seq")
    )


def audit_events_for_token(*, token: Token) -> QuerySet[TokenEvent]:
    """A token's audit trail in chain order, for its export."""
    return _with_previous(TokenEvent.objects.filter(token_id=token.pk))


def audit_events_for_environment(
    *, environment: Environment, since: datetime | None, until: datetime | None
) -> QuerySet[TokenEvent]:
    """The audit events of an environment's tokens written in ``[since, until)``, token by
    token in chain order (an export per period: each line names the digest before it)."""
    events = TokenEvent.objects.filter(token__environment=environment)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return _with_previous(events)


def tokens_with_events_since(*, since: datetime | None) -> QuerySet[Token]:
    """Every token (with any event written since ``since``), for ``verify_audit``."""
    tokens = Token.objects.all()
    if since is not None:
        recent = TokenEvent.objects.filter(token_id=OuterRef("pk"), created_at__gte=since)
        tokens = tokens.filter(Exists(recent))
    return tokens.order_by("pk")


def token_ids_resolved(*, token_ids: list[str]) -> list[str]:
    """Which of these (internal) ids are no longer WAITING; for the wait hub's re-check."""
    resolved: list[str] = []
    for start in range(0, len(token_ids), 500):  # SQLite's limit on query parameters
        chunk = token_ids[start : start + 500]
        resolved += (
            Token.objects.filter(pk__in=chunk)
            .exclude(status=Token.Status.WAITING)
            .values_list("pk", flat=True)
        )
    return resolved


def tokens_by_ids(*, token_ids: list[str]) -> dict[str, Token]:
    """Tokens by internal id with their environment, for waking long-poll waiters. Unscoped:
    the waiters were authorised for their token when they started waiting."""
    return {
        token.pk: token
        for token in Token.objects.select_related("environment").filter(pk__in=token_ids)
    }


def token_oldest_overdue_timeout(*, now: datetime) -> datetime | None:
    """The ``timeout_at`` of the oldest WAITING token already past it (how late the sweep is)."""
    return (
        Token.objects.filter(deadline.due_q(now))
        .order_by("timeout_at")
        .values_list("timeout_at", flat=True)
        .first()
    )


# ------------------------------------------------------------------------------------------------
# Webhook endpoints, scoped to an environment
# ------------------------------------------------------------------------------------------------


def parse_endpoint_id(value: str) -> str | None:
    return keys.parse_token_id(value.removeprefix(WEBHOOK_PREFIX))


def webhook_endpoint_list(*, environment: Environment) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(environment=environment).order_by("-id")


def webhook_endpoint_get_for_environment(
    *, environment: Environment, endpoint_id: str
) -> WebhookEndpoint:
    """The endpoint with this id in this environment; NotFound for others, as for unknown ids."""
    internal = parse_endpoint_id(endpoint_id)
    endpoint = (
        WebhookEndpoint.objects.filter(environment=environment, pk=internal).first()
        if internal
        else None
    )
    if endpoint is None:
        raise NotFound("Webhook endpoint not found")
    return endpoint


def webhook_delivery_list_recent(
    *, endpoint: WebhookEndpoint, limit: int = 25
) -> list[WebhookDelivery]:
    return list(endpoint.deliveries.order_by("-created_at", "-id")[:limit])


def webhook_messages_undelivered(*, endpoint: WebhookEndpoint) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.WEBHOOK, payload__endpoint=endpoint.pk, delivered_at__isnull=True
    )


def slack_connection_for_environment(*, environment: Environment) -> SlackConnection | None:
    return SlackConnection.objects.filter(environment=environment).first()


def slack_route_list(*, connection: SlackConnection) -> list[SlackRoute]:
    return list(SlackRoute.objects.filter(connection=connection).order_by("tag", "channel"))


def slack_route_get(*, connection: SlackConnection, route_id: int) -> SlackRoute | None:
    return SlackRoute.objects.filter(connection=connection, pk=route_id).first()


def slack_messages_for_token(*, token: Token) -> list[SlackMessage]:
    return list(SlackMessage.objects.filter(token=token).order_by("id"))
