"""Asynchronous delivery for the Agent Approval Protocol: receiver verification and the signed,
ID-only ``request.resolved`` events.

* **Verification** (``verify_receiver``): before an instance with delivery is created, or its
  delivery replaced, one signed ``webhook.verification`` message goes to the proposed URL; only
  ``200 {"challenge": <the challenge>}`` within the attempt's time limit (at most 10 s) passes.
  It goes through ``delivery.http_client``: public https targets only (unless
  ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``), checked after DNS resolution, connected to the checked
  address, no redirects.
* **Events** (``enqueue_events``, called by ``resolution.on_resolved`` in the resolving
  transaction): one ``request.resolved`` outbox row per request that becomes terminal while its
  instance has a receiver, so a restart cannot lose it. Its id and body are fixed when it is
  written; each attempt signs them afresh with the instance's *current* receiver and secret, so
  a replaced receiver gets the queued events, and a deleted instance or removed delivery ends
  them (``Skip``). Attempts are retried with exponential back-off and jitter until seven days
  after the decision, one at a time (the outbox's claim), respecting ``Retry-After`` on 429 and
  503 within that window.
* **Per destination host**, across instances, URL paths and provisioners: an event's outbox lane
  is its receiver's host (``host_lane``), so all events to one host share the lane's cap on
  attempts in flight (``WAITPOINTS_OUTBOX_LANE_CONCURRENCY``, across delivery processes) and
  its circuit breaker; more instances or other paths on the same host get no more. The
  project's cap (``WAITPOINTS_OUTBOX_TENANT_CONCURRENCY``) bounds a provisioning account's
  receivers together. An event held back by a cap or an open breaker is not claimed: it waits,
  keeping its attempts. An event whose instance moved to another host is put in that host's
  lane before anything is sent (``outbox.Moved``, no attempt counted).
* **Delivery rates per destination** (``admit_host``, ``admit_address``): every attempt toward a
  receiver, first or retry, event or verification, counts in a fixed window per host
  (``WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST``) and per resolved address
  (``WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS``: two names of one address, or many hosts behind
  one, share it), counted in the default cache so the limits hold across delivery and web
  processes. The address is counted where ``http_client`` has resolved and checked the one it
  will connect to (``on_address``). An event over a limit is deferred to the window's end
  (``outbox.Deferred``: no attempt spent, nothing told to the breaker); a verification over it
  is refused (``DestinationLimited``, 429 to the provisioner) before anything is sent. Events
  also count per provisioning account (``WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT``, the
  environment's instances together), as deferrable as the others.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tokens.delivery import http_client, outbox
from tokens.delivery.webhooks.signing import signed_headers
from tokens.domain import keys
from tokens.models import AapInstance, AapRequest, OutboxMessage, iso

logger = logging.getLogger(__name__)

USER_AGENT = "waitpoints-aap/1"
RETRY_WINDOW = timedelta(hours=168)  # seven days after decision.decided_at
ATTEMPT_LIMIT = 10.0  # seconds: the spec's bound on one attempt (verification included)
FIRST_DELAY = 5  # seconds, doubling …
LONGEST_DELAY = 3600  # … up to an hour between attempts
MAX_ATTEMPTS = 10_000  # the window ends delivery first (a week at one attempt an hour: ~180)
RETRY_AFTER_STATUSES = (429, 503)


class EventDeliveryFailed(Exception):
    """An attempt failed (the outbox retries the event later)."""


class DestinationLimited(Exception):  # noqa: N818 - a limit, not a failure
    """A destination (host or address) had its delivery rate's worth this window: nothing was
    sent; ``retry_at`` (unix seconds) is when its next window starts."""

    def __init__(self, what: str, retry_at: float) -> None:
        super().__init__(f"Not sent yet: the delivery rate of this receiver's {what} is spent")
        self.retry_at = retry_at

    @property
    def not_before(self) -> datetime:
        return datetime.fromtimestamp(self.retry_at, tz=UTC)

    def retry_after(self) -> int:
        """Whole seconds until the next window (the ``Retry-After`` of a refusal)."""
        return max(1, math.ceil(self.retry_at - window_clock()))


# ------------------------------------------------------------------------------------------------
# Delivery rates per destination: fixed windows counted in the default cache
# ------------------------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
# Redis increments atomically; the database cache's incr reads then writes, so the threads of
# one delivery process take turns (processes on one embedded host may still undercount by a few).
_count_lock = threading.Lock()
window_clock = time.time  # the windows' clock (tests move it instead of sleeping)


def parse_rate(value: str) -> tuple[int, int] | None:
    """``"60/1m"`` → (60, 60 s); ``""`` or ``"off"`` → no limit; ValueError otherwise (the
    format of the service's other rate settings)."""
    if value.strip().lower() in ("", "off", "none"):
        return None
    match = _RATE.match(value)
    if not match or int(match.group(1)) < 1 or int(match.group(2) or 1) < 1:
        raise ValueError(f"{value!r} is not a rate such as 60/1m (count/period in s, m or h)")
    return int(match.group(1)), int(match.group(2) or 1) * _UNIT_SECONDS[match.group(3)]


def _count(what: str, subject: str, setting: str) -> None:
    """Count one attempt toward ``subject`` in its current window; DestinationLimited once the
    window holds more than the rate allows. A cache that is down lets traffic pass (logged), as
    the service's other rate limits do: the in-flight cap per host still holds."""
    rate = parse_rate(str(getattr(settings, setting, "") or ""))
    if rate is None:
        return
    limit, period = rate
    window = int(window_clock() // period)
    namespace = getattr(settings, "WAITPOINTS_RATELIMIT_NAMESPACE", "rl")
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]  # any length fits a cache key
    key = f"{namespace}:aap-destination:{what}:{digest}:{period}:{window}"
    cache = caches["default"]
    atomic = settings.CACHES["default"].get("BACKEND") == REDIS_CACHE
    try:
        with contextlib.nullcontext() if atomic else _count_lock:
            cache.add(key, 0, timeout=period * 2)
            count = int(cache.incr(key))
    except ValueError:  # it expired between add and incr: a window long gone, start anew
        return
    except Exception as error:  # noqa: BLE001 - fail open, as every counter store does
        logger.warning("AAP delivery rates unavailable (%s: %s)", type(error).__name__, error)
        return
    if count > limit:
        raise DestinationLimited(what, (window + 1) * period)


def admit_account(environment_id: int) -> None:
    """One event attempt of a provisioning account (the environment: all its instances and
    receivers together), or DestinationLimited. Its verifications have their own limit."""
    _count("account", str(environment_id), "WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT")


def admit_host(host: str) -> None:
    """One attempt toward ``host`` (every instance, path and port on it), or DestinationLimited."""
    _count("host", host, "WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST")


def admit_address(address: str) -> None:
    """One attempt toward the resolved ``address`` (whichever names lead to it), or
    DestinationLimited. An IPv4-mapped IPv6 address counts as its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    _count("address", str(ip), "WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS")


def new_secret_ok(secret: str) -> bool:
    """Whether ``secret`` is a Standard Webhooks secret of exactly 32 bytes (``whsec_…``)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32 and base64.b64encode(raw).decode() == secret[len("whsec_") :]


def verify_receiver(*, url: str, registration_id: str, secret: str, instance_id: str) -> bool:
    """Send one signed verification message; True only for 200 with the exact challenge.
    DestinationLimited, with nothing sent, when the destination's delivery rate is spent."""
    message_id, challenge = str(uuid.uuid4()), str(uuid.uuid4())
    body = json.dumps(
        {
            "id": message_id,
            "type": "webhook.verification",
            "registration_id": registration_id,
            "instance_id": instance_id,
            "created_at": iso(timezone.now()),
            "challenge": challenge,
        },
        separators=(",", ":"),
    )
    headers = signed_headers(
        secret=secret, webhook_id=message_id, timestamp=datetime.now(tz=UTC), body=body
    )
    admit_host(destination_host(url))
    attempt = http_client.post(
        url, body=body.encode(), headers=headers, user_agent=USER_AGENT, on_address=admit_address
    )
    if attempt.status_code != 200 or attempt.error:
        return False
    try:
        answer = json.loads(attempt.response_excerpt)
    except ValueError:
        return False
    return answer == {"challenge": challenge}


def enqueue_events(token_ids: Sequence[str], *, now: datetime) -> int:
    """In the resolving transaction: one event per newly terminal request whose instance has a
    receiver (none for an instance being deleted: its row says so before it cancels)."""
    rows = list(
        AapRequest.objects.filter(
            token_id__in=list(token_ids),
            event_id__isnull=True,
            instance__deleted_at__isnull=True,
        )
        .exclude(instance__delivery_url="")
        .values_list(
            "pk", "instance_id", "token_id", "token__completed_at", "instance__delivery_url"
        )
    )
    messages = []
    for request_id, instance_id, token_id, decided_at, url in rows:
        event_id = uuid.uuid4()
        if not AapRequest.objects.filter(pk=request_id, event_id__isnull=True).update(
            event_id=event_id
        ):
            continue
        created_at = iso(decided_at or now)
        body = json.dumps(
            {
                "id": str(event_id),
                "type": "request.resolved",
                "instance_id": str(instance_id),
                "request_id": str(request_id),
                "created_at": created_at,
            },
            separators=(",", ":"),
        )
        messages.append(
            outbox.message(
                kind=OutboxMessage.Kind.AAP_EVENT,
                token=token_id,
                payload={
                    "event_id": str(event_id),
                    "instance_id": str(instance_id),
                    "request_id": str(request_id),
                    "created_at": created_at,
                    "body": body,
                    "host": destination_host(url),  # its lane (attempts read the instance)
                },
                now=now,
            )
        )
    outbox.enqueue_many(messages)
    return len(messages)


def backoff(attempts: int) -> timedelta:
    """After the n-th failed attempt: 5 s, 10 s, 20 s, … up to an hour, each ±20 %."""
    base = min(FIRST_DELAY * 2 ** max(attempts - 1, 0), LONGEST_DELAY)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not secrecy


def _retry_after(value: str, now: datetime) -> datetime | None:
    text = value.strip()
    if text.isdigit():
        return now + timedelta(seconds=min(int(text), int(RETRY_WINDOW.total_seconds())))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def destination_host(url: str) -> str:
    """The host events to ``url`` count against (as verifications do): any path or port."""
    return (urlsplit(url).hostname or "").lower()


def host_lane(host: str) -> str:
    """One lane per receiver host: its concurrency cap and circuit breaker hold for every
    instance and path on it, and one slow host holds no other host's events. A host too long
    for the lane column is named by its digest, so two long hosts never share a lane."""
    lane = f"aap:host:{host}"
    if len(lane) > (OutboxMessage._meta.get_field("lane").max_length or 0):
        lane = f"aap:host#{hashlib.sha256(host.encode()).hexdigest()}"
    return lane


def _lane(payload: dict[str, Any]) -> str:
    return host_lane(str(payload.get("host", "")))


@outbox.handler(
    OutboxMessage.Kind.AAP_EVENT, max_attempts=MAX_ATTEMPTS, backoff=backoff, lane=_lane
)
def deliver_event(message: OutboxMessage) -> None:
    """One attempt at one event, to the instance's receiver as configured now."""
    payload = message.payload
    instance = AapInstance.objects.filter(pk=payload["instance_id"]).first()
    if instance is None or instance.deleted_at is not None:
        raise outbox.Skip("the AAP instance was deleted.")
    if not instance.delivery_url:
        raise outbox.Skip("the AAP instance has no receiver any more.")
    decided_at = parse_datetime(payload["created_at"])
    now = timezone.now()
    if decided_at is None or now + timedelta(seconds=ATTEMPT_LIMIT) > decided_at + RETRY_WINDOW:
        raise outbox.Skip("the seven-day delivery window has ended.")
    host = destination_host(instance.delivery_url)
    lane = host_lane(host)
    if message.lane != lane:  # its receiver moved host: that host's cap and breaker, not this
        raise outbox.Moved(lane)
    secret = keys.decrypt(instance.encrypted_signing_secret)
    if secret is None:
        raise EventDeliveryFailed("cannot decrypt the receiver's secret: SECRET_KEY changed?")
    body: str = payload["body"]
    headers = signed_headers(
        secret=secret, webhook_id=payload["event_id"], timestamp=datetime.now(tz=UTC), body=body
    )
    try:
        admit_account(instance.environment_id)
        admit_host(host)
        attempt = http_client.post(
            instance.delivery_url,
            body=body.encode(),
            headers=headers,
            user_agent=USER_AGENT,
            on_address=admit_address,
        )
    except DestinationLimited as limited:  # not an attempt: the next window, at no cost
        raise outbox.Deferred(str(limited), not_before=limited.not_before) from None
    if attempt.succeeded:
        return
    if attempt.status_code in RETRY_AFTER_STATUSES and attempt.retry_after:
        not_before = _retry_after(attempt.retry_after, now)
        if not_before is not None:
            raise outbox.RetryLater(attempt.error, not_before=not_before)
    raise EventDeliveryFailed(attempt.error)


def attempt_limit_ok() -> bool:
    """Whether the configured total timeout keeps each attempt within the spec's 10 s."""
    return float(settings.WEBHOOKS_TOTAL_TIMEOUT) <= ATTEMPT_LIMIT
