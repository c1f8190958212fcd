"""The outbox handlers for Slack: the worker's only calls to Slack's Web API.

Each runs with no transaction open and may run twice for one outbox row (a worker that dies
after sending; a lease that lapsed), so each is idempotent:

* **post** records the message's ``ts`` once (a conditional UPDATE); a row that already has one
  is updated in place instead of posted again, and a post that lost the race to record its ts
  (two workers at once) deletes its own copy;
* **update** renders the token as it is *now* and repeats until what it showed is still the
  current state, so updates that arrive out of order at Slack end on the latest state; the post
  does the same after recording its ts, so a resolution between the post and its record is
  never missed;
* **reply** (reminders, escalations in the message's thread) records each reply's ts under its
  key, and a second copy deletes itself.

A 429 is honoured with the wait Slack names: the message continues as a new outbox row due
after ``Retry-After`` (this row is closed saying so), so the wait costs no attempt and holds no
worker. Every other failure is retried on ``RETRY_DELAYS`` (about 35 hours in all), so an
outage of hours loses nothing; after that support staff can retry from the admin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from tokens.delivery import outbox
from tokens.delivery.slack import api, blocks, people
from tokens.delivery.slack.channel import connection_for
from tokens.domain import audit
from tokens.domain.actors import Actor
from tokens.models import OutboxMessage, SlackMessage, TokenEvent, iso

RETRY_DELAYS = [
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=6),
    timedelta(hours=8),
    timedelta(hours=12),
]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
SLACK_CONCURRENCY = 8  # Slack calls in flight at once (Slack rate-limits per method and team)
GONE = {"message_not_found", "cant_update_message", "channel_not_found", "is_archived"}
Send = Callable[[OutboxMessage], None]


def _retry_after(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


def _honouring_rate_limits(send: Send) -> Send:
    """On a 429: the same work as a new row due when Slack said, and this row closed."""

    def guarded(message: OutboxMessage) -> None:
        try:
            send(message)
        except api.RateLimited as limited:
            now = timezone.now()
            payload = {**message.payload, "continues": message.pk}
            later = outbox.message(
                kind=message.kind, token=message.token_id, payload=payload, now=now
            )
            later.next_attempt_at = now + timedelta(seconds=limited.seconds)
            (queued,) = outbox.enqueue_many([later])
            raise outbox.Skip(
                f"{limited}; continued as outbox message {queued.pk}, due "
                f"{iso(later.next_attempt_at)}"
            ) from None

    guarded.__doc__ = send.__doc__
    return guarded


def _lane(_payload: dict[str, Any]) -> str:
    # One receiver (Slack's Web API) for every workspace: one lane, so a slow Slack holds its own
    # slots only; each project's share is bounded by the per-tenant cap.
    return "slack"


def handler(kind: str, **options: Any) -> Callable[[Send], Send]:
    def register(send: Send) -> Send:
        options.setdefault("lane", _lane)
        options.setdefault("concurrency", SLACK_CONCURRENCY)
        outbox.handler(kind, **options)(_honouring_rate_limits(send))
        return send

    return register


def _row(message: OutboxMessage) -> SlackMessage:
    row = (
        SlackMessage.objects.select_related("connection", "token")
        .filter(pk=message.payload.get("message"))
        .first()
    )
    if row is None:
        raise outbox.Skip("Slack was disconnected from this environment.")
    if not row.connection.enabled:
        raise outbox.Skip("the Slack connection is paused.")
    return row


def _channel(target: str) -> str:
    return target if target[:1] in ("C", "G") and target.isupper() else f"#{target}"


def _destination(row: SlackMessage) -> str:
    """Where chat.postMessage sends the message: a channel, or the approver's Slack user."""
    if row.target_kind == SlackMessage.Target.CHANNEL:
        return _channel(row.target)
    user_id = people.user_id_for(row.connection, row.target)
    if user_id is None:
        audit.record(
            row.token, TokenEvent.Kind.SLACK_NO_ACCOUNT, Actor.system(), timezone.now(),
            to=row.target,
        )  # fmt: skip
        raise outbox.Skip(
            f"{row.target} has no Slack account in this workspace; they were asked by e-mail."
        )
    return user_id


def _delete(row: SlackMessage, channel: str, ts: str) -> None:
    api.call(row.connection, "chat.delete", lambda web: web.chat_delete(channel=channel, ts=ts))


def refresh(row: SlackMessage) -> None:
    """Show the token's current state in the posted message; again if it changed meanwhile."""
    shown = row.rendered
    for _round in range(3):
        view = blocks.view_of(row.token_id)
        if view.key == shown:
            return
        text, content = blocks.message(view)

        def update(web: WebClient, text: str = text, content: Any = content) -> SlackResponse:
            return web.chat_update(channel=row.channel_id, ts=row.ts, text=text, blocks=content)

        try:
            api.call(row.connection, "chat.update", update)
        except api.SlackCallFailed as failure:
            if failure.code in GONE:
                raise outbox.Skip(f"the message cannot be updated: {failure}") from None
            raise
        shown = view.key
        SlackMessage.objects.filter(pk=row.pk).update(rendered=shown, updated_at=timezone.now())


def _posted(message: OutboxMessage, now: datetime) -> None:
    row = SlackMessage.objects.filter(pk=message.payload.get("message")).first()
    where = row.target if row else "Slack"
    audit.record(message.token, TokenEvent.Kind.SLACK_POSTED, Actor.system(), now, to=where)


def _gave_up(message: OutboxMessage, now: datetime) -> None:
    row = SlackMessage.objects.filter(pk=message.payload.get("message")).first()
    audit.record(
        message.token, TokenEvent.Kind.SLACK_FAILED, Actor.system(), now,
        to=row.target if row else "Slack", error=message.last_error,
    )  # fmt: skip


@handler(
    OutboxMessage.Kind.SLACK_POST,
    max_attempts=MAX_ATTEMPTS,
    backoff=_retry_after,
    on_delivered=_posted,
    on_gave_up=_gave_up,
)
def post_request(message: OutboxMessage) -> None:
    """Post the request (once) to its channel or its approver; then show any change since."""
    row = _row(message)
    if row.ts:
        refresh(row)  # posted by an earlier copy of this message: update it instead
        return
    view = blocks.view_of(row.token_id)
    if not view.waiting:
        raise outbox.Skip("the token was resolved before Slack could be asked.")
    destination = _destination(row)
    text, content = blocks.message(view)
    metadata = {"event_type": "waitpoint_request", "event_payload": {"token": row.token_id}}
    data = api.call(
        row.connection,
        "chat.postMessage",
        lambda web: web.chat_postMessage(
            channel=destination,
            text=text,
            blocks=content,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
        ),
    )
    channel, ts = str(data.get("channel") or ""), str(data.get("ts") or "")
    recorded = SlackMessage.objects.filter(pk=row.pk, ts="").update(
        channel_id=channel, ts=ts, rendered=view.key, posted_at=timezone.now()
    )
    if not recorded:  # another copy of this message posted and recorded first: ours goes
        _delete(row, channel, ts)
        return
    row.channel_id, row.ts, row.rendered = channel, ts, view.key
    refresh(row)


@handler(OutboxMessage.Kind.SLACK_UPDATE, max_attempts=MAX_ATTEMPTS, backoff=_retry_after)
def update_message(message: OutboxMessage) -> None:
    """Update the posted message in place (votes so far; the outcome, buttons gone)."""
    row = _row(message)
    if not row.ts:
        raise outbox.Skip("not posted yet: the post shows the state it finds.")
    refresh(row)


@handler(OutboxMessage.Kind.SLACK_REPLY, max_attempts=MAX_ATTEMPTS, backoff=_retry_after)
def reply_in_thread(message: OutboxMessage) -> None:
    """A reminder or an escalation, as a reply in the message's thread (once per key)."""
    row = _row(message)
    key = str(message.payload.get("key") or message.pk)
    if key in row.replies:
        return
    if not row.ts:
        raise api.SlackError("chat.postMessage", "the message is not posted yet; retried later")
    if not blocks.view_of(row.token_id).waiting:
        raise outbox.Skip("the token was resolved: no follow-up needed.")
    addresses = [str(a) for a in message.payload.get("addresses") or []]
    text = blocks.reply(
        str(message.payload.get("purpose") or "reminder"),
        addresses=addresses,
        user_ids=people.user_ids_known(row.connection, addresses),
        direct=row.target_kind == SlackMessage.Target.DIRECT,
    )
    data = api.call(
        row.connection,
        "chat.postMessage",
        lambda web: web.chat_postMessage(channel=row.channel_id, thread_ts=row.ts, text=text),
    )
    with transaction.atomic():
        locked = SlackMessage.objects.select_for_update().get(pk=row.pk)
        duplicate = key in locked.replies
        if not duplicate:
            locked.replies = {**locked.replies, key: str(data.get("ts") or "")}
            locked.save(update_fields=["replies"])
    if duplicate:
        _delete(row, row.channel_id, str(data.get("ts") or ""))


@handler(OutboxMessage.Kind.SLACK_NOTICE, max_attempts=4, backoff=outbox.exponential(5))
def send_notice(message: OutboxMessage) -> None:
    """A note only the clicker sees (why their click did not count, or what it did)."""
    connection = connection_for(message.token.environment_id)
    if connection is None:
        raise outbox.Skip("Slack is not connected (or paused) for this environment.")
    payload = message.payload
    api.call(
        connection,
        "chat.postEphemeral",
        lambda web: web.chat_postEphemeral(
            channel=str(payload["channel"]), user=str(payload["user"]), text=str(payload["text"])
        ),
    )
