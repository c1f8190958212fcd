""" "Not now": an approver puts a request aside until a time they choose.

Until then the request leaves their "waiting for me" (``tokens.persistence.selectors``) and
their reminders (``tokens.domain.approvals``), for them alone; when the time comes, it is back,
and an approver who was e-mailed gets one reminder then. It is never a decision: the token
still waits, everybody else still sees it, and the person may still decide at any moment.
Putting aside and bringing back are audited.

Who may: the people who may decide it (a member whose role approves, or one of the named
approvers through their personal link); the anonymous holder of a callback URL may not, since
"for them alone" needs to know who they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tokens.delivery import outbox
from tokens.domain import audit, deadline, tenancy
from tokens.domain.actors import Actor
from tokens.domain.decide import Authority, Voter
from tokens.domain.durations import resolve_timeout
from tokens.domain.exceptions import DecisionRefused, NotWaiting
from tokens.models import OutboxMessage, Recipient, Snooze, Token, TokenEvent, iso

# What the pages offer ("remind me in …"); the service takes any duration or date-time.
UNTIL_CHOICES: tuple[tuple[str, str], ...] = (
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("3d", "3 days"),
    ("1w", "1 week"),
)


def form_until(choice: str, at: str) -> str:
    """What a page's "not now" form asks for: the date-time field (read as UTC, as the pages
    show times) when filled in, else the chosen duration."""
    at = at.strip()
    if at:
        return at if at.endswith(("Z", "z")) or "+" in at[10:] else f"{at}Z"
    return choice


def _refusal(token: Token, authority: Authority, voter: Voter | None) -> DecisionRefused | None:
    if voter is None or authority.kind == "link":
        return DecisionRefused(
            '"Not now" is for one person: use your personal link from the e-mail, or the '
            "dashboard.",
            problem="anonymous",
            audit_action="put aside anonymously",
        )
    if authority.kind == "member" and not tenancy.role_allows(authority.role, "approve"):
        return DecisionRefused(
            "Only the people who may decide a request can put it aside.",
            problem="role",
            audit_action="put aside",
        )
    if authority.kind == "recipient" and voter.key not in {a.lower() for a in token.approvers}:
        return DecisionRefused(
            "Only the people this request was sent to can put it aside.",
            problem="not_approver",
            audit_action="put aside without being asked",
        )
    return None


def token_snooze(
    *,
    token: Token,
    actor: Actor,
    authority: Authority,
    voter: Voter | None,
    until: Any,
    now: datetime | None = None,
) -> Snooze:
    """A waiting request → aside for ``voter`` until ``until`` (a duration from now such as
    "4h", or an ISO-8601 date-time, within 365 days). Putting it aside again moves the time."""
    moment = now or timezone.now()
    refusal = _refusal(token, authority, voter)
    if refusal is not None:
        audit.record(token, TokenEvent.Kind.DENIED, actor, moment, action=refusal.audit_action)
        raise refusal
    assert voter is not None
    when = resolve_timeout(until, now=moment, field="until")
    with transaction.atomic():
        locked = Token.objects.select_for_update().filter(deadline.waiting_q(now), pk=token.pk)
        if not locked.exists():
            raise NotWaiting(f"{token.friendly_id} is no longer waiting: nothing to put aside.")
        snooze, _created = Snooze.objects.update_or_create(
            token=token,
            person=voter.key,
            defaults={"label": voter.label, "until": when, "created_at": moment},
        )
        _remind_when_back(token, voter, when, moment)
        audit.record(token, TokenEvent.Kind.SNOOZED, actor, moment, by=voter.label, until=iso(when))
    return snooze


def token_unsnooze(
    *, token: Token, actor: Actor, voter: Voter, now: datetime | None = None
) -> bool:
    """Back now: the request returns to ``voter``'s "waiting for me" (False: it was not aside)."""
    moment = now or timezone.now()
    with transaction.atomic():
        deleted, _ = Snooze.objects.filter(token=token, person=voter.key).delete()
        if deleted:
            audit.record(token, TokenEvent.Kind.UNSNOOZED, actor, moment, by=voter.label)
    return bool(deleted)


def _remind_when_back(token: Token, voter: Voter, until: datetime, now: datetime) -> None:
    """An e-mailed approver gets one reminder when the request comes back (if it still waits,
    they have not decided and have not put it aside again: ``approvals.token_remind``)."""
    if not Recipient.objects.filter(token=token, email__iexact=voter.key).exists():
        return
    payload = {"to": [voter.key], "aside_until": iso(until)}
    row = outbox.message(kind=OutboxMessage.Kind.REMINDER, token=token, payload=payload, now=now)
    row.next_attempt_at = until
    outbox.enqueue_many([row])


def aside_for(token: Token, now: datetime) -> dict[str, Snooze]:
    """The people who have this request aside at ``now``, by identity key."""
    return {s.person: s for s in Snooze.objects.filter(token=token, until__gt=now)}


def snooze_of(token: Token, voter: Voter | None, now: datetime) -> Snooze | None:
    """``voter``'s current "not now" on this request, if any."""
    if voter is None:
        return None
    return Snooze.objects.filter(token=token, person=voter.key, until__gt=now).first()
