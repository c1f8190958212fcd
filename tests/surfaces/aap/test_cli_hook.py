"""What the ``aap`` CLI's hooks (Claude Code, Codex) send, replayed over real HTTP.

The CLI is a Go binary that cannot be built here (no Go toolchain, no module proxy), so this
file replays its client (``internal/aap/client.go`` and ``types.go`` of
agentapprovalprotocol/agentapprovalprotocol at 25bcfdc) call for call: the create body a
PreToolUse hook builds (a seven-day ``timeout``, the runtime's context with the tool-use id), a
SHA-256 hex ``Idempotency-Key``, long polls ``?wait=<n>s`` of at most 25 s, and ``DELETE`` when it
gives up. Every answer is checked with a port of the CLI's ``decodeRequest`` + ``validate``: a
response it would refuse makes the hook deny the call ("fail closed"), so each rule there is a
rule for us."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from django.db import connection

from tests.surfaces.aap.conftest import complete, wait_for_request
from tokens.models import AapRequest, Token

pytestmark = pytest.mark.django_db(transaction=True)

SEVEN_DAYS = "604800s"
REQUEST_FIELDS = {
    "id",
    "tool",
    "server",
    "arguments",
    "timeout",
    "agent_reasoning",
    "context",
    "status",
    "created_at",
    "deadline_at",
    "decision",
}
REQUIRED = {"id", "tool", "arguments", "timeout", "status", "created_at", "deadline_at"}


def zulu(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cli_accepts(raw: str, submitted: dict[str, Any], previous: dict[str, Any] | None) -> dict:
    """The CLI's checks of one answer (decode.go ``decodeRequest``, types.go ``validate``)."""
    pairs: list[list[tuple[str, Any]]] = []
    answer = json.loads(raw, object_pairs_hook=lambda p: pairs.append(p) or dict(p))
    assert all(len({k for k, _ in p}) == len(p) for p in pairs), "duplicate keys"
    assert set(answer) <= REQUEST_FIELDS and set(answer) >= REQUIRED, sorted(answer)
    assert all(value is not None for value in answer.values())
    uuid.UUID(answer["id"])
    for field in ("tool", "arguments", "timeout"):
        assert answer[field] == submitted[field], field
    assert answer.get("server", "") == submitted.get("server", "")
    assert answer.get("agent_reasoning", "") == submitted.get("agent_reasoning", "")
    assert answer.get("context") == submitted.get("context")
    created, deadline = zulu(answer["created_at"]), zulu(answer["deadline_at"])
    assert deadline > created
    if previous is not None:
        for field in ("id", "created_at", "deadline_at"):
            assert answer[field] == previous[field], field
    if answer["status"] == "pending":
        assert "decision" not in answer
        return answer
    assert answer["status"] in {"approved", "denied", "expired", "cancelled"}
    decision = answer["decision"]
    assert set(decision) <= {"status", "note", "decided_at", "expires_at"}
    assert decision["status"] == answer["status"]
    assert zulu(decision["decided_at"]) >= created
    if answer["status"] == "approved":
        assert zulu(decision["expires_at"]) > zulu(decision["decided_at"])
    else:
        assert "expires_at" not in decision
    return answer


def pre_tool_use(tool: str, tool_input: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The body and key claudecode.go builds for one PreToolUse payload."""
    session, tool_use = str(uuid.uuid4()), "toolu_01ABC"
    body = {
        "tool": tool,
        "arguments": tool_input,
        "timeout": SEVEN_DAYS,
        "context": {
            "runtime": "claude-code",
            "session_id": session,
            "cwd": "/home/chris/app",
            "call_id": tool_use,
        },
    }
    attempt = hashlib.sha256(
        (f"{session}\x00{tool_use}\x00\x00{tool}\x00" + json.dumps(tool_input)).encode()
    ).hexdigest()
    key = hashlib.sha256(
        (attempt + "\x00" + json.dumps(body, separators=(",", ":"))).encode()
    ).hexdigest()
    return body, key


def decide(base: str, credential: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    """client.go ``Decide``: create, then long-poll while pending."""
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(base_url=base, headers=headers, timeout=35) as http:
        created = http.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
        assert created.status_code in (200, 201), created.text
        answer = cli_accepts(created.text, body, None)
        while answer["status"] == "pending":
            polled = http.get(f"/v1/requests/{answer['id']}", params={"wait": "25s"})
            assert polled.status_code == 200, polled.text
            answer = cli_accepts(polled.text, body, answer)
        return answer


def decide_in_background(web_url: str, api_key: str, data: object) -> threading.Thread:
    def run() -> None:
        try:
            request = wait_for_request(lambda r: r.token.status == Token.Status.WAITING)
            assert complete(web_url, api_key, request, data).status_code == 200
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_claude_code_bash_call_is_approved_in_the_form_the_hook_accepts(
    aap_web, base, credential, api_key
) -> None:
    body, key = pre_tool_use("Bash", {"command": "git push origin main", "timeout": 120000})
    decider = decide_in_background(aap_web.url, api_key, {"status": "approved", "comment": "Go"})
    answer = decide(base, credential, body, key)
    decider.join()
    assert answer["status"] == "approved" and answer["decision"]["note"] == "Go"
    request = AapRequest.objects.select_related("token").get(pk=answer["id"])
    assert request.token.title.endswith("asks to run Bash")
    # The seven-day window the hook asks for fits the default maximum, so it is echoed as sent.
    assert answer["timeout"] == SEVEN_DAYS


def test_a_denial_reaches_the_hook_with_the_approvers_note(
    aap_web, base, credential, api_key
) -> None:
    body, key = pre_tool_use("Write", {"file_path": "/etc/hosts", "content": "0.0.0.0 x"})
    decider = decide_in_background(
        aap_web.url, api_key, {"status": "rejected", "comment": "Not system files."}
    )
    answer = decide(base, credential, body, key)
    decider.join()
    assert answer["status"] == "denied" and answer["decision"]["note"] == "Not system files."


def test_the_hook_run_again_for_the_same_tool_use_gets_the_same_request(
    aap_web, base, credential, api_key
) -> None:
    body, key = pre_tool_use("Bash", {"command": "make deploy"})
    headers = {"Authorization": f"Bearer {credential}", "Idempotency-Key": key}
    first = httpx.post(f"{base}/v1/requests", json=body, headers=headers, timeout=10)
    again = httpx.post(f"{base}/v1/requests", json=body, headers=headers, timeout=10)
    assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
    assert cli_accepts(again.text, body, None)["id"] == first.json()["id"]
    assert AapRequest.objects.count() == 1


def test_a_hook_that_gives_up_cancels_and_nobody_is_left_asked(base, credential) -> None:
    body, key = pre_tool_use("Bash", {"command": "rm -rf build"})
    headers = {"Authorization": f"Bearer {credential}"}
    created = httpx.post(
        f"{base}/v1/requests", json=body, headers={**headers, "Idempotency-Key": key}, timeout=10
    )
    request_id = cli_accepts(created.text, body, None)["id"]
    gone = httpx.delete(f"{base}/v1/requests/{request_id}", headers=headers, timeout=10)
    assert gone.status_code == 200, gone.text
    answer = cli_accepts(gone.text, body, None)
    assert answer["status"] == "cancelled"
    assert AapRequest.objects.get(pk=request_id).token.status == Token.Status.CANCELLED
