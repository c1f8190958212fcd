"""A real Celery worker and beat against PostgreSQL and Redis, in a subprocess.

The worker gets DATABASE_URL pointing at the *test* database, so rows created here are the rows it
sweeps; `transaction=True` commits them where another connection can see them.
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection

from tests.live import test_database_url
from tests.smoke.processes import (
    BIN,
    WEB,
    free_port,
    port_is_closed,
    request,
    running,
    serving,
    subprocess_env,
    tail,
    wait_until,
)
from tokens.domain import tenancy
from tokens.models import OutboxMessage, Token, TokenEvent
from tokens.platform import heartbeat

pytestmark = pytest.mark.timeout(240)


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": test_database_url(),
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
    caches["default"].delete(heartbeat._heartbeat_key(heartbeat.DELIVERY))
    with running(args, env=_env(tmp_path), log=log) as worker:
        # The worker started its delivery process and reports it (/healthz "delivery").
        running_delivery = lambda: heartbeat.heartbeat_age(heartbeat.DELIVERY) is not None  # noqa: E731
        assert wait_until(running_delivery, timeout=30), tail(log)

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


@contextmanager
def redis_server(port: int, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A Redis of our own (the test stops, freezes and restarts it), on a free local port."""
    log = tmp_path / f"redis-{port}.log"
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "yes", "--dir", str(tmp_path)]  # queued work survives a restart
    with running(args, env=subprocess_env(), log=log) as server:
        assert wait_until(lambda: not port_is_closed(port), timeout=10), tail(log)
        yield server


def _timed(call) -> float:
    started = time.monotonic()
    status, body = call()
    assert status == 200, body
    return time.monotonic() - started


def _api_round(base: str, key: str, tag: str) -> dict[str, float]:
    """Create (with an approver: an outbox row), complete, callback, retrieve, list."""
    tokens = f"{base}/api/v1/waitpoints/tokens"
    timings: dict[str, float] = {}
    created: dict = {}

    def create():
        status, body = request(
            "POST", tokens, body={"approvers": [f"{tag}@example.com"], "tags": [tag]}, key=key
        )
        created.update(body if status == 200 else {})
        return status, body

    timings["create"] = _timed(create)
    token_id = created["id"]
    timings["retrieve"] = _timed(lambda: request("GET", f"{tokens}/{token_id}", key=key))
    timings["list"] = _timed(lambda: request("GET", f"{tokens}?filter[tags]={tag}", key=key))
    # The token with the approver keeps waiting: its e-mail must still go out after the outage.
    _status, done = request("POST", tokens, body={}, key=key)
    timings["complete"] = _timed(
        lambda: request("POST", f"{tokens}/{done['id']}/complete", body={"data": 1}, key=key)
    )
    _status, other = request("POST", tokens, body={}, key=key)
    timings["callback"] = _timed(lambda: request("POST", other["url"], body={"ok": True}))
    return timings


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


@pytest.mark.django_db(transaction=True)
def test_no_request_waits_on_a_broker_that_is_hung_or_down(tmp_path, environment):
    """Redis frozen with SIGSTOP (accepts connections, never answers), then killed: create,
    complete, callback, retrieve and list keep their latency (compared with the same requests
    against a healthy Redis in this run), and the work queued meanwhile is done once Redis is
    back: nothing is lost."""
    redis_port, web_port = free_port(), None
    _api_key, key = tenancy.api_key_create(environment=environment, name="broker-outage")
    with redis_server(redis_port, tmp_path) as redis:
        web_port = free_port()
        env = _env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
        env.update(PORT=str(web_port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY="1")
        args = WEB  # the web role as the Procfile starts it
        log = tmp_path / "web.log"
        base = f"http://127.0.0.1:{web_port}"
        with serving(args, env=env, log=log, base_url=base):
            healthy = _medians([_api_round(base, key, f"healthy{i}") for i in range(5)])

            os.kill(redis.pid, signal.SIGSTOP)
            try:
                hung = _medians([_api_round(base, key, f"hung{i}") for i in range(5)])
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            os.kill(redis.pid, signal.SIGKILL)
            redis.wait(timeout=10)
            down = _medians([_api_round(base, key, f"down{i}") for i in range(5)])
            web_log = log.read_text()

    print(f"median seconds: healthy {healthy}, hung {hung}, down {down}")
    for outage in (hung, down):
        for name, seconds in outage.items():
            # A publish that waited would cost the 2 s socket timeout: over 50× these requests.
            assert seconds < 5 * healthy[name] + 0.05, (name, healthy, hung, down)
    # The web role never publishes for the outbox (the delivery process polls it), so nothing
    # of the broker's outage reaches its log.
    assert "Traceback" not in web_log, web_log[-3000:]

    # The healthy rounds' e-mails stayed queued too: no worker ran during this test so far.
    assert OutboxMessage.objects.filter(delivered_at__isnull=True).count() == 15

    # Redis is back (its append-only file kept what was queued before the outage); a worker
    # delivers every e-mail that waited, from the outbox.
    with redis_server(redis_port, tmp_path):
        worker_env = _env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
        args = [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--beat"]
        args += ["--loglevel=info", "--concurrency=2"]
        args += [f"--hostname=outage-worker-{secrets.token_hex(4)}@%h"]
        worker_log = tmp_path / "worker.log"
        with running(args, env=worker_env, log=worker_log) as worker:

            def all_handled() -> bool:
                assert worker.poll() is None, tail(worker_log)
                return not OutboxMessage.objects.filter(
                    delivered_at__isnull=True, failed_at__isnull=True
                ).exists()

            assert wait_until(all_handled, timeout=60), tail(worker_log)
    assert OutboxMessage.objects.filter(delivered_at__isnull=False).count() == 15
    assert TokenEvent.objects.filter(kind=TokenEvent.Kind.EMAIL_SENT).count() == 15


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_redis_going_away_and_sweeps_again_within_seconds(
    tmp_path, environment, make_token, settings
):
    """A worker (with its delivery process) and beat on a Redis of our own; Redis killed while
    tokens come due, then started again: no process exits, the tokens are swept within a few
    seconds of Redis answering, and the delivery process delivered throughout."""
    from tests.delivery.webhooks.receiver import receiving
    from tokens.delivery.webhooks import endpoints as webhook_endpoints
    from tokens.domain import actors, lifecycle

    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver listens on 127.0.0.1
    redis_port = free_port()
    with redis_server(redis_port, tmp_path) as redis, receiving() as receiver:
        webhook_endpoints.webhook_endpoint_create(environment=environment, url=receiver.url)
        env = _env(
            tmp_path,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            WEBHOOKS_ALLOW_PRIVATE_TARGETS="True",
        )
        args = [str(BIN / "celery"), "-A", "waitpoints_site", "worker", "--beat"]
        args += ["--loglevel=info", "--concurrency=1"]
        args += [f"--hostname=redis-outage-{secrets.token_hex(4)}@%h"]
        log = tmp_path / "worker.log"
        with running(args, env=env, log=log) as worker:
            assert wait_until(lambda: "deliver: started" in log.read_text(), timeout=60), tail(log)
            assert wait_until(lambda: "ready." in log.read_text(), timeout=60), tail(log)
            redis.kill()
            redis.wait(timeout=10)
            due = [make_token(timeout="1s") for _ in range(2)]
            completed = make_token()
            lifecycle.token_complete(token=completed, actor=actors.Actor.system(), data=1)
            receiver.wait_for(1, timeout=15)  # delivered while Redis is down
            time.sleep(3)  # the worker has lost the broker by now and is reconnecting
            assert worker.poll() is None, tail(log)
            with redis_server(redis_port, tmp_path):
                back = time.monotonic()
                ids = [t.pk for t in due]

                def swept() -> bool:
                    timed_out = Token.objects.filter(pk__in=ids, status=Token.Status.TIMED_OUT)
                    return timed_out.count() == len(ids)

                assert wait_until(swept, timeout=30), tail(log)
                assert time.monotonic() - back < 8, tail(log)
                assert worker.poll() is None, tail(log)
    text = log.read_text()
    assert "Unrecoverable error" not in text and "'hostname'" not in text, tail(log)
