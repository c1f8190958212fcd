"""Issue 9 #5: rate limits on logins, failed API keys, failed callback hashes and calls per key."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tokens.domain import actors, lifecycle
from tokens.domain.links import callback_url, personal_url
from tokens.models import Recipient, TokenEvent
from tokens.surfaces.common import ratelimit

LIST = "/api/v1/waitpoints/tokens"


@pytest.fixture(autouse=True)
def _fresh_store_state(monkeypatch):
    # The "store is down" memory is per process: start and leave every test with a clean one.
    monkeypatch.setattr(ratelimit, "_store", ratelimit._StoreState())


def _assert_limited(response, *, limit: int) -> None:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    assert response["x-ratelimit-limit"] == str(limit)
    assert response["x-ratelimit-remaining"] == "0"
    # Unix milliseconds (what @trigger.dev/sdk waits until), within the window from now.
    reset_ms = int(response["x-ratelimit-reset"])
    now_ms = time.time() * 1000
    assert now_ms < reset_ms <= now_ms + 61_000


def test_it_parses_rates():
    assert ratelimit.parse_rate("10/5m") == ratelimit.Rate(limit=10, period=300)
    assert ratelimit.parse_rate("3/s") == ratelimit.Rate(limit=3, period=1)
    assert ratelimit.parse_rate("100/2h") == ratelimit.Rate(limit=100, period=7200)
    assert ratelimit.parse_rate("off") is None
    assert ratelimit.parse_rate("") is None
    for bad in ("ten/m", "0/1m", "5/0s", "5/1d", "5"):
        with pytest.raises(ValueError):
            ratelimit.parse_rate(bad)


# ------------------------------------------------------------------------------------------------
# API keys
# ------------------------------------------------------------------------------------------------


def test_it_limits_failed_api_keys_per_address(settings, secret_key):
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "5/1m"
    attacker = APIClient(REMOTE_ADDR="203.0.113.9")
    for attempt in range(5):
        attacker.credentials(HTTP_AUTHORIZATION=f"Bearer tr_dev_wrong{attempt:040d}")
        assert attacker.get(LIST).status_code == 401
    response = attacker.get(LIST)
    _assert_limited(response, limit=5)
    assert response.json()["error"].startswith("Rate limit exceeded: too many failed API key")
    # Another address is not affected.
    other = APIClient(REMOTE_ADDR="198.51.100.7")
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    assert other.get(LIST).status_code == 200


def test_a_valid_key_is_never_refused_for_failures_that_are_not_its_own(settings, secret_key):
    # One address (a NAT, a proxy without TRUSTED_PROXIES) shared by a misconfigured job and the
    # company's healthy services: the bad key's failures limit the bad key's requests only.
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "5/1m"
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "100/1m"
    shared = APIClient(REMOTE_ADDR="203.0.113.9")
    for attempt in range(8):
        shared.credentials(HTTP_AUTHORIZATION=f"Bearer tr_dev_wrong{attempt:040d}")
        assert shared.get(LIST).status_code == (401 if attempt < 5 else 429)
    shared.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    for _ in range(3):
        response = shared.get(LIST)
        assert response.status_code == 200
        # Its own budget, not the failures': 100 calls a minute.
        assert response["x-ratelimit-limit"] == "100"
        assert "Retry-After" not in response
    # And the guesser is still refused.
    shared.credentials(HTTP_AUTHORIZATION="Bearer tr_dev_" + "g" * 40)
    _assert_limited(shared.get(LIST), limit=5)


def test_a_valid_public_access_token_is_never_refused_for_others_failures(
    settings, api_client, make_token
):
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "3/1m"
    created = api_client.post(LIST, {}, format="json")
    shared = APIClient(REMOTE_ADDR="203.0.113.19")
    shared.credentials(HTTP_AUTHORIZATION="Bearer abc.def.ghi")  # a broken JWT, as a guess
    url = f"{LIST}/{created.json()['id']}/complete"
    statuses = [shared.post(url, {"data": 1}, format="json").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    shared.credentials(HTTP_AUTHORIZATION=f"Bearer {created['x-trigger-jwt']}")
    response = shared.post(url, {"data": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["applied"] is True


def test_a_public_access_token_has_a_call_budget_of_its_own(settings, api_client, secret_key):
    # Upstream: a public access token is limited per token, not out of the secret key's budget,
    # so browsers completing tokens cannot use up the backend's calls.
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "100/1m"
    settings.WAITPOINTS_RATELIMIT_PUBLIC_TOKEN_CALLS = "2/1m"
    created = api_client.post(LIST, {}, format="json")
    browser = APIClient()
    browser.credentials(HTTP_AUTHORIZATION=f"Bearer {created['x-trigger-jwt']}")
    url = f"{LIST}/{created.json()['id']}/complete"
    answers = [browser.post(url, {"data": 1}, format="json") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0]["x-ratelimit-limit"] == "2"
    assert (
        answers[2]
        .json()["error"]
        .startswith("Rate limit exceeded: too many requests for this public access token")
    )
    response = api_client.get(LIST)
    assert response.status_code == 200
    assert response["x-ratelimit-remaining"] == "98"  # the create and this list


def test_it_limits_calls_per_key_and_reports_the_budget(settings, api_client, other_api_client):
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "3/1m"
    remaining = [api_client.get(LIST)["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = api_client.get(LIST)
    _assert_limited(response, limit=3)
    assert response.json() == {
        "error": f"Rate limit exceeded: too many requests for this API key; "
        f"retry in {response['Retry-After']} s"
    }
    # Another key has its own budget.
    assert other_api_client.get(LIST).status_code == 200


def test_each_api_request_counts_in_one_round_trip_on_a_lasting_connection(
    settings, api_client, monkeypatch
):
    # A valid key's request counts its own calls only (failures from its address are none of its
    # business), in one script call on a client that outlives the request: a connection per
    # request cost more than the query did.
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "100/1m"
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "5/1m"
    script = ratelimit._redis_script()
    assert script is not None, "the test settings use Redis"
    calls: list[int] = []
    original = type(script).__call__

    def counting(self, keys=None, args=None, client=None):
        calls.append(len(keys) // 2)
        return original(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(type(script), "__call__", counting)
    for _ in range(10):
        assert api_client.get(LIST).status_code == 200
    assert calls == [1] * 10
    pool = script.registered_client.connection_pool
    assert len(pool._available_connections) + len(pool._in_use_connections) == 1


def test_one_check_reads_and_counts_several_counters(settings):
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "2/1m"
    settings.WAITPOINTS_RATELIMIT_LOGIN = "off"
    subject = f"key:check-{time.time_ns()}"
    first = ratelimit.check(
        ratelimit.Check(ratelimit.API_CALLS, subject, hit=True),
        ratelimit.Check(ratelimit.LOGIN, subject, hit=True),
        ratelimit.Check(ratelimit.API_CALLS, subject, hit=False),
    )
    assert first[1] is None  # that scope is off
    assert (first[0].remaining, first[0].allowed) == (1, True)
    assert (first[2].remaining, first[2].allowed) == (0, True)  # one more would be the last
    [second] = ratelimit.check(ratelimit.Check(ratelimit.API_CALLS, subject, hit=True))
    [third] = ratelimit.check(ratelimit.Check(ratelimit.API_CALLS, subject, hit=True))
    assert (second.allowed, third.allowed) == (True, False)
    assert second.reset_at == third.reset_at == first[0].reset_at  # one window


def _script_calls(monkeypatch) -> list[int]:
    """Records each call of the Redis counting script (the amount counted for its one hit)."""
    script = ratelimit._redis_script()
    assert script is not None, "the test settings use Redis"
    calls: list[int] = []
    original = type(script).__call__

    def counting(self, keys=None, args=None, client=None):
        calls.append(int(args[2]))
        return original(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(type(script), "__call__", counting)
    return calls


def _redis_count(subject: str) -> int:
    count_key, _ = ratelimit._keys(ratelimit.API_CALLS, subject)
    return int(ratelimit._redis_script().registered_client.get(count_key) or 0)


def test_a_busy_budget_is_counted_a_lease_at_a_time(settings, monkeypatch):
    # 1,000 a minute: a round trip takes ten calls of the window for this process.
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "1000/1m"
    assert ratelimit.lease_size(ratelimit.rate_for(ratelimit.API_CALLS)) == 10
    calls = _script_calls(monkeypatch)
    subject = f"key:lease-{time.time_ns()}"
    decisions = [ratelimit.hit(ratelimit.API_CALLS, subject) for _ in range(25)]
    assert calls == [10, 10, 10]
    assert [d.remaining for d in decisions] == list(range(999, 974, -1))
    assert all(d.allowed for d in decisions)
    assert len({d.reset_at for d in decisions}) == 1  # one window
    assert _redis_count(subject) == 30  # what Redis lent, five of them not yet spent


def test_leases_never_let_processes_exceed_the_budget(settings, monkeypatch):
    # Three web processes (three lease tables) taking turns on one key's budget of 300 a minute
    # (leases of 3): together they are allowed at most 300 calls, at least 300 - 3 × 2.
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "300/1m"
    subject = f"key:spread-{time.time_ns()}"
    processes = [ratelimit._Leases() for _ in range(3)]
    allowed = 0
    for turn in range(400):
        monkeypatch.setattr(ratelimit, "_leases", processes[turn % 3])
        decision = ratelimit.hit(ratelimit.API_CALLS, subject)
        allowed += decision.allowed
        if not decision.allowed:
            assert (decision.remaining, decision.limit) == (0, 300)
    assert 294 <= allowed <= 300
    # Once a process has seen the window full it refuses without asking Redis again.
    counted = _redis_count(subject)
    calls = _script_calls(monkeypatch)
    for process in processes:
        monkeypatch.setattr(ratelimit, "_leases", process)
        assert ratelimit.hit(ratelimit.API_CALLS, subject).allowed is False
    assert (calls, _redis_count(subject)) == ([], counted)


def test_a_lease_ends_with_its_window(settings, monkeypatch):
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "200/1m"  # leases of 2
    subject = f"key:window-{time.time_ns()}"
    now = time.time()
    monkeypatch.setattr(ratelimit, "_now", lambda: now)
    for _ in range(199):
        ratelimit.hit(ratelimit.API_CALLS, subject)
    last = ratelimit.hit(ratelimit.API_CALLS, subject)
    refused = ratelimit.hit(ratelimit.API_CALLS, subject)
    assert (last.allowed, last.remaining, refused.allowed) == (True, 0, False)
    assert refused.reset_at == pytest.approx(now + 60)
    # Past the minute, the window is a new one, in Redis and in this process's lease. (A second
    # past it: at exactly now + 60, (now + 60) - now may round to just under 60 in floats.)
    monkeypatch.setattr(ratelimit, "_now", lambda: now + 61)
    again = ratelimit.hit(ratelimit.API_CALLS, subject)
    assert (again.allowed, again.remaining) == (True, 199)
    assert again.reset_at == pytest.approx(now + 121)


def test_a_lease_follows_a_changed_rate(settings):
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "1000/1m"
    subject = f"key:changed-{time.time_ns()}"
    assert ratelimit.hit(ratelimit.API_CALLS, subject).remaining == 999
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "20/1m"  # no lease: one round trip a call
    decision = ratelimit.hit(ratelimit.API_CALLS, subject)
    # The ten the first lease took count in the window; the new limit applies to them.
    assert (decision.limit, decision.remaining, decision.allowed) == (20, 9, True)


def test_it_does_not_count_a_missing_key_as_a_guess(settings, anonymous_client):
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "2/1m"
    for _ in range(5):
        assert anonymous_client.get(LIST).status_code == 401


# ------------------------------------------------------------------------------------------------
# Callback URLs
# ------------------------------------------------------------------------------------------------


def test_it_limits_wrong_callback_hashes_and_audits_once_a_minute(settings, make_token):
    settings.WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = "4/1m"
    token = make_token()
    good = callback_url(token, base="")
    bad = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    client = Client(REMOTE_ADDR="203.0.113.10")
    for _ in range(4):
        response = client.post(bad, b"{}", content_type="application/json")
        assert response.status_code == 401
    response = client.post(bad, b"{}", content_type="application/json")
    _assert_limited(response, limit=4)
    assert response.json()["error"].startswith("Rate limit exceeded: too many invalid callback")
    # A person following a wrong link from there gets the page that says so.
    page = client.get(bad, HTTP_ACCEPT="text/html")
    assert page.status_code == 429
    assert b"Too many invalid links" in page.content
    assert "Retry-After" in page
    # Four refusals within a minute: one audit event, not four.
    events = list(token.events.filter(kind=TokenEvent.Kind.AUTH_FAILED))
    assert len(events) == 1
    assert events[0].channel == TokenEvent.Channel.CALLBACK
    assert events[0].ip == "203.0.113.10"
    assert events[0].detail == {"refused": "callback_hash"}
    assert events[0].credential == TokenEvent.Credential.CALLBACK_URL


def test_a_valid_callback_url_is_never_refused_for_others_wrong_hashes(settings, make_token):
    # Zapier, Slack or a company's mail gateway fetch links for many people from one address:
    # somebody's mangled links must not stop a right one (upstream does not limit this path).
    settings.WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = "4/1m"
    token, other = make_token(), make_token()
    good = callback_url(token, base="")
    bad = callback_url(other, base="")[:-6] + "abcdef"
    shared = Client(REMOTE_ADDR="203.0.113.20")
    statuses = [
        shared.post(bad, b"{}", content_type="application/json").status_code for _ in range(6)
    ]
    assert statuses == [401] * 4 + [429] * 2
    page = shared.get(good, HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Approve" in page.content
    response = shared.post(good, b'{"ok": true}', content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["applied"] is True
    assert "Retry-After" not in response


def test_a_valid_personal_link_is_never_refused_for_others_wrong_hashes(settings, make_token):
    settings.WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = "3/1m"
    token = make_token(approvers=["alice@example.com"])
    recipient = Recipient.objects.get(token=token, email="alice@example.com")
    good = personal_url(token, recipient, base="")
    bad = good[:-6] + ("000000" if not good.endswith("000000") else "111111")
    shared = Client(REMOTE_ADDR="203.0.113.21")
    statuses = [
        shared.post(bad, b"{}", content_type="application/json").status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    assert shared.get(good, HTTP_ACCEPT="text/html").status_code == 200
    response = shared.post(good, b"{}", content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["applied"] is True


def test_it_counts_unknown_tokens_as_failed_guesses(settings, db):
    settings.WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = "2/1m"
    client = Client(REMOTE_ADDR="203.0.113.11")
    url = "/api/v1/waitpoints/tokens/waitpoint_doesnotexist0000000000000/callback/abc"
    assert client.post(url, b"{}", content_type="application/json").status_code == 404
    assert client.post(url, b"{}", content_type="application/json").status_code == 404
    assert client.post(url, b"{}", content_type="application/json").status_code == 429


def test_the_refused_credential_audit_is_at_most_one_a_minute(make_token):
    token = make_token()
    actor = actors.Actor(
        channel=TokenEvent.Channel.CALLBACK,
        credential=TokenEvent.Credential.CALLBACK_URL,
        ip="203.0.113.12",
    )
    now = timezone.now()
    first = lifecycle.token_credential_refused(
        token=token, actor=actor, credential="callback_hash", now=now
    )
    assert first is not None
    for seconds in (1, 30, 59):
        assert (
            lifecycle.token_credential_refused(
                token=token,
                actor=actor,
                credential="callback_hash",
                now=now + timedelta(seconds=seconds),
            )
            is None
        )
    later = lifecycle.token_credential_refused(
        token=token, actor=actor, credential="callback_hash", now=now + timedelta(seconds=61)
    )
    assert later is not None
    assert token.events.filter(kind=TokenEvent.Kind.AUTH_FAILED).count() == 2


# ------------------------------------------------------------------------------------------------
# Logins
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def user(db, settings) -> User:
    # Password hashing is the slow part of a login; these tests count attempts, not hashes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_user("carol", "carol@example.com", "right-horse-battery-staple")


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_it_limits_failed_logins_per_address(settings, user, login_url):
    settings.WAITPOINTS_RATELIMIT_LOGIN = "3/5m"
    if login_url.startswith("/admin"):
        user.is_staff = True
        user.save()
    browser = Client(REMOTE_ADDR="203.0.113.13")
    for _ in range(3):
        response = browser.post(login_url, {"username": "carol", "password": "wrong"})
        assert response.status_code == 200
        assert b"Too many failed login attempts" not in response.content
    # Now even the right password is refused, and the page says why.
    response = browser.post(
        login_url, {"username": "carol", "password": "right-horse-battery-staple"}
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response["x-ratelimit-limit"] == "3"
    assert b"Too many failed login attempts from your address" in response.content
    assert "_auth_user_id" not in browser.session
    # Someone else (another address) logs in.
    other = Client(REMOTE_ADDR="198.51.100.9")
    response = other.post(
        login_url, {"username": "carol", "password": "right-horse-battery-staple"}
    )
    assert response.status_code == 302
    assert "_auth_user_id" in other.session


def test_it_does_not_count_successful_logins(settings, user):
    settings.WAITPOINTS_RATELIMIT_LOGIN = "2/5m"
    for _ in range(4):
        browser = Client(REMOTE_ADDR="203.0.113.14")
        response = browser.post(
            "/accounts/login/", {"username": "carol", "password": "right-horse-battery-staple"}
        )
        assert response.status_code == 302


# ------------------------------------------------------------------------------------------------
# Counter stores: the database on the embedded default; fail open when the store is down
# ------------------------------------------------------------------------------------------------


def test_it_counts_in_the_database_cache_on_the_embedded_default(settings, secret_key):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "waitpoints_cache_test",
        }
    }
    call_command("createcachetable", verbosity=0)
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "2/1m"
    attacker = APIClient(REMOTE_ADDR="203.0.113.15")
    attacker.credentials(HTTP_AUTHORIZATION="Bearer tr_dev_" + "x" * 40)
    assert [attacker.get(LIST).status_code for _ in range(3)] == [401, 401, 429]


def test_it_fails_open_with_one_warning_when_the_store_is_down(settings, api_client, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.WAITPOINTS_RATELIMIT_API_CALLS = "1/1m"
    settings.WAITPOINTS_RATELIMIT_API_KEY_FAILURES = "1/1m"
    with caplog.at_level(logging.WARNING, logger="tokens.surfaces.common.ratelimit"):
        statuses = [api_client.get(LIST).status_code for _ in range(20)]
        bad = APIClient(REMOTE_ADDR="203.0.113.16")
        bad.credentials(HTTP_AUTHORIZATION="Bearer tr_dev_" + "y" * 40)
        statuses += [bad.get(LIST).status_code for _ in range(5)]
    assert statuses == [200] * 20 + [401] * 5
    warnings = [r for r in caplog.records if r.name == "tokens.surfaces.common.ratelimit"]
    assert len(warnings) == 1
    assert "rate limits are off" in warnings[0].getMessage()
