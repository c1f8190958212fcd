"""Asking people: approval e-mails with personal links, reminders, escalation, revoking a link.

Chat messages follow the same moments (``tokens.delivery.chat``): reminders and escalations
are also replies in the thread of each Slack message of the token.

The e-mails go through the outbox (``tokens.delivery.emails`` sends them); a reminder or an
escalation is a scheduled outbox row that, when it falls due, calls ``token_remind`` or
``token_escalate`` here, which act only while the token still waits (``deadline.waiting_q``,
on the database's clock).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tokens.delivery import chat, outbox
from tokens.domain import audit, deadline, outcomes
from tokens.domain.actors import Actor
from tokens.domain.inputs import FollowUps
from tokens.models import OutboxMessage, Recipient, Snooze, Token, TokenEvent, Vote, iso


def enqueue_approval_emails(
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


def schedule_follow_ups(token: Token, follow_ups: FollowUps, now: datetime) -> None:
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


def schedule_deadline_escalation(token: Token, plan: outcomes.Plan, now: datetime) -> None:
    """``onTimeout`` escalate: at the first deadline, ask more people (by the deadline rule)."""
    if plan.escalate_at is None:
        return
    payload = {"to": list(plan.escalate_to), "rule": "onTimeout"}
    row = outbox.message(kind=OutboxMessage.Kind.ESCALATION, token=token, payload=payload, now=now)
    row.next_attempt_at = plan.escalate_at
    outbox.enqueue_many([row])


@transaction.atomic
def token_resend_approval_emails(*, token: Token, now: datetime | None = None) -> int:
    """Queue the approval e-mails of a WAITING token again (admin action)."""
    now = now or timezone.now()
    if not deadline.is_waiting(token, now) or not token.approvers:
        return 0
    return enqueue_approval_emails(token, list(token.approvers), now)


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


def _undecided(token: Token, now: datetime) -> list[str]:
    """The e-mailed approvers who have not voted (all of them while a 1-approval token waits)
    and have not put it aside ("not now", tokens.domain.snoozes) past ``now``."""
    voted = set(Vote.objects.filter(token=token).values_list("voter", flat=True))
    aside = set(Snooze.objects.filter(token=token, until__gt=now).values_list("person", flat=True))
    return [
        recipient.email
        for recipient in Recipient.objects.filter(token=token, revoked_at__isnull=True)
        if recipient.email.lower() not in voted | aside
    ]


def _lock_waiting(token: Token, now: datetime | None) -> Token | None:
    """The token, locked, if it still waits (on the database's clock); None otherwise."""
    return Token.objects.select_for_update().filter(deadline.waiting_q(now), pk=token.pk).first()


def token_remind(
    *,
    token: Token,
    now: datetime | None = None,
    only: list[str] | None = None,
    aside_until: str | None = None,
) -> int:
    """One reminder e-mail to each approver who has not decided; 0 if the token was resolved.

    ``only``: these addresses alone (a request coming back from "not now"); ``aside_until``:
    the moment it was put aside until, so that a reminder for a time the person has since
    moved (or cleared) is not sent."""
    with transaction.atomic():
        locked = _lock_waiting(token, now)
        if locked is None:
            return 0
        now = now or timezone.now()
        addresses = _undecided(locked, now)
        if only is not None:
            wanted = {address.lower() for address in only}
            if aside_until is not None:
                still = Snooze.objects.filter(token=locked, person__in=wanted)
                wanted = {s.person for s in still if iso(s.until) == aside_until}
            addresses = [a for a in addresses if a.lower() in wanted]
            if not addresses:
                return 0
        queued = enqueue_approval_emails(locked, addresses, now, purpose="reminder")
        chat.followed_up(locked, purpose="reminder", addresses=addresses, now=now)
        audit.record(locked, TokenEvent.Kind.REMINDED, Actor.system(), now, to=addresses)
        return queued


def token_escalate(
    *, token: Token, addresses: list[str], now: datetime | None = None, by_rule: bool = False
) -> int:
    """Ask more people: they become approvers of the token (with links of their own).
    ``by_rule``: the deadline rule escalates (``onTimeout``), recorded as its act."""
    with transaction.atomic():
        locked = _lock_waiting(token, now)
        if locked is None:
            return 0
        now = now or timezone.now()
        new = [a for a in addresses if a not in locked.approvers]
        if new:
            Token.objects.filter(pk=locked.pk).update(approvers=[*locked.approvers, *new])
        queued = enqueue_approval_emails(locked, new, now, purpose="escalation")
        if new:
            chat.followed_up(locked, purpose="escalation", addresses=new, now=now)
        actor = outcomes.rule_actor() if by_rule else Actor.system()
        detail = {"rule": "onTimeout"} if by_rule else {}
        audit.record(locked, TokenEvent.Kind.ESCALATED, actor, now, to=new, **detail)
        return queued
