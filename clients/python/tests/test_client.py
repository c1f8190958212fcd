"""The blocking client end to end against a live server (tests/live.py)."""

from __future__ import annotations

import statistics
import threading
import time
from datetime import timedelta

import httpx
import pytest
import waitpoints_client._core as core
from waitpoints_client import (
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    StillWaitingError,
    WaitpointCancelledError,
    WaitpointTimeoutError,
)

pytestmark = pytest.mark.django_db(transaction=True)


def complete_later(client: Client, token, data, delay: float) -> tuple[threading.Thread, list]:
    """Complete ``token`` from another thread after ``delay`` s; the list gets the moment."""
    done: list[float] = []

    def run() -> None:
        time.sleep(delay)
        done.append(time.monotonic())
        client.complete_token(token, data)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_create_retrieve_complete(client: Client) -> None:
    created = client.create_token(timeout="1h", tags=["order:42", "refund"], idempotency_key="k1")
    assert created.id.startswith("waitpoint_") and not created.is_cached
    assert created.public_access_token
    assert client.create_token(idempotency_key="k1").is_cached

    token = client.retrieve_token(created)
    assert token.status == "WAITING"
    assert token.tags == ["order:42", "refund"]
    assert token.timeout_at is not None and token.output is None

    result = client.complete_token(created, {"approved": True})
    assert (result.success, result.applied, result.status) == (True, True, "COMPLETED")
    again = client.complete_token(created, {"approved": False})
    assert (again.applied, again.status) == (False, "COMPLETED")
    assert client.retrieve_token(created.id).output == {"approved": True}


@pytest.mark.parametrize("data", ["yes", {"a": [1, 2]}, [1, "x"], 3.5, True, None])
def test_outputs_decode_to_what_was_sent(client: Client, data) -> None:
    created = client.create_token()
    client.complete_token(created, data)
    assert client.wait_for_token(created).unwrap() == data


def test_list_tokens_pages_through_everything(client: Client) -> None:
    made = [client.create_token(tags=["listed"]).id for _ in range(5)]
    client.create_token(tags=["other"])
    client.complete_token(made[0], "done")
    seen = [t.id for t in client.list_tokens(tags="listed", page_size=2)]
    assert seen == list(reversed(made))  # newest first, across three pages
    completed = list(client.list_tokens(tags=["listed"], status="COMPLETED"))
    assert [t.id for t in completed] == [made[0]]
    assert len(list(client.list_tokens(period="1h", page_size=100))) == 6


def test_errors_carry_status_and_message(client: Client, web) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.retrieve_token("waitpoint_doesnotexist")
    assert (missing.value.status, missing.value.message) == (404, "Waitpoint not found")
    with pytest.raises(BadRequestError) as bad:
        client.create_token(timeout="soon")
    assert bad.value.status == 400 and "Invalid timeout" in bad.value.message
    with pytest.raises(AuthenticationError) as unauthenticated:
        Client(base_url=web.url, secret_key="tr_dev_wrong").retrieve_token("waitpoint_x")
    assert unauthenticated.value.status == 401


def test_settings_from_the_environment(web, secret_key, monkeypatch, transactional_db) -> None:
    monkeypatch.setenv("WAITPOINTS_API_URL", web.url)
    monkeypatch.setenv("WAITPOINTS_SECRET_KEY", secret_key)
    with Client() as client:
        assert client.create_token().id
    monkeypatch.delenv("WAITPOINTS_SECRET_KEY")
    with pytest.raises(ValueError, match="WAITPOINTS_SECRET_KEY"):
        Client()


def test_wait_for_token_returns_the_decision_quickly(client: Client, record_property) -> None:
    latencies = []
    for n in range(5):
        created = client.create_token(timeout="10m")
        thread, done = complete_later(client, created, {"status": "approved", "n": n}, 0.3)
        result = client.wait_for_token(created, timeout=30)
        woke = time.monotonic()
        thread.join()
        assert result.ok and result.error is None
        assert result.unwrap() == {"status": "approved", "n": n}
        latencies.append((woke - done[0]) * 1000)
    # Measured from the start of complete_token (its own round trip included); figures for
    # the docs, not a threshold.
    median = statistics.median(latencies)
    print(f"wait_for_token: decision to unwrap() median {median:.0f} ms, max {max(latencies):.0f}")
    record_property("decision_to_unwrap_ms_median", round(median))


def test_a_timeout_is_an_error_result(client: Client) -> None:
    created = client.create_token(timeout="1s")
    result = client.wait_for_token(created, timeout=20)
    assert not result.ok
    assert result.token.status == "TIMED_OUT"
    assert isinstance(result.error, WaitpointTimeoutError)
    assert "timed out" in str(result.error)
    with pytest.raises(WaitpointTimeoutError):
        result.unwrap()


def test_a_cancellation_is_an_error_result(client: Client) -> None:
    created = client.create_token()
    cancelled = client.cancel_token(created, reason="order withdrawn")
    assert (cancelled.applied, cancelled.status) == (True, "CANCELLED")
    result = client.wait_for_token(created)
    assert result.token.status == "CANCELLED"
    with pytest.raises(WaitpointCancelledError, match="Cancelled: order withdrawn"):
        result.unwrap()


def test_waiting_past_the_longest_long_poll_polls_again(client: Client, monkeypatch) -> None:
    """The server waits at most 60 s per request; pretend it is 1 s to see the client ask
    again until its own timeout ends, then report the token still waiting."""
    monkeypatch.setattr(core, "MAX_LONG_POLL", 1.0)
    asked: list[str] = []
    client._http.event_hooks["request"].append(lambda request: asked.append(request.url.path))
    created = client.create_token(timeout="1h")
    started = time.monotonic()
    result = client.wait_for_token(created, timeout=timedelta(seconds=2.5))
    assert time.monotonic() - started >= 2.5
    assert len([path for path in asked if path.endswith("/wait")]) == 3
    assert result.token.status == "WAITING" and not result.ok
    with pytest.raises(StillWaitingError):
        result.unwrap()


def test_the_public_access_token_may_complete_and_wait(client: Client, web) -> None:
    created, other = client.create_token(), client.create_token()
    jwt = created.public_access_token
    client.complete_token(created, "via jwt", access_token=jwt)
    assert client.wait_for_token(created, access_token=jwt).unwrap() == "via jwt"
    with pytest.raises(PermissionDeniedError):
        client.wait_for_token(other, access_token=jwt)


# -- retries (a scripted transport: a live server cannot be made to fail on cue) ------------------


class Script:
    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def scripted(script: Script, sleeps: list[float], monkeypatch) -> Client:
    monkeypatch.setattr(time, "sleep", sleeps.append)
    http = httpx.Client(transport=httpx.MockTransport(script))
    return Client(base_url="http://waitpoints.test", secret_key="tr_dev_x", http_client=http)


TOKEN = {"id": "waitpoint_a", "url": "u", "status": "WAITING", "tags": [], "createdAt": None}


def test_retries_5xx_408_409_with_the_sdks_backoff(monkeypatch) -> None:
    script = Script(
        httpx.Response(503, json={"error": "down"}),
        httpx.Response(408, json={"error": "slow"}),
        httpx.Response(409, json={"error": "locked"}),
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(200, json=TOKEN),
    )
    sleeps: list[float] = []
    assert scripted(script, sleeps, monkeypatch).retrieve_token("waitpoint_a").id == "waitpoint_a"
    assert script.calls == 5
    assert sleeps == pytest.approx([1.0, 1.6, 2.56, 4.096])


def test_gives_up_after_five_attempts_with_the_last_error(monkeypatch) -> None:
    script = Script(*[httpx.Response(502, json={"error": "bad gateway"})] * 5)
    sleeps: list[float] = []
    from waitpoints_client import ServerError

    with pytest.raises(ServerError) as error:
        scripted(script, sleeps, monkeypatch).retrieve_token("waitpoint_a")
    assert (error.value.status, error.value.message) == (502, "bad gateway")
    assert script.calls == 5


def test_429_waits_for_the_rate_limit_reset(monkeypatch) -> None:
    reset_ms = int((time.time() + 7) * 1000)
    script = Script(
        httpx.Response(429, headers={"x-ratelimit-reset": str(reset_ms)}, json={"error": "x"}),
        httpx.Response(429, headers={"retry-after": "3"}, json={"error": "x"}),
        httpx.Response(200, json=TOKEN),
    )
    sleeps: list[float] = []
    scripted(script, sleeps, monkeypatch).retrieve_token("waitpoint_a")
    assert 6 <= sleeps[0] <= 8.1  # until the reset, plus up to 1 s of jitter
    assert sleeps[1] == 3


def test_client_errors_are_not_retried(monkeypatch) -> None:
    script = Script(httpx.Response(400, json={"error": "Invalid timeout", "details": [1]}))
    sleeps: list[float] = []
    with pytest.raises(BadRequestError) as error:
        scripted(script, sleeps, monkeypatch).create_token(timeout="x")
    assert error.value.details == [1]
    assert script.calls == 1 and sleeps == []


def test_the_server_may_say_whether_to_retry(monkeypatch) -> None:
    script = Script(
        httpx.Response(400, headers={"x-should-retry": "true"}, json={"error": "x"}),
        httpx.Response(503, headers={"x-should-retry": "false"}, json={"error": "no"}),
    )
    from waitpoints_client import ServerError

    with pytest.raises(ServerError):
        scripted(script, [], monkeypatch).retrieve_token("waitpoint_a")
    assert script.calls == 2


def test_connection_errors_are_retried_then_raised(monkeypatch) -> None:
    from waitpoints_client import ApiConnectionError

    script = Script(*[httpx.ConnectError("refused")] * 5)
    sleeps: list[float] = []
    with pytest.raises(ApiConnectionError):
        scripted(script, sleeps, monkeypatch).retrieve_token("waitpoint_a")
    assert script.calls == 5 and len(sleeps) == 4
    ok = Script(httpx.ConnectError("refused"), httpx.Response(200, json=TOKEN))
    assert scripted(ok, [], monkeypatch).retrieve_token("waitpoint_a").status == "WAITING"


# -- durations: every duration parameter takes the API's strings --------------------------------


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2hr", 7200.0),
        ("3d", 259200.0),
        ("1w", 604800.0),
        (" 45s ", 45.0),
        ("12", 12.0),
        ("2.5", 2.5),
        (timedelta(minutes=2), 120.0),
        (7, 7.0),
        (1.5, 1.5),
    ],
)
def test_durations_take_the_apis_strings(given, seconds) -> None:
    assert core.seconds(given) == seconds


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "1y", "-5s", "", "h"])
def test_a_bad_duration_says_what_is_accepted(bad) -> None:
    with pytest.raises(ValueError, match=r"30s.*1h30m"):
        core.seconds(bad)


def test_wait_for_token_takes_a_duration_string(monkeypatch) -> None:
    # Pretend the server's longest wait is 10 s: a 30 s wait is three long-polls of 10 s.
    monkeypatch.setattr(core, "MAX_LONG_POLL", 10.0)
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["timeout"])
        now[0] += float(request.url.params["timeout"])
        return httpx.Response(200, json=TOKEN)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    client = Client(base_url="http://waitpoints.test", secret_key="tr_dev_x", http_client=http)
    result = client.wait_for_token("waitpoint_a", timeout="30s")
    assert asked == ["10", "10", "10"]
    assert not result.ok and result.token.status == "WAITING"


def test_the_http_timeout_takes_a_duration_string() -> None:
    with Client(base_url="http://waitpoints.test", secret_key="tr_dev_x", timeout="1m") as client:
        assert client._http.timeout.read == 60.0


def test_idempotency_key_is_the_callers_key_only(client: Client) -> None:
    plain = client.retrieve_token(client.create_token())
    assert plain.idempotency_key is None
    assert plain.raw["userProvidedIdempotencyKey"] is False  # the server sends a random one
    keyed = client.retrieve_token(client.create_token(idempotency_key="order-7"))
    assert keyed.idempotency_key == "order-7"
