"""``GET /healthz``: 200 when the database answers, 503 otherwise; reports the broker too."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from tokens import waiting


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return False


def _broker_status() -> str:
    if not settings.REDIS_URL:
        return "embedded"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        return "ok" if client.ping() else "unavailable"
    except Exception:  # noqa: BLE001
        return "unavailable"


def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    body = {
        "status": "ok" if database else "error",
        "database": "ok" if database else "unavailable",
        "broker": _broker_status(),
        # Long-poll waiters blocked in this web process (tokens.waiting).
        "waiters": waiting.blocked_waiters(),
    }
    return JsonResponse(body, status=200 if database else 503)
