"""What every HTTP adapter (API, dashboard, callback page, admin) derives from a request: the
actor (channel, credential, the client's address behind trusted reverse proxies, its user
agent) and the origin for absolute links.

Behind a proxy, REMOTE_ADDR is the proxy. ``X-Forwarded-For`` is believed only as far as the
proxies named in the ``TRUSTED_PROXIES`` setting (CIDRs): it is read right to left, each hop
appended by a trusted proxy is skipped, and the first address not in the list is the client.
Anything to the left of that is whatever the client chose to send and is never believed, so a
client cannot forge its address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from tokens.domain import links
from tokens.domain.actors import Actor
from tokens.models import ApiKey, TokenEvent

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A TRUSTED_PROXIES entry for a proxy reaching us over a Unix socket (REMOTE_ADDR is empty).
UNIX_SOCKET = "unix"
MAX_USER_AGENT = 512


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[tuple[Network, ...], bool]:
    """The parsed TRUSTED_PROXIES, and whether a Unix-socket peer is trusted. Raises ValueError
    for an entry that is not an address or a CIDR (the settings check reports it at start)."""
    networks = tuple(
        ipaddress.ip_network(entry, strict=False) for entry in entries if entry != UNIX_SOCKET
    )
    return networks, UNIX_SOCKET in entries


@lru_cache(maxsize=1024)  # every API call parses its peer's address twice (limiter, audit)
def parse_ip(text: str) -> IPAddress | None:
    """An address from a header hop: "203.0.113.7", "2001:db8::1", "[2001:db8::1]:443",
    "203.0.113.7:5000"; IPv4-mapped IPv6 as IPv4; None for anything else ("unknown", "")."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress | None, networks: tuple[Network, ...], unix: bool) -> bool:
    if address is None:
        return unix
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for the audit trail (None when there is none to record)."""
    remote_text = request.META.get("REMOTE_ADDR") or ""
    remote = parse_ip(remote_text)
    entries = tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ())
    if not entries:
        return str(remote) if remote is not None else None
    networks, unix = trusted_networks(entries)
    if not _trusted(remote, networks, unix):
        return str(remote) if remote is not None else None
    # Several X-Forwarded-For headers arrive joined with "," in one META value, in order.
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    nearest = remote
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            # A malformed hop: nothing to its left can be trusted; the last good one is the best
            # we know.
            break
        nearest = address
        if not _trusted(address, networks, unix):
            break
    return str(nearest) if nearest is not None else None


def user_agent(request: HttpRequest) -> str:
    """The User-Agent as stored on audit events: bounded, and without NUL (PostgreSQL)."""
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:MAX_USER_AGENT]


def base_url(request: HttpRequest | None) -> str:
    """The origin for absolute links: PUBLIC_BASE_URL if set, else the request's own."""
    if settings.PUBLIC_BASE_URL or request is None:
        return links.public_base_url()
    return request.build_absolute_uri("/").rstrip("/")


def actor_from_request(
    request: HttpRequest,
    channel: str,
    *,
    credential: str,
    api_key: ApiKey | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> Actor:
    """An actor for an HTTP adapter: channel and credential, plus where the request came from."""
    return Actor(
        channel=channel,
        credential=credential,
        api_key=api_key,
        user=user,
        ip=client_ip(request),  # behind TRUSTED_PROXIES: the client, not the proxy
        user_agent=user_agent(request),
    )


def session_actor(request: HttpRequest, channel: str) -> Actor:
    """The signed-in user acting on a page (the dashboard, admin)."""
    return actor_from_request(
        request, channel, credential=TokenEvent.Credential.SESSION, user=request.user
    )
