"""Wire compatibility with the official TypeScript SDK (`@trigger.dev/sdk`, pinned in package.json).

The test starts a live server on the test database, seeds tokens, runs ``node drive.mjs`` (which
calls ``wait.createToken``, ``retrieveToken``, ``listTokens``, ``completeToken``,
``auth.withAuth`` and ``auth.createPublicToken`` through the SDK, plus plain ``fetch`` for the
callback URL and our cancel extension) and asserts on the JSON report it prints. List results
are compared with what the database holds. All mismatches are collected and reported together.

``bin/test`` runs ``npm ci`` in this directory first. A missing ``node`` or SDK is a failure, not
a skip: a compatibility suite that silently does not run proves nothing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from tokens.domain import actors, deadline, lifecycle, tenancy
from tokens.domain.representation import v1_status
from tokens.models import Environment, Token

SDK_DIR = Path(__file__).resolve().parent
SCRIPT = SDK_DIR / "drive.mjs"
RESULT_PREFIX = "SDK_RESULT "

pytestmark = [pytest.mark.sdk, pytest.mark.django_db(transaction=True)]


def pinned_sdk_version() -> str:
    package = json.loads((SDK_DIR / "package.json").read_text())
    return package["dependencies"]["@trigger.dev/sdk"]


def require_node_and_sdk() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the SDK compatibility test needs Node.js 18+")
    installed = SDK_DIR / "node_modules" / "@trigger.dev" / "sdk" / "package.json"
    if not installed.exists():
        pytest.fail(
            "@trigger.dev/sdk is not installed: run `npm ci --no-audit --no-fund` in tests/sdk "
            "(bin/test does this)"
        )
    version = json.loads(installed.read_text())["version"]
    if version != pinned_sdk_version():
        pytest.fail(
            f"tests/sdk/node_modules has @trigger.dev/sdk {version}, package.json pins "
            f"{pinned_sdk_version()}: run `npm ci` in tests/sdk"
        )
    return node


class Checks:
    """Soft assertions: every mismatch is collected, then reported together."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def that(self, condition: bool, message: str) -> bool:
        if not condition:
            self.failures.append(message)
        return condition

    def eq(self, what: str, actual: Any, expected: Any) -> bool:
        return self.that(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def seed(environment: Environment, now: datetime) -> None:
    """Tokens the list queries run over, in every state and at several creation times."""
    system = actors.Actor.system()

    def make(tags: list[str], *, when: datetime | None = None, **kwargs: Any) -> Token:
        return lifecycle.token_create(
            environment=environment, actor=system, tags=tags, now=when, **kwargs
        ).token

    for _ in range(3):
        make(["seed-a"])
    for _ in range(2):
        make(["seed-a", "seed-b"])
    for n in range(2):
        lifecycle.token_complete(token=make(["seed-b"]), actor=system, data={"n": n})
    lifecycle.token_force_timeout(token=make(["seed-b"]), actor=system)
    lifecycle.token_cancel(token=make(["seed-a"]), actor=system, reason="seeded")
    for _ in range(3):
        make(["seed-old"], when=now - timedelta(days=3), timeout="30d")
    make(["seed-old"], when=now - timedelta(days=10), timeout="30d")
    make(["seed-k"], idempotency_key="seed-key")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def list_queries(now: datetime, run_tag: str) -> dict[str, dict[str, Any]]:
    """``wait.listTokens`` params by name; {"$date": ms} becomes a JS Date in drive.mjs."""
    return {
        "seedA": {"tags": ["seed-a"], "limit": 2},
        "seedAOrB": {"tags": ["seed-a", "seed-b"], "limit": 2},
        "waitingOrCompleted": {
            "status": ["WAITING", "COMPLETED"],
            "tags": ["seed-a", "seed-b"],
            "limit": 2,
        },
        "timedOut": {"status": "TIMED_OUT", "limit": 2},
        "completedStringTag": {"status": "COMPLETED", "tags": "seed-b", "limit": 2},
        "period": {"period": "24h", "tags": ["seed-old", "seed-a"], "limit": 2},
        "fromTo": {
            "from": {"$date": epoch_ms(now - timedelta(days=4))},
            "to": {"$date": epoch_ms(now - timedelta(days=2))},
            "limit": 2,
        },
        "fromOnly": {
            "from": {"$date": epoch_ms(now - timedelta(days=5))},
            "tags": ["seed-old"],
            "limit": 2,
        },
        "idempotencyKey": {"idempotencyKey": "seed-key", "limit": 2},
        "run": {"tags": [run_tag], "limit": 2},
        "everything": {"limit": 2},
    }


def expected_ids(environment: Environment, params: dict[str, Any], now: datetime) -> list[str]:
    """What the list should return, newest first, computed from the database."""
    statuses = params.get("status")
    if isinstance(statuses, str):
        statuses = [statuses]
    tags = params.get("tags")
    if isinstance(tags, str):
        tags = [tags]
    since = now - timedelta(hours=24) if params.get("period") == "24h" else None
    assert params.get("period") in (None, "24h")
    start = params.get("from", {}).get("$date")
    end = params.get("to", {}).get("$date")
    rows = []
    for token in Token.objects.filter(environment=environment).order_by("-id"):
        if statuses and v1_status(deadline.effective(token, now).status) not in statuses:
            continue
        if tags and not set(tags) & set(token.tags):
            continue
        if "idempotencyKey" in params and token.idempotency_key != params["idempotencyKey"]:
            continue
        if since and token.created_at < since:
            continue
        if start is not None and epoch_ms(token.created_at) < start:
            continue
        if end is not None and epoch_ms(token.created_at) > end:
            continue
        rows.append(token.friendly_id)
    return rows


def jwt_payload(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def run_driver(node: str, env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "VERCEL_"))}
    try:
        completed = subprocess.run(
            [node, str(SCRIPT)],
            cwd=SDK_DIR,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"drive.mjs did not finish within 180 s; stderr: {error.stderr!r}")
    lines = [ln for ln in completed.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        pytest.fail(
            f"drive.mjs exited with {completed.returncode} and no report\n"
            f"stdout:\n{completed.stdout[-4000:]}\nstderr:\n{completed.stderr[-4000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def test_official_sdk_against_live_server(live_server, settings) -> None:
    node = require_node_and_sdk()
    settings.PUBLIC_BASE_URL = live_server.url
    environment = tenancy.environment_get_or_create(project_slug="sdk", slug="dev")
    _api_key, secret = tenancy.api_key_create(environment=environment, name="sdk-compat")
    seed(environment, timezone.now())

    run_tag = f"sdk-run-{uuid.uuid4().hex[:8]}"
    queries = list_queries(timezone.now(), run_tag)
    report = run_driver(
        node,
        {
            "BASE_URL": live_server.url,
            "TRIGGER_KEY": secret,
            "RUN_TAG": run_tag,
            "LIST_QUERIES": json.dumps(queries),
        },
    )
    print(json.dumps(report))  # shown by pytest on failure

    check = Checks()
    check.eq("SDK version", report["sdkVersion"], pinned_sdk_version())
    steps = report["steps"]

    def ok(name: str) -> dict[str, Any] | None:
        result = steps.get(name)
        if result is None:
            check.failures.append(f"{name}: step did not run (an earlier step failed)")
            return None
        if not result["ok"]:
            check.failures.append(f"{name}: the SDK threw {result['error']}")
            return None
        return result["value"]

    def date(value: Any) -> str | None:
        """The ISO string of a value the SDK returned as a Date; None (and a failure) if not."""
        if isinstance(value, dict) and isinstance(value.get("$date"), str):
            return value["$date"]
        return None

    # --- create ---------------------------------------------------------------------------
    full = ok("createFull")
    full_token = None
    if full:
        check.that(full["id"].startswith("waitpoint_"), f"createFull id: {full['id']!r}")
        check.eq("createFull isCached", full["isCached"], False)
        check.that(
            full["url"].startswith(f"{live_server.url}/api/v1/waitpoints/tokens/{full['id']}/"),
            f"createFull url should point at the live server: {full['url']!r}",
        )
        pat = full.get("publicAccessToken", "")
        check.that(pat.count(".") == 2, f"createFull publicAccessToken is not a JWT: {pat!r}")
        if pat.count(".") == 2:
            claims = jwt_payload(pat)
            check.eq(
                "publicAccessToken scopes", claims.get("scopes"), [f"write:waitpoints:{full['id']}"]
            )
            check.eq("publicAccessToken sub", claims.get("sub"), environment.public_id)
            check.eq("publicAccessToken pub", claims.get("pub"), True)
        full_token = Token.objects.filter(environment=environment).get(
            idempotency_key=f"idem-{run_tag}"
        )
        check.eq("createFull id in database", full_token.friendly_id, full["id"])
        check.eq("createFull tags stored", full_token.tags, [run_tag, "user:1234"])
        timeout_s = (full_token.timeout_at - full_token.created_at).total_seconds()
        check.that(abs(timeout_s - 600) < 2, f"createFull timeout 10m, got {timeout_s} s")
        ttl_s = (full_token.idempotency_key_expires_at - full_token.created_at).total_seconds()
        check.that(abs(ttl_s - 3600) < 2, f"createFull idempotencyKeyTTL 1h, got {ttl_s} s")

    cached = ok("createCached")
    if cached and full:
        check.eq("createCached isCached", cached["isCached"], True)
        check.eq("createCached id", cached["id"], full["id"])
        check.eq("createCached url", cached["url"], full["url"])
        check.that(bool(cached.get("publicAccessToken")), "createCached has no publicAccessToken")

    dated = ok("createDate")
    if dated:
        check.eq("createDate isCached", dated["isCached"], False)
        token = Token.objects.get(environment=environment, tags=[f"{run_tag}-single"])
        check.eq("createDate id", token.friendly_id, dated["id"])
        check.eq(
            "createDate timeoutAt (a Date sent as ISO)",
            token.timeout_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            report["dateTimeout"],
        )

    empty = ok("createEmpty")
    if empty:
        token = Token.objects.get(
            environment=environment, id=empty["id"].removeprefix("waitpoint_")
        )
        check.eq("createEmpty tags", token.tags, [])
        check.that(
            token.timeout_at is not None
            and abs((token.timeout_at - token.created_at).total_seconds() - 600) < 2,
            f"createEmpty: default timeout 10m expected, got {token.timeout_at}",
        )

    # --- retrieve -------------------------------------------------------------------------
    waiting = ok("retrieveWaiting")
    if waiting and full and full_token:
        check.eq("retrieveWaiting id", waiting["id"], full["id"])
        check.eq("retrieveWaiting url", waiting["url"], full["url"])
        check.eq("retrieveWaiting status", waiting["status"], "WAITING")
        check.eq("retrieveWaiting tags", waiting["tags"], [run_tag, "user:1234"])
        check.eq("retrieveWaiting idempotencyKey", waiting.get("idempotencyKey"), f"idem-{run_tag}")
        for field in ("timeoutAt", "createdAt", "idempotencyKeyExpiresAt"):
            check.that(date(waiting.get(field)) is not None, f"retrieveWaiting {field} not a Date")
        check.eq(
            "retrieveWaiting timeoutAt",
            date(waiting.get("timeoutAt")),
            full_token.timeout_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        check.that("completedAt" not in waiting, f"retrieveWaiting completedAt: {waiting}")
        check.that("output" not in waiting and "error" not in waiting, f"waiting: {waiting}")
    by_object = ok("retrieveByObject")
    if by_object and waiting:
        check.eq("retrieveByObject", by_object, waiting)

    # --- complete -------------------------------------------------------------------------
    check.eq("completeObject", ok("completeObject"), {"success": True})
    completed = ok("retrieveCompleted")
    if completed:
        check.eq("retrieveCompleted status", completed["status"], "COMPLETED")
        check.eq(
            "retrieveCompleted output",
            completed.get("output"),
            {"status": "approved", "comment": "LGTM"},
        )
        check.that(date(completed.get("completedAt")) is not None, "completedAt is not a Date")
        check.that("error" not in completed, f"retrieveCompleted error: {completed.get('error')}")
    check.eq("completeAgain (already completed)", ok("completeAgain"), {"success": True})
    again = ok("retrieveAfterSecondComplete")
    if again:
        check.eq(
            "first completion wins", again.get("output"), {"status": "approved", "comment": "LGTM"}
        )

    check.eq("completeString", ok("completeString"), {"success": True})
    as_string = ok("retrieveString")
    if as_string:
        check.eq("retrieveString status", as_string["status"], "COMPLETED")
        check.eq("retrieveString output", as_string.get("output"), "plain text")

    check.eq("completeNoData", ok("completeNoData"), {"success": True})
    no_data = ok("retrieveNoData")
    if no_data:
        check.eq("retrieveNoData status", no_data["status"], "COMPLETED")
        check.that("output" not in no_data, f"retrieveNoData output: {no_data.get('output')!r}")

    check.eq("completeWithPat", ok("completeWithPat"), {"success": True})
    by_pat = ok("retrievePat")
    if by_pat:
        check.eq("retrievePat status", by_pat["status"], "COMPLETED")
        check.eq("retrievePat output", by_pat.get("output"), {"via": "publicAccessToken"})

    public_token = ok("createPublicToken")
    if public_token:
        claims = jwt_payload(public_token)
        scoped = steps.get("createForPublicToken", {}).get("value", {}).get("id")
        check.eq("createPublicToken scopes", claims.get("scopes"), [f"write:waitpoints:{scoped}"])
        check.eq("createPublicToken sub", claims.get("sub"), environment.public_id)
    check.eq("completeWithPublicToken", ok("completeWithPublicToken"), {"success": True})
    by_public = ok("retrievePublicToken")
    if by_public:
        check.eq("retrievePublicToken status", by_public["status"], "COMPLETED")
        check.eq(
            "retrievePublicToken output", by_public.get("output"), {"via": "createPublicToken"}
        )
    wrong_scope = steps.get("completeOtherWithPublicToken")
    if check.that(wrong_scope is not None, "completeOtherWithPublicToken did not run"):
        check.that(
            not wrong_scope["ok"] and wrong_scope["error"].get("status") in (401, 403),
            f"a public token for another waitpoint must be refused with 401/403: {wrong_scope}",
        )
        check.that(wrong_scope["ms"] < 3000, f"refusal was retried: {wrong_scope['ms']} ms")
    other = ok("retrieveOther")
    if other:
        check.eq("token completed with a wrongly scoped JWT: status", other["status"], "WAITING")

    # --- callback URL ---------------------------------------------------------------------
    callback = ok("callbackPost")
    if callback:
        check.eq("callback POST status", callback["status"], 200)
        check.eq("callback POST success", callback["body"].get("success"), True)
    via_callback = ok("retrieveCallback")
    if via_callback:
        check.eq("retrieveCallback status", via_callback["status"], "COMPLETED")
        check.eq(
            "retrieveCallback output",
            via_callback.get("output"),
            {"approved": True, "by": "webhook", "items": [1, 2, 3]},
        )

    # --- unknown id -----------------------------------------------------------------------
    unknown = steps.get("retrieveUnknown")
    if check.that(unknown is not None, "retrieveUnknown did not run"):
        check.that(not unknown["ok"], f"retrieving an unknown id should throw: {unknown}")
        if not unknown["ok"]:
            check.eq("retrieveUnknown status", unknown["error"].get("status"), 404)
            check.eq(
                "retrieveUnknown message", unknown["error"].get("message"), "Waitpoint not found"
            )
        check.that(unknown["ms"] < 3000, f"retrieveUnknown took {unknown['ms']} ms (retried?)")

    # --- timeout --------------------------------------------------------------------------
    ruled = ok("retrieveDecidedByDeadline")
    if ruled:
        check.eq("decided by the deadline: status", ruled["status"], "COMPLETED")
        check.that("error" not in ruled, f"decided by the deadline: an error: {ruled}")
        decided = ruled.get("output") or {}
        check.eq("decided by the deadline: status in output", decided.get("status"), "rejected")
        check.eq("decided by the deadline: by", decided.get("by"), "deadline rule")
    timed_out = ok("retrieveTimedOut")
    if timed_out:
        check.eq("retrieveTimedOut status", timed_out["status"], "TIMED_OUT")
        check.that("output" not in timed_out, f"timed out token has output: {timed_out}")
        error = (timed_out.get("error") or {}).get("$error", {})
        check.eq("retrieveTimedOut error name", error.get("name"), "WaitpointTimeoutError")
        check.that(
            str(error.get("message", "")).startswith("Waitpoint timed out at "),
            f"retrieveTimedOut error message: {error.get('message')!r}",
        )
        check.that(date(timed_out.get("completedAt")) is not None, "timed out: no completedAt")
    check.eq("completeTimedOut (no-op)", ok("completeTimedOut"), {"success": True})
    still = ok("retrieveTimedOutAfterComplete")
    if still:
        check.eq("completion after timeout changes nothing", still["status"], "TIMED_OUT")

    # --- cancel ---------------------------------------------------------------------------
    cancel = ok("cancelPost")
    if cancel:
        check.eq("cancel POST status", cancel["status"], 200)
        check.eq("cancel POST success", cancel["body"].get("success"), True)
        check.eq("cancel POST statusDetail", cancel["body"].get("statusDetail"), "CANCELLED")
    cancelled = ok("retrieveCancelled")
    if cancelled:
        check.eq("retrieveCancelled status", cancelled["status"], "TIMED_OUT")
        error = (cancelled.get("error") or {}).get("$error", {})
        check.eq("retrieveCancelled error name", error.get("name"), "WaitpointTimeoutError")
        check.eq("retrieveCancelled error message", error.get("message"), "Cancelled: x")
        check.that("output" not in cancelled, f"cancelled token has output: {cancelled}")
        check.that("statusDetail" not in cancelled, "the SDK passed our extra field through")
    check.eq("completeCancelled (no-op)", ok("completeCancelled"), {"success": True})

    # --- lists, compared with the database --------------------------------------------------
    now = timezone.now()
    lists = report.get("lists", {})
    for name, params in queries.items():
        result = lists.get(name)
        if not check.that(result is not None and result["ok"], f"list {name}: {result}"):
            continue
        expected = expected_ids(environment, params, now)
        check.that(len(expected) > 0, f"list {name}: the query selects nothing; fix the test")
        check.eq(f"list {name} ids (for await)", result["ids"], expected)
        paged = [i for page in result["pages"] for i in page["ids"]]
        check.eq(f"list {name} ids (page by page)", paged, expected)
        sizes = [len(page["ids"]) for page in result["pages"]]
        check.that(all(size <= 2 for size in sizes), f"list {name}: limit 2 ignored: {sizes}")
        check.that(
            all(size == 2 for size in sizes[:-1]), f"list {name}: short page before the end {sizes}"
        )
        check.eq(f"list {name} last page next", result["pages"][-1]["next"], None)
        if result.get("first"):
            check.that(
                date(result["first"].get("createdAt")) is not None,
                f"list {name}: createdAt is not a Date",
            )
    check.that(
        len(lists.get("everything", {}).get("pages", [])) > 5,
        "the unfiltered list should span several pages",
    )

    assert not check.failures, "SDK incompatibilities:\n  " + "\n  ".join(check.failures)
