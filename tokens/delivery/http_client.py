"""The one HTTP client for calls to other people's servers: webhooks, AAP receivers, Slack.

* Targets must be http(s) and, unless ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``, public: checked when
  a target is configured (``clean_target_url``) and again at every request, after DNS
  resolution; the connection goes to the address that was checked (no second lookup a
  rebinding DNS server could answer differently).
* Redirects are not followed; a request has a connect deadline and a total deadline (a server
  trickling bytes cannot hold a worker beyond it).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_URL_LENGTH

EXCERPT_LENGTH = 1000  # characters of the response body kept per attempt


class TargetRefused(Exception):
    """The target may not be contacted (scheme, private address, unresolvable host)."""


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def split_target(url: str) -> tuple[str, str, int]:
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
        refused = [address for address in addresses if not address_allowed(address)]
        if refused:
            raise TargetRefused(
                f"{host} resolves to a loopback, link-local or private address ({refused[0]}); "
                "such targets are refused"
            )
    if not addresses:
        raise TargetRefused(f"cannot resolve {host}")
    return addresses


def clean_target_url(url: Any) -> str:
    """An acceptable target URL, checked as at delivery time: http(s), and unless private
    targets are allowed, no loopback, link-local or private address (literal or resolved).
    A name that does not resolve yet is accepted; delivery checks again."""
    _scheme, host, port = split_target(url)
    cleaned = str(url).strip()
    if settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        return cleaned
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(str(literal)):
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


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str
    # The receiver's Retry-After header, as sent ("" when none): AAP delivery respects it.
    retry_after: str = ""

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


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    user_agent: str,
    on_address: Callable[[str], None] | None = None,
) -> Attempt:
    """POST once: connect within WEBHOOKS_CONNECT_TIMEOUT, finish within WEBHOOKS_TOTAL_TIMEOUT,
    never follow a redirect. Failures come back as an Attempt with ``error`` set.

    ``on_address`` is called with the checked address the connection will go to, before
    connecting (AAP counts traffic per resolved address there, without a second lookup); what
    it raises ends the call with nothing sent."""
    started = time.monotonic()
    total = float(settings.WEBHOOKS_TOTAL_TIMEOUT)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port = split_target(url)
        address = resolve_target(host, port)[0]
    except (InvalidInput, TargetRefused) as error:
        message = error.message if isinstance(error, InvalidInput) else str(error)
        return Attempt(None, elapsed_ms(), "", f"Refused: {message}")
    if on_address is not None:
        on_address(address)
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
                "User-Agent": user_agent,
                "Content-Length": str(len(body)),
            },
        )
        response = connection.getresponse()
        raw = response.read(EXCERPT_LENGTH * 4)
        excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_LENGTH]
        status = response.status
        retry_after = (response.getheader("Retry-After") or "")[:100]
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
    return Attempt(status, elapsed_ms(), excerpt, problem, retry_after)
