"""Webhooks: endpoints per environment, events enqueued with each resolution, signed delivery.

Writes (``webhook_endpoint_*``) and scoped reads live here, next to the delivery they feed;
adapters (API, dashboard, admin, the outbox worker) call these functions and nothing else.

* Events are written to the outbox in the transaction that resolves the token
  (:func:`enqueue_for_resolution`), one message per event and endpoint, so a slow or failing
  endpoint never holds up another, and nothing is lost while Redis or the worker is down.
* :func:`deliver_webhook` sends one message, outside any transaction, signed per the Standard
  Webhooks specification (the ``standardwebhooks`` package) with a ``webhook-id`` that stays
  the same across retries; every attempt is recorded as a :class:`WebhookDelivery`.
* Targets must be http(s) and, unless ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``, public: checked at
  creation and again at delivery, after DNS resolution, and the connection goes to the address
  that was checked (no second lookup a rebinding DNS server could answer differently).
  Redirects are not followed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from standardwebhooks import Webhook

from tokens.delivery import outbox
from tokens.domain import keys, links
from tokens.domain.exceptions import InvalidInput, NotFound
from tokens.domain.representation import TokenOutputSerializer
from tokens.models import (
    WEBHOOK_PREFIX,
    Environment,
    OutboxMessage,
    Token,
    WebhookDelivery,
    WebhookEndpoint,
    iso,
)

Event = WebhookEndpoint.Event
ALL_EVENTS: list[str] = list(Event.values)
EVENT_FOR_STATUS: dict[str, str] = {
    Token.Status.COMPLETED: Event.COMPLETED,
    Token.Status.TIMED_OUT: Event.TIMED_OUT,
    Token.Status.CANCELLED: Event.CANCELLED,
}
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_ENDPOINTS_PER_ENVIRONMENT = 20
EXCERPT_LENGTH = 1000  # characters of the response body kept per attempt
USER_AGENT = "waitpoints-webhooks/1"
# After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the schedule Standard
# Webhooks' reference implementation uses): eight attempts over about 27 hours.
RETRY_DELAYS = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


class WebhookDeliveryFailed(Exception):
    """An attempt failed (the outbox retries the message later)."""


class TargetRefused(Exception):
    """The target may not be contacted (scheme, private address, unresolvable host)."""


# ------------------------------------------------------------------------------------------------
# Secrets and signatures
# ------------------------------------------------------------------------------------------------


def generate_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes, the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    secret = keys.decrypt(endpoint.encrypted_secret)
    if secret is None:
        raise RuntimeError(
            f"cannot decrypt the secret of webhook {endpoint.pk}: SECRET_KEY changed?"
        )
    return secret


def signed_headers(
    *, secret: str, webhook_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """The three Standard Webhooks headers for this body."""
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


# ------------------------------------------------------------------------------------------------
# Target validation
# ------------------------------------------------------------------------------------------------


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _split_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL; InvalidInput saying what is wrong otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("Invalid url: expected an http:// or https:// URL.")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"Invalid url: at most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput("Invalid url: it cannot be parsed.") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("Invalid url: only http:// and https:// URLs are accepted.")
    if not parts.hostname:
        raise InvalidInput("Invalid url: it has no host.")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("Invalid url: credentials in the URL are not accepted.")
    if any(ch.isspace() for ch in url.strip()):
        raise InvalidInput("Invalid url: it contains whitespace.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_target(host: str, port: int) -> list[str]:
    """The addresses to connect to; TargetRefused when none may be used.

    Every address the name resolves to must be allowed: one private answer among public ones
    is refused as a whole, rather than hoping the connection picks a public one.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"cannot resolve {host}: {error}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        refused = [address for address in addresses if not _address_allowed(address)]
        if refused:
            raise TargetRefused(
                f"{host} resolves to a loopback, link-local or private address ({refused[0]}); "
                "such targets are refused"
            )
    if not addresses:
        raise TargetRefused(f"cannot resolve {host}")
    return addresses


def clean_url(url: Any) -> str:
    """An acceptable target URL, checked as at delivery time: http(s), and unless private
    targets are allowed, no loopback, link-local or private address (literal or resolved).
    A name that does not resolve yet is accepted; delivery checks again."""
    _scheme, host, port = _split_target(url)
    cleaned = str(url).strip()
    if settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        return cleaned
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not _address_allowed(str(literal)):
        raise InvalidInput(
            "Invalid url: loopback, link-local and private addresses are not accepted."
        )
    try:
        resolve_target(host, port)
    except TargetRefused as refused:
        if "resolves to" in str(refused):
            raise InvalidInput(
                "Invalid url: the host resolves to a loopback, link-local or private address, "
                "which is not accepted."
            ) from None
    return cleaned


def clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise InvalidInput(f"Invalid events: expected an array of {', '.join(ALL_EVENTS)}.")
    unknown = [e for e in events if e not in ALL_EVENTS]
    if unknown:
        raise InvalidInput(
            f"Invalid events: unknown event {unknown[0]!r}; use {', '.join(ALL_EVENTS)}."
        )
    if not events:
        raise InvalidInput("Invalid events: subscribe to at least one event.")
    return [e for e in ALL_EVENTS if e in events]  # canonical order, no duplicates


def clean_description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            "Invalid description: expected a string of at most "
            f"{MAX_DESCRIPTION_LENGTH} characters."
        )
    return description.strip()


def clean_enabled(enabled: Any) -> bool:
    if not isinstance(enabled, bool):
        raise InvalidInput("Invalid enabled: expected true or false.")
    return enabled


# ------------------------------------------------------------------------------------------------
# Endpoints: writes
# ------------------------------------------------------------------------------------------------

UNSET: Any = object()


@transaction.atomic
def webhook_endpoint_create(
    *,
    environment: Environment,
    url: Any,
    events: Any = UNSET,
    description: Any = "",
    enabled: Any = True,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Nothing → an endpoint; its signing secret is returned once and kept only encrypted."""
    now = now or timezone.now()
    values = {
        "url": clean_url(url),
        "events": ALL_EVENTS if events is UNSET else clean_events(events),
        "description": clean_description(description),
        "enabled": clean_enabled(enabled),
    }
    # Lock the environment row so concurrent creates cannot both pass the count.
    Environment.objects.select_for_update().filter(pk=environment.pk).first()
    if environment.webhook_endpoints.count() >= MAX_ENDPOINTS_PER_ENVIRONMENT:
        raise InvalidInput(
            f"Too many webhook endpoints: at most {MAX_ENDPOINTS_PER_ENVIRONMENT} per environment."
        )
    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        environment=environment,
        encrypted_secret=keys.encrypt(secret),
        created_at=now,
        updated_at=now,
        **values,
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: Any = UNSET,
    events: Any = UNSET,
    description: Any = UNSET,
    enabled: Any = UNSET,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change the given fields; the others stay as they are."""
    changes: dict[str, Any] = {}
    if url is not UNSET:
        changes["url"] = clean_url(url)
    if events is not UNSET:
        changes["events"] = clean_events(events)
    if description is not UNSET:
        changes["description"] = clean_description(description)
    if enabled is not UNSET:
        changes["enabled"] = clean_enabled(enabled)
    changes["updated_at"] = now or timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**changes)
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> str:
    """A new signing secret, returned once; messages not yet delivered are signed with it."""
    secret = generate_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        encrypted_secret=keys.encrypt(secret), updated_at=now or timezone.now()
    )
    endpoint.refresh_from_db()
    return secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery history; its undelivered events are dropped."""
    OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.WEBHOOK,
        payload__endpoint=endpoint.pk,
        delivered_at__isnull=True,
        failed_at__isnull=True,
    ).delete()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


def webhook_endpoint_retry_undelivered(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> int:
    """Every failed or pending event of this endpoint → due now (support staff: "retry now")."""
    count = 0
    for message in webhook_messages_undelivered(endpoint=endpoint):
        count += outbox.retry(message=message, now=now)
    return count


# ------------------------------------------------------------------------------------------------
# Endpoints: scoped reads
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


# ------------------------------------------------------------------------------------------------
# Events: enqueued with the resolution
# ------------------------------------------------------------------------------------------------


def event_body(*, event_type: str, token: Token, now: datetime) -> str:
    """``{"type", "timestamp", "data"}`` with the token exactly as retrieve renders it."""
    rendering = TokenOutputSerializer(now=now, base=links.public_base_url(), detail=True)
    data = rendering.to_representation(token)
    event = {"type": event_type, "timestamp": iso(now), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def enqueue_for_resolution(
    *, token_ids: Sequence[str], status: str, now: datetime | None = None
) -> list[OutboxMessage]:
    """One outbox message per resolved token and enabled endpoint subscribed to its event.

    Called by ``resolution.on_resolved`` inside the transaction that resolved the tokens, so
    events exist exactly when the resolutions do. The body is rendered now and stored as text:
    every retry sends the same bytes under the same ``webhook-id``.
    """
    event_type = EVENT_FOR_STATUS.get(status)
    if event_type is None or not token_ids:
        return []
    now = now or timezone.now()
    resolved = Token.objects.filter(pk__in=list(token_ids))
    # One query when nobody listens (the common case for a sweep batch). Events are filtered
    # here rather than in SQL: JSON containment is not available on SQLite.
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            enabled=True, environment_id__in=resolved.values("environment_id")
        ).order_by("id")
        if event_type in endpoint.events
    ]
    if not endpoints:
        return []
    by_environment: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in endpoints:
        by_environment.setdefault(endpoint.environment_id, []).append(endpoint)
    tokens = resolved.filter(environment_id__in=by_environment).select_related("environment")
    messages = [
        OutboxMessage(
            kind=OutboxMessage.Kind.WEBHOOK,
            token=token,
            payload={
                "endpoint": endpoint.pk,
                "webhookId": "msg_" + keys.generate_token_id(),
                "type": event_type,
                "body": body,
            },
            created_at=now,
            next_attempt_at=now,
        )
        for token in tokens.order_by("id")
        for body in [event_body(event_type=event_type, token=token, now=now)]
        for endpoint in by_environment[token.environment_id]
    ]
    return outbox.enqueue_many(messages)


# ------------------------------------------------------------------------------------------------
# Delivery
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says now (no rebinding)."""

    def __init__(self, host: str, port: int, *, address: str, connect_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, connect_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # Certificate and SNI for the host name, not for the address we pinned.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, *, body: bytes, headers: dict[str, str]) -> Attempt:
    """POST once: connect within WEBHOOKS_CONNECT_TIMEOUT, finish within WEBHOOKS_TOTAL_TIMEOUT,
    never follow a redirect. Failures come back as an Attempt with ``error`` set."""
    started = time.monotonic()
    total = float(settings.WEBHOOKS_TOTAL_TIMEOUT)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port = _split_target(url)
        address = resolve_target(host, port)[0]
    except (InvalidInput, TargetRefused) as error:
        message = error.message if isinstance(error, InvalidInput) else str(error)
        return Attempt(None, elapsed_ms(), "", f"Refused: {message}")
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        host, port, address=address, connect_timeout=float(settings.WEBHOOKS_CONNECT_TIMEOUT)
    )
    # The total deadline: a receiver that trickles bytes would reset per-read timeouts forever,
    # so a timer shuts the socket down when the attempt's time is up.
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(total, expire)
    timer.daemon = True
    timer.start()
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(max(total - (time.monotonic() - started), 0.01))
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Content-Length": str(len(body)),
            },
        )
        response = connection.getresponse()
        raw = response.read(EXCERPT_LENGTH * 4)
        excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_LENGTH]
        status = response.status
        if timed_out.is_set():
            raise TimeoutError
    except TimeoutError:
        return Attempt(None, elapsed_ms(), "", f"Timed out after {elapsed_ms() / 1000:.1f} s")
    except (OSError, http.client.HTTPException) as error:
        if timed_out.is_set():
            return Attempt(None, elapsed_ms(), "", f"Timed out after {elapsed_ms() / 1000:.1f} s")
        return Attempt(None, elapsed_ms(), "", f"{type(error).__name__}: {error}"[:500])
    finally:
        timer.cancel()
        connection.close()
    problem = ""
    if 300 <= status < 400:
        problem = f"Redirect ({status}) not followed"
    elif not 200 <= status < 300:
        problem = f"HTTP {status}"
    return Attempt(status, elapsed_ms(), excerpt, problem)


def _retry_after(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt (the outbox stops after MAX_ATTEMPTS)."""
    return RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


@outbox.handler(OutboxMessage.Kind.WEBHOOK, max_attempts=MAX_ATTEMPTS, backoff=_retry_after)
def deliver_webhook(message: OutboxMessage) -> None:
    """Send one webhook message once and record the attempt; raise to have it retried.

    Called by the outbox worker with no transaction open, so a slow receiver holds no lock;
    each message is one event for one endpoint, sent concurrently with the others.
    """
    payload = message.payload
    endpoint = WebhookEndpoint.objects.filter(pk=payload.get("endpoint")).first()
    if endpoint is None:
        raise outbox.Skip("the webhook endpoint was deleted.")
    if not endpoint.enabled:
        _record_attempt(endpoint, message, Attempt(None, 0, "", "Not sent: endpoint disabled"))
        raise outbox.Skip("the webhook endpoint is disabled.")
    body: str = payload["body"]
    headers = signed_headers(
        secret=endpoint_secret(endpoint),
        webhook_id=payload["webhookId"],
        timestamp=datetime.now(tz=UTC),
        body=body,
    )
    attempt = post(endpoint.url, body=body.encode(), headers=headers)
    _record_attempt(endpoint, message, attempt)
    if not attempt.succeeded:
        raise WebhookDeliveryFailed(attempt.error)


def _record_attempt(
    endpoint: WebhookEndpoint, message: OutboxMessage, attempt: Attempt
) -> WebhookDelivery:
    previous = WebhookDelivery.objects.filter(message=message).count() if message.pk else 0
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        message=message if message.pk else None,
        webhook_id=message.payload["webhookId"],
        event_type=message.payload["type"],
        token_id=message.token_id,
        attempt=previous + 1,
        succeeded=attempt.succeeded,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        response_excerpt=attempt.response_excerpt,
        error=attempt.error,
        created_at=timezone.now(),
    )
