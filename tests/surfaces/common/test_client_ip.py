"""The audit trail's client address behind reverse proxies (TRUSTED_PROXIES, X-Forwarded-For
read right to left), unit by unit and then through the API and the callback URL."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from tests.surfaces.triggerdev_v1.helpers import TOKENS, post_raw
from tokens.domain.links import callback_url
from tokens.models import TokenEvent
from tokens.surfaces.common.http import client_ip, user_agent


def ip_of(remote: str, forwarded: str | None = None) -> str | None:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **extra))


def test_without_trusted_proxies_the_header_is_ignored(settings) -> None:
    settings.TRUSTED_PROXIES = []
    assert ip_of("198.51.100.9", "203.0.113.7") == "198.51.100.9"


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        # One proxy: the hop it appended is the client.
        ("10.0.0.2", "203.0.113.7", "203.0.113.7"),
        # A forged hop to the left of the real one is never believed.
        ("10.0.0.2", "1.2.3.4, 203.0.113.7", "203.0.113.7"),
        # Two trusted proxies in a chain are skipped.
        ("10.0.0.2", "1.2.3.4, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
        # A request that did not come through a trusted proxy: its header is the client's lie.
        ("198.51.100.9", "203.0.113.7", "198.51.100.9"),
        # No header: the proxy itself.
        ("10.0.0.2", None, "10.0.0.2"),
        # Only trusted hops: the leftmost one.
        ("10.0.0.2", "10.0.0.3", "10.0.0.3"),
        # A malformed hop stops the walk at the last address we could trust.
        ("10.0.0.2", "203.0.113.7, garbage", "10.0.0.2"),
        ("10.0.0.2", "garbage, 203.0.113.7", "203.0.113.7"),
        # Ports, brackets, IPv6 and IPv4-mapped IPv6.
        ("10.0.0.2", "203.0.113.7:5151", "203.0.113.7"),
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "2001:db8::2", "2001:db8::2"),
        ("::ffff:10.0.0.2", "::ffff:203.0.113.8", "203.0.113.8"),
        ("fd00::1", "203.0.113.9", "203.0.113.9"),
    ],
)
def test_it_reads_x_forwarded_for_right_to_left(settings, remote, forwarded, expected) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    assert ip_of(remote, forwarded) == expected


def test_a_unix_socket_proxy_can_be_trusted(settings) -> None:
    settings.TRUSTED_PROXIES = ["unix"]
    assert ip_of("", "203.0.113.7") == "203.0.113.7"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ip_of("", "203.0.113.7") is None


def test_the_user_agent_is_bounded_and_storable() -> None:
    request = RequestFactory().get("/", HTTP_USER_AGENT="a\x00b" + "x" * 1000)
    assert user_agent(request) == ("ab" + "x" * 1000)[:512]


@pytest.mark.django_db
def test_the_api_and_callback_audit_the_client_behind_the_proxy(settings, api_client) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    proxy = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    created = post_raw(api_client, TOKENS, b"{}", **proxy)
    assert created.status_code == 200
    event = TokenEvent.objects.get(kind=TokenEvent.Kind.CREATED)
    assert event.ip == "203.0.113.7"
    token = event.token
    response = post_raw(
        Client(),
        callback_url(token, base=""),
        b"{}",
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.4",
    )
    assert response.status_code == 200
    assert TokenEvent.objects.get(kind=TokenEvent.Kind.COMPLETED).ip == "198.51.100.4"


def test_a_bad_trusted_proxies_setting_fails_at_start(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRUSTED_PROXIES": "10.0.0.0/8,not-a-network", "DEBUG": "True"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "waitpoints_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'not-a-network' is not an IP address or CIDR" in result.stderr
