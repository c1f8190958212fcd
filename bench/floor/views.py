"""Look up the key, then insert, update or select one row of ``bench_floor_token`` (created by
the runner as ``LIKE tokens_token INCLUDING ALL``): the same SQL as the service, nothing else."""

from __future__ import annotations

import json

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from tokens.domain.keys import generate_token_id, key_digest


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _environment(request: HttpRequest) -> int | None:
    secret = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")[2].strip()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT environment_id FROM tokens_apikey WHERE digest = %s AND revoked_at IS NULL",
            [key_digest(secret)],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _unauthorized() -> JsonResponse:
    return JsonResponse({"error": "Invalid API key"}, status=401)


@csrf_exempt
def create(request: HttpRequest) -> HttpResponse:
    environment = _environment(request)
    if environment is None:
        return _unauthorized()
    body = json.loads(request.body or b"{}")
    token_id = generate_token_id()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor_token (id, environment_id, status, timeout_at, tags, "
            "approvers, output_type, output_is_error, created_at, cancel_reason) "
            "VALUES (%s, %s, 'WAITING', %s, %s, '[]', 'application/json', false, %s, '')",
            [token_id, environment, now, json.dumps(body.get("tags") or []), now],
        )
    return JsonResponse({"id": "waitpoint_" + token_id, "isCached": False})


@csrf_exempt
def complete(request: HttpRequest, token_id: str) -> HttpResponse:
    environment = _environment(request)
    if environment is None:
        return _unauthorized()
    body = json.loads(request.body or b"{}")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bench_floor_token SET status = 'COMPLETED', completed_at = now(), "
            "output = %s, output_type = 'application/super+json' "
            "WHERE id = %s AND environment_id = %s AND status = 'WAITING' RETURNING status",
            [
                json.dumps({"json": body.get("data")}),
                token_id.removeprefix("waitpoint_"),
                environment,
            ],
        )
        applied = cursor.fetchone() is not None
    return JsonResponse({"success": True, "applied": applied, "status": "COMPLETED"})


def retrieve(request: HttpRequest, token_id: str) -> HttpResponse:
    environment = _environment(request)
    if environment is None:
        return _unauthorized()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM bench_floor_token WHERE id = %s AND environment_id = %s",
            [token_id.removeprefix("waitpoint_"), environment],
        )
        row = cursor.fetchone()
        if row is None:
            return JsonResponse({"error": "Not found"}, status=404)
        names = [column.name for column in cursor.description or []]
    return JsonResponse(dict(zip(names, row, strict=True)), json_dumps_params={"default": str})
