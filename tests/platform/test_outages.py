"""Issue 9 #7: outages answer as outages, and /healthz tells worker, beat and sweep apart.

The database outages run the Procfile's ``web`` role in a subprocess pointed at a port where
nothing listens (PostgreSQL down) or at a server that accepts and never answers (PostgreSQL
hanging). Beat's Redis outage runs a real beat through a TCP proxy to Redis that the test cuts.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from tests.live import test_database_url
from tests.outages import SilentServer, TcpProxy
from tests.smoke.processes import (
    BIN,
    free_port,
    honcho,
    manage,
    request,
    running,
    subprocess_env,
    tail,
    wait_until,
)
from tokens.models import Token
from tokens.platform import heartbeat

OUTAGE = {"error": "Service unavailable, try again shortly"}


def _timed(method: str, url: str, **kwargs) -> tuple[float, int, object]:
    started = time.monotonic()
    status, body = request(method, url, **kwargs)
    return time.monotonic() - started, status, body


def _html(url: str) -> tuple[float, int, str]:
    import urllib.error
    import urllib.request

    started = time.monotonic()
    req = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return time.monotonic() - started, status, text


def _web_env(tmp_path: Path, port: int, database_url: str) -> dict[str, str]:
    return subprocess_env(
        WAITPOINTS_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="outage-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=database_url,
        REDIS_URL=django_settings.REDIS_URL,
        DATABASE_CONNECT_TIMEOUT="2",
        WEB_CONCURRENCY="1",  # one process: "one warning a minute" is per process
        BIND_HOST="127.0.0.1",
        PORT=str(port),
    )


def _serve_web(tmp_path: Path, port: int, env: dict[str, str]):
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)  # the outage page's CSS
    log = tmp_path / "web.log"
    return running(honcho(port, "web"), env=env, log=log), log


def _wait_listening(base: str, log: Path) -> None:
    def answers() -> bool:
        try:
            return request("GET", f"{base}/healthz", timeout=5)[0] != 0
        except OSError:
            return False

    assert wait_until(answers, timeout=60, interval=0.3), tail(log)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("outage", ["down", "hanging"])
def test_it_answers_503_quickly_when_postgresql_is_down_or_hanging(tmp_path, outage):
    database_port = free_port()
    if outage == "hanging":
        silent: SilentServer | socket.socket = SilentServer(database_port)
    else:
        # Bound but not listening: connections are refused, and no one else takes the port.
        silent = socket.socket()
        # free_port() may hand out a port whose old connections linger in TIME_WAIT.
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", database_port))
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = _web_env(tmp_path, port, f"postgres://postgres@127.0.0.1:{database_port}/nowhere")
        server_context, log = _serve_web(tmp_path, port, env)
        with server_context:
            _wait_listening(base, log)
            key = "tr_dev_" + "k" * 43
            api = [_timed("GET", f"{base}/api/v1/waitpoints/tokens", key=key) for _ in range(3)]
            api += [
                _timed("POST", f"{base}/api/v1/waitpoints/tokens", body={}, key=key),
                _timed(
                    "POST",
                    f"{base}/api/v1/waitpoints/tokens/waitpoint_abc/callback/0123",
                    body={"ok": True},
                ),
            ]
            page = _html(f"{base}/api/v1/waitpoints/tokens/waitpoint_abc/callback/0123")
            checks = [_timed("GET", f"{base}/healthz") for _ in range(5)]
    finally:
        silent.close()

    print(
        "api",
        [round(e, 2) for e, _, _ in api],
        "page",
        round(page[0], 2),
        "healthz",
        [round(e, 2) for e, _, _ in checks],
    )
    for _elapsed, status, body in api:
        assert (status, body) == (503, OUTAGE), tail(log)
    assert page[1] == 503, page[2]
    assert "try again shortly" in page[2] and "<html" in page[2]
    for _elapsed, status, body in checks:
        assert status == 503
        assert body["status"] == "error"
        assert body["database"] in ("unavailable", "timeout")
        assert body["broker"] == "ok"
    # Generous bounds (the figures go to docs/security.md): an API answer within the connect
    # timeout plus slack, never a hang; /healthz within its own budget plus slack.
    assert max(elapsed for elapsed, _, _ in api) < 8, [round(e, 2) for e, _, _ in api]
    assert max(elapsed for elapsed, _, _ in checks) < 2.5, [round(e, 2) for e, _, _ in checks]
    # One warning a minute, not a traceback per request.
    output = log.read_text()
    assert "Traceback" not in output, tail(log)
    assert output.count("database unavailable, answering 503") == 1, tail(log)


# ------------------------------------------------------------------------------------------------
# /healthz: sweep lag and heartbeats (in process; the checks run on threads, so commit data)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_heartbeats(settings):
    from django.core.cache import caches

    for role in (heartbeat.WORKER, heartbeat.BEAT, heartbeat.DELIVERY):
        caches["default"].delete(heartbeat._heartbeat_key(role))
    yield
    for role in (heartbeat.WORKER, heartbeat.BEAT, heartbeat.DELIVERY):
        caches["default"].delete(heartbeat._heartbeat_key(role))


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_when_expiry_is_late(client, make_token, settings, clean_heartbeats):
    settings.WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS = 60
    body = client.get("/healthz").json()
    assert body["sweep"] == {"status": "ok", "lagSeconds": 0.0, "maxLagSeconds": 60}

    token = make_token(timeout="1h")
    Token.objects.filter(pk=token.pk).update(timeout_at=timezone.now() - timedelta(seconds=120))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "ok"
    assert body["sweep"]["status"] == "late"
    assert 120 <= body["sweep"]["lagSeconds"] < 180

    settings.WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS = 600
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_heartbeats(client, clean_heartbeats):
    body = client.get("/healthz").json()
    assert body["worker"] == {"status": "unknown"}
    assert body["beat"] == {"status": "unknown"}
    assert body["delivery"] == {"status": "unknown"}
    assert heartbeat.heartbeat_write(heartbeat.WORKER)
    assert heartbeat.heartbeat_write(heartbeat.DELIVERY)
    assert heartbeat.heartbeat_write(heartbeat.BEAT, now=time.time() - 100)
    body = client.get("/healthz").json()
    assert body["worker"]["status"] == "ok"
    assert body["worker"]["lastSeenSecondsAgo"] < 15
    assert body["delivery"]["status"] == "ok"
    assert body["beat"]["status"] == "stale"
    assert body["beat"]["lastSeenSecondsAgo"] >= 100
    # A stale beat is reported, not a 503: expiry lag decides (the sweep may still run).
    assert body["status"] == "ok"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_real_worker_and_beat_write_heartbeats(client, tmp_path, clean_heartbeats):
    env = subprocess_env(
        WAITPOINTS_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="heartbeat-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=test_database_url(),
        REDIS_URL=django_settings.REDIS_URL,
        WAITPOINTS_HEARTBEAT_SECONDS="1",
    )
    celery = str(BIN / "celery")
    worker = [celery, "-A", "waitpoints_site", "worker", "--pool", "solo", "--loglevel", "INFO"]
    beat = [celery, "-A", "waitpoints_site", "beat", "--loglevel", "INFO"]
    with (
        running(worker, env=env, log=tmp_path / "worker.log"),
        running(beat, env=env, log=tmp_path / "beat.log"),
    ):

        def both_ok() -> bool:
            body = client.get("/healthz").json()
            return body["worker"]["status"] == body["beat"]["status"] == "ok"

        assert wait_until(both_ok, timeout=60), tail(tmp_path / "worker.log") + tail(
            tmp_path / "beat.log"
        )


# ------------------------------------------------------------------------------------------------
# Beat during a Redis outage
# ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_beat_logs_one_warning_while_redis_is_down(tmp_path):
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    port = free_port()
    database_index = django_settings.REDIS_URL.rsplit("/", 1)[1] or "0"
    proxy = TcpProxy(port, real.connection_pool.connection_kwargs.get("port", 6379))
    env = subprocess_env(
        WAITPOINTS_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="beat-outage-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        REDIS_URL=f"redis://127.0.0.1:{port}/{database_index}",
        DATABASE_URL=test_database_url(),
    )
    real.delete("celery")
    log = tmp_path / "beat.log"
    beat = [str(BIN / "celery"), "-A", "waitpoints_site", "beat", "--loglevel", "INFO"]
    try:
        with running(beat, env=env, log=log):
            assert wait_until(lambda: real.llen("celery") >= 2, timeout=30), tail(log)
            before = len(log.read_text().splitlines())
            proxy.cut()
            outage_seconds = 15
            time.sleep(outage_seconds)  # the outage itself: what beat logs while it lasts
            during = log.read_text().splitlines()[before:]
            proxy = TcpProxy(port, real.connection_pool.connection_kwargs.get("port", 6379))
            sent = real.llen("celery")
            assert wait_until(lambda: real.llen("celery") > sent, timeout=30), tail(log)
    finally:
        proxy.cut()
        real.delete("celery")

    problems = [line for line in during if "WARNING" in line or "ERROR" in line]
    assert 1 <= len(problems) <= 3, "\n".join(during)
    assert not any("Traceback" in line for line in during), "\n".join(during)
    assert len(during) <= 5, "\n".join(during)
    print(f"beat, {outage_seconds} s Redis outage: {len(during)} lines, {len(problems)} warnings")
