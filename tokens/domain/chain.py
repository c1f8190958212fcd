"""The audit trail as a hash chain: each event's digest covers its content and the digest of
the event before it in its token's trail, so a changed, removed or reordered event shows.

    content_digest = sha256(canonical JSON of the event's content)         (hex)
    digest         = sha256("<previous digest>|<seq>|<token id>|<content_digest>")  (hex)

``seq`` counts a token's events from 1; the first event's previous digest is "". The content
is what ``content`` returns (the keys of an export line, ``export_line``), as canonical JSON:
keys sorted, no spaces, UTF-8. The token row keeps the head (``audit_seq``, ``audit_head``), so
removing the last events shows too. The writers live where events are written
(``tokens.persistence.fast_paths``: PostgreSQL computes the link in the same statement that
inserts the event, under the token's row lock); ``verify`` reads a trail back.

Plain SHA-256, no key: anyone holding an export can check it. It proves the trail was not
edited after the fact by someone who did not also recompute every later digest; an export kept
elsewhere (or the head shown on the token page) pins the history up to that point.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from tokens.domain import keys
from tokens.models import Token, TokenEvent

GENESIS = ""


def actor_ref(*, api_key_id: int | None, user_id: int | None) -> str:
    """What the digest records of who acted (the foreign keys may be cleared later)."""
    parts = ([f"key:{api_key_id}"] if api_key_id else []) + ([f"user:{user_id}"] if user_id else [])
    return " ".join(parts)


def timestamp(moment: datetime) -> str:
    """An event's time as the digest covers it: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ip(value: str | None) -> str | None:
    # PostgreSQL's inet and Python spell some addresses differently (IPv4-mapped IPv6).
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _normal(value: Any) -> Any:
    """JSON as it reads back from the database: integral floats as integers (jsonb writes
    ``1.0`` back as it came, but other numbers may come back in another spelling)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(item) for item in value]
    return value


def content(event: TokenEvent) -> dict[str, Any]:
    """What an event's digest covers (besides its place in the chain)."""
    return {
        "kind": event.kind,
        "channel": event.channel,
        "credential": event.credential or "",
        "actor": event.actor_ref or "",
        "ip": _ip(event.ip),
        "userAgent": event.user_agent or "",
        "email": event.email or "",
        "detail": _normal(json.loads(json.dumps(event.detail or {}))),
        "createdAt": timestamp(event.created_at),
    }


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_digest(event: TokenEvent) -> str:
    return hashlib.sha256(canonical(content(event))).hexdigest()


def link(previous: str, seq: int, token_id: str, content_hex: str) -> str:
    """The digest of event ``seq`` of token ``token_id`` (fast_paths spells it in SQL too)."""
    return hashlib.sha256(f"{previous}|{seq}|{token_id}|{content_hex}".encode()).hexdigest()


def export_line(event: TokenEvent, *, previous: str | None = None) -> dict[str, Any]:
    """One line of a JSON Lines export: the content, the event's place and its digest
    (``previous``: the digest before it, or the ``previous`` its read annotated)."""
    if previous is None:
        previous = getattr(event, "previous", GENESIS)
    return {
        "token": keys.friendly_id(event.token_id),
        "seq": event.seq,
        "id": event.pk,
        **content(event),
        "actorLabel": event.actor_label,
        "previous": previous,
        "digest": event.digest,
    }


JSONL_MEDIA_TYPE = "application/jsonl"


def jsonl(events: Iterable[TokenEvent]) -> Iterator[str]:
    """An export, one JSON object per line (``export_line``)."""
    for event in events:
        yield json.dumps(export_line(event), ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class Break:
    """The first event of a trail that does not match (``seq`` 0: the trail's head)."""

    token_id: str
    seq: int
    event_id: int | None
    kind: str
    reason: str

    def __str__(self) -> str:
        where = (
            f"event #{self.seq} (id {self.event_id}, {self.kind})"
            if self.event_id is not None
            else "its chain head"
        )
        return f"{keys.friendly_id(self.token_id)}: {where}: {self.reason}"


def events_in_order(token: Token) -> QuerySet[TokenEvent]:
    return (
        TokenEvent.objects.filter(token_id=token.pk)
        .select_related("user", "api_key")
        .order_by("seq")
    )


def verify(token: Token, events: Iterable[TokenEvent] | None = None) -> Break | None:
    """None when the token's trail matches its digests and its head; else the first break."""
    previous, expected = GENESIS, 1
    for event in events_in_order(token) if events is None else events:
        problem = _problem(token.pk, event, previous, expected)
        if problem:
            return Break(token.pk, event.seq, event.pk, event.kind, problem)
        previous, expected = event.digest, expected + 1
    if token.audit_seq != expected - 1 or token.audit_head != previous:
        return Break(
            token.pk,
            expected - 1,
            None,
            "",
            f"the token records {token.audit_seq} events ending in {token.audit_head[:12] or '–'}"
            f", the trail has {expected - 1} ending in {previous[:12] or '–'}: events were "
            "removed or added at its end",
        )
    return None


def _problem(token_id: str, event: TokenEvent, previous: str, expected: int) -> str:
    if event.seq != expected:
        return f"expected event #{expected} here: an event is missing or out of order"
    ref = set((event.actor_ref or "").split())
    for name, value in (("key", event.api_key_id), ("user", event.user_id)):
        if value is not None and f"{name}:{value}" not in ref:
            return f"its {name} ({value}) is not the one recorded"
    if link(previous, event.seq, token_id, content_digest(event)) != event.digest:
        return "its digest does not match its content and the previous event"
    return ""


def verify_lines(lines: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Problems in an export (per token, consecutive lines must link up); empty when it checks."""
    last: dict[str, tuple[int, str]] = {}
    for line in lines:
        token = keys.parse_token_id(line["token"]) or line["token"]
        body = {name: line[name] for name in CONTENT_KEYS}
        expected = link(
            line["previous"], line["seq"], token, hashlib.sha256(canonical(body)).hexdigest()
        )
        if expected != line["digest"]:
            yield f"{line['token']} event #{line['seq']}: digest does not match"
        seen = last.get(token)
        if seen is not None and (seen[0] + 1 != line["seq"] or seen[1] != line["previous"]):
            yield f"{line['token']} event #{line['seq']}: does not follow event #{seen[0]}"
        last[token] = (line["seq"], line["digest"])


CONTENT_KEYS = (
    "kind",
    "channel",
    "credential",
    "actor",
    "ip",
    "userAgent",
    "email",
    "detail",
    "createdAt",
)
