"""Run by the runner in the bench database: each list shape through the real view, then
``EXPLAIN (ANALYZE, BUFFERS)`` of the token query it ran. Reads {name: path} as JSON on stdin,
the API key as the argument; prints {name: {...}} as JSON.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402


def token_queries(path: str, secret: str) -> tuple[int, list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # A list filtered by status reads a UNION ALL of parts: "(SELECT …) UNION ALL (…)".
        if 'FROM "tokens_token"' in sql and sql.lstrip("( \n").startswith("SELECT"):
            seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")
    return response.status_code, seen


def explain(sql: str, params: Any) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        text = connection.ops.last_executed_query(cursor, sql, params) or sql
    return text.removeprefix("EXPLAIN (ANALYZE, BUFFERS) "), plan


def main() -> None:
    secret = sys.argv[1]
    shapes: dict[str, str] = json.load(sys.stdin)
    out: dict[str, Any] = {}
    for name, path in shapes.items():
        status, queries = token_queries(path, secret)
        explained = [explain(sql, params) for sql, params in queries]
        plans = [plan for _, plan in explained]
        found = [re.search(r"Execution Time: ([\d.]+)", plan) for plan in plans]
        timing = [float(match.group(1)) for match in found if match]
        out[name] = {
            "path": path,
            "status": status,
            "queries": [{"sql": sql, "plan": plan} for sql, plan in explained],
            "seq_scan_on_tokens": any(
                re.search(r"Seq Scan on tokens_token(tag)?\b", plan) for plan in plans
            ),
            "execution_ms": round(sum(timing), 3),
        }
    print(json.dumps(out))


main()
