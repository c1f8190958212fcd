"""A local stand-in for Slack's Web API, and interactivity payloads signed as Slack signs them.

``FakeSlack`` is an HTTP server on 127.0.0.1 (a port from WAITPOINTS_TEST_PORTS) answering the
methods waitpoints uses the way Slack does (``{"ok": true, …}`` or ``{"ok": false, "error":
…}``, HTTP 200; 429 with ``Retry-After``), checking the bot token, recording every call, and
able to fail on demand: ``fail(method, …)`` queues answers for one method ("hang" holds the
request, a number is an HTTP status, a string an error code, ("429", seconds) a rate limit,
("slow", seconds) answers as usual after a while);
``down = True`` answers 503 to everything until set back. The ``fake_slack`` fixture points the
SDK at it through ``SLACK_API_URL``, so no test ever talks to the real Slack.

``signed_post`` sends an interactivity payload exactly as Slack does: form-encoded
``payload=<json>``, with ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=`` +
HMAC-SHA256(signing secret, ``v0:{timestamp}:{body}``), written here from Slack's documentation
(not with the SDK that the server verifies with).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.delivery.webhooks.receiver import serving

BOT_TOKEN = "xoxb-1111-2222-fakeBotTokenForTests"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the example in Slack's documentation


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeSlack:
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    # e-mail → user; a user whose e-mail Slack has not confirmed has "confirmed": False
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # name or id → id
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, list[Any]] = field(default_factory=dict)
    down: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # ---- set-up --------------------------------------------------------------------------

    def add_user(self, email: str, user_id: str, *, confirmed: bool = True) -> None:
        self.users[email.lower()] = {"id": user_id, "email": email, "confirmed": confirmed}

    def add_channel(self, name: str, channel_id: str) -> None:
        self.channels[name] = channel_id
        self.channels[f"#{name}"] = channel_id
        self.channels[channel_id] = channel_id

    def fail(self, method: str, *answers: Any) -> None:
        with self.changed:
            self.failures.setdefault(method, []).extend(answers)

    # ---- reading what happened ---------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        with self.changed:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30) -> list[Call]:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(c.method == method for c in self.calls) >= count, timeout=timeout
            )
        assert ok, f"expected {count} calls of {method}, got {self.called(method)}"
        return self.called(method)

    def posted(self) -> list[dict[str, Any]]:
        """Messages now in Slack (not thread replies), as Slack would show them."""
        return [m for m in self.messages.values() if not m.get("thread_ts")]

    # ---- answering -------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any], auth: str) -> tuple[int, Any, dict]:
        with self.changed:
            queued = self.failures.get(method) or []
            behaviour = queued.pop(0) if queued else None
        if self.down:
            return 503, "<html>Slack is down</html>", {}
        if behaviour == "hang":
            self.release.wait(60)
            return 500, {"ok": False, "error": "fatal_error"}, {}
        if isinstance(behaviour, tuple) and behaviour[0] == "slow":
            time.sleep(behaviour[1])  # then answer as usual
            behaviour = None
        if isinstance(behaviour, tuple) and behaviour[0] == "429":
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(behaviour[1])}
        if isinstance(behaviour, int):
            return behaviour, "<html>upstream error</html>", {}
        if isinstance(behaviour, str):
            return 200, {"ok": False, "error": behaviour}, {}
        if auth != f"Bearer {BOT_TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _channel_of(self, given: str) -> str | None:
        if given.startswith("U"):
            return "D" + given[1:]  # a direct message to a user
        return self.channels.get(given)

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = self._channel_of(str(params.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        self.messages[(channel, ts)] = {"channel": channel, "ts": ts, **params}
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text")}}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key].update(params)
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("ts")))
        if self.messages.pop(key, None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        return {"ok": True, "view": {"id": "V123", **(view or {})}}

    def _users_lookupByEmail(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        user = self.users.get(str(params.get("email", "")).lower())
        if user is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": self._user_json(user)}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        for user in self.users.values():
            if user["id"] == params.get("user"):
                return {"ok": True, "user": self._user_json(user)}
        return {"ok": False, "error": "user_not_found"}

    @staticmethod
    def _user_json(user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user["id"],
            "team_id": "T0FAKE",
            "deleted": False,
            "is_bot": False,
            "is_email_confirmed": user["confirmed"],
            "profile": {"email": user["email"], "real_name": user["email"].split("@")[0]},
        }


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            method = parts.path.rsplit("/", 1)[-1]
            params: dict[str, Any] = dict(parse_qsl(parts.query))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type", "")
            if body and "json" in content_type:
                params.update(json.loads(body))
            elif body:
                params.update(parse_qsl(body.decode()))
            call = Call(method, params, {k.lower(): v for k, v in self.headers.items()})
            with fake.changed:
                fake.calls.append(call)
                fake.changed.notify_all()
            status, answer, headers = fake.answer(
                method, params, self.headers.get("Authorization", "")
            )
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            try:
                self.send_response(status)
                kind = "text/html" if isinstance(answer, str) else "application/json"
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a hang it timed out on)

        do_GET = _serve  # noqa: N815 - http.server's naming
        do_POST = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    # From the top of the range: the webhook receivers take ports from the bottom.
    with serving(_handler(fake), from_top=True) as server:
        fake.port = server.server_address[1]
        try:
            yield fake
        finally:
            fake.release.set()


# ------------------------------------------------------------------------------------------------
# Fixtures (imported by the conftest.py of the Slack tests)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_slack(settings) -> Iterator[FakeSlack]:
    with running() as fake:
        settings.SLACK_API_URL = fake.url
        settings.SLACK_TIMEOUT = 2
        settings.SLACK_CLICK_TIMEOUT = 1
        fake.add_user("alice@example.com", "UALICE")
        fake.add_user("bob@example.com", "UBOB")
        fake.add_user("rita@example.com", "URITA")  # the requester in these tests
        fake.add_user("mallory@example.com", "UMALLORY")  # in Slack, but no approver
        fake.add_channel("approvals", "C0APPROVALS")
        yield fake


@pytest.fixture
def slack_connection(environment, fake_slack):
    from tokens.delivery.slack import connections

    return connections.slack_connect(
        environment=environment,
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        default_channel="approvals",
    )


# ------------------------------------------------------------------------------------------------
# What Slack sends to the interactivity URL
# ------------------------------------------------------------------------------------------------


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_post(
    client: Any,
    payload: dict[str, Any],
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    tamper: bool = False,
) -> Any:
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = signature(secret, stamp, body)
    if tamper:
        body = body.replace("approve", "reject")
    return client.post(
        "/integrations/slack/interactivity",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=stamp,
        HTTP_X_SLACK_SIGNATURE=signed,
        HTTP_USER_AGENT="Slackbot 1.0 (+https://api.slack.com/robots)",
    )


def click(
    token: Any,
    *,
    user: str = "UALICE",
    action: str = "approve",
    channel: str = "C0APPROVALS",
    message_ts: str = "1700000000.000100",
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "trigger_id": "1234.5678.trigger",
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [
            {
                "type": "button",
                "block_id": "waitpoints:decide",
                "action_id": action,
                "value": token.friendly_id,
            }
        ],
    }


def submission(
    token: Any, *, decision: str, values: dict[str, Any], user: str = "UALICE"
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": user, "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "view": {
            "id": "V123",
            "callback_id": "waitpoints:form",
            "private_metadata": json.dumps({"token": token.friendly_id, "decision": decision}),
            "state": {"values": values},
        },
    }
