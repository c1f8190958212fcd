"""A real Celery worker and beat against PostgreSQL and Redis, in a subprocess.

The worker gets DATABASE_URL pointing at the *test* database, so rows created here are the rows it
sweeps; `transaction=True` commits them where another connection can see them.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.live import HYPERCORN
from tests.smoke.processes import (
    BIN,
    free_port,
    port_is_closed,
    request,
    running,
    subprocess_env,
    tail,
    wait_for_health,
    wait_until,
)
from tokens import services
from tokens.models import OutboxMessage, Token, TokenEvent

pytestmark = pytest.mark.timeout(180)

CLOSED_BROKER_PORT = 6399


def _test_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        # Beat's schedule file; a directory that does not exist yet, as on a fresh deployment.
        "WAITPOINTS_VAR_DIR": str(tmp_path / "var"),
    }
    return subprocess_env(**{**env, **overrides})


@pytest.mark.django_db(transaction=True)
def test_it_sweeps_due_tokens_with_a_real_worker_and_beat(tmp_path, environment, make_token):
    due = [make_token(timeout="1s") for _ in range(3)]
    waiting = make_token(timeout="10m")
    assert connection.vendor == "postgresql"

    args = [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--beat", "--loglevel=info"]
    args += ["--concurrency=2", f"--hostname=test-worker-{secrets.token_hex(4)}@%h"]
    log = tmp_path / "worker.log"
    with running(args, env=_env(tmp_path), log=log) as worker:

        def all_swept() -> bool:
            assert worker.poll() is None, tail(log)
            ids = [token.pk for token in due]
            return Token.objects.filter(pk__in=ids, status=Token.Status.TIMED_OUT).count() == 3

        assert wait_until(all_swept, timeout=30), tail(log)

    for token in due:
        token.refresh_from_db()
        assert token.status == Token.Status.TIMED_OUT
        assert token.output_is_error is True
        assert token.completed_at is not None
        events = TokenEvent.objects.filter(token=token, kind=TokenEvent.Kind.TIMED_OUT)
        assert events.count() == 1
        assert events.get().channel == TokenEvent.Channel.SYSTEM
    waiting.refresh_from_db()
    assert waiting.status == Token.Status.WAITING
    assert "tokens.tasks.expire_timed_out_tokens" in log.read_text()


@pytest.mark.django_db(transaction=True)
def test_a_request_never_waits_on_a_broker_that_is_down(tmp_path, environment):
    assert port_is_closed(CLOSED_BROKER_PORT)
    _api_key, key = services.api_key_create(environment=environment, name="broker-down")
    port = free_port()
    env = _env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{CLOSED_BROKER_PORT}/0")
    env.update(PORT=str(port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY="1")
    args = HYPERCORN  # the web role as the Procfile starts it
    log = tmp_path / "web.log"
    with running(args, env=env, log=log) as web:
        base = f"http://127.0.0.1:{port}"
        health = wait_for_health(base, web, log)
        assert health["broker"] == "unavailable"

        for attempt in range(3):
            started = time.monotonic()
            status, body = request(
                "POST",
                f"{base}/api/v1/waitpoints/tokens",
                body={"timeout": "10m", "approvers": [f"approver{attempt}@example.com"]},
                key=key,
                timeout=30,
            )
            elapsed = time.monotonic() - started
            assert status == 200, body
            # Loose, but below the 2 s that one pooled-connection publish used to retry for.
            assert elapsed < 1.5, f"create took {elapsed:.1f} s with the broker down"
            token_id = body["id"].removeprefix("waitpoint_")
            message = OutboxMessage.objects.get(token_id=token_id)
            assert message.kind == OutboxMessage.Kind.APPROVAL_EMAIL
            assert message.payload == {"to": f"approver{attempt}@example.com"}
            assert message.delivered_at is None  # nobody delivered it: it waits for the worker

    assert "broker unavailable; outbox delivery deferred" in log.read_text(), tail(log)
