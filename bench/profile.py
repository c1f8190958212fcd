"""Where a request's time goes: pyinstrument over the real views, in one process.

    .venv/bin/python -m bench.profile [create complete retrieve list] [--requests N]
    .venv/bin/python -m bench.profile create complete retrieve --requests 500 --wsgi

Creates (and drops) its own database ``waitpoints_bench_profile`` beside BENCH_DATABASE_URL,
then drives each operation through Django's WSGI handler (the test client) with pyinstrument and
prints the call tree and the SQL each request ran. Used to write docs/benchmarks/profile.md.

``--wsgi`` measures instead of profiling: each request is an environ dict handed straight to
``waitpoints_site.wsgi.application`` (what the web role's server calls, without the test
client's extras), sequentially, best of 3 rounds of N; it prints wall and CPU
(``time.process_time``: this process only, so the Redis and PostgreSQL clients but not the
servers) milliseconds per request.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
# Its own database, beside BENCH_DATABASE_URL (BENCH_PROFILE_DB names another, so that two
# checkouts on one server do not drop each other's).
DB_NAME = os.environ.get("BENCH_PROFILE_DB", "waitpoints_bench_profile")


def admin_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="*", default=["create", "complete", "retrieve", "list"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--all", action="store_true", help="show library frames too")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="cProfile on CPU time instead (excludes waiting for PostgreSQL): top functions",
    )
    parser.add_argument(
        "--wsgi",
        action="store_true",
        help="no profiler: time requests through the WSGI application, best of 3 rounds",
    )
    args = parser.parse_args()
    config = {
        "ops": args.ops,
        "n": args.requests,
        "all": args.all,
        "cpu": args.cpu,
        "wsgi": args.wsgi,
    }
    base, _, _ = admin_url().rpartition("/")
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{DB_NAME}",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "DEBUG": "False",
        # As bench/run: every call counts in Redis, none is refused.
        "WAITPOINTS_RATELIMIT_API_CALLS": "1000000000/1m",
        "WAITPOINTS_VAR_DIR": str(ROOT / "var" / "bench-run" / "var"),
    }
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        subprocess.run(
            [sys.executable, "-c", _INNER, json.dumps(config)],
            cwd=ROOT,
            env=env,
            check=True,
        )
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


_INNER = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
django.setup()
from django.db import connection
from django.test import Client
from pyinstrument import Profiler

from tokens.domain import tenancy

config = json.loads(sys.argv[1])
n = config["n"]
environment = tenancy.environment_get_or_create(project_slug="profile", slug="dev")
_, secret = tenancy.api_key_create(environment=environment)
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
path = "/api/v1/waitpoints/tokens"
body = json.dumps({"timeout": "1h", "tags": ["order:42", "refund"]})
# --wsgi: three rounds of complete, each on tokens of its own.
rounds = 3 if config["wsgi"] else 1
ids = [
    client.post(path, body, content_type="application/json").json()["id"]
    for _ in range(rounds * n + 100)
]

def create(i):
    return client.post(path, body, content_type="application/json")

def complete(i):
    return client.post(f"{path}/{ids[i]}/complete", '{"data":{"approved":true}}',
                       content_type="application/json")

def retrieve(i):
    return client.get(f"{path}/{ids[i]}")

def list_(i):
    return client.get(path + "?page[size]=100")

from django.contrib.auth import get_user_model
from tokens.models import Membership

user = get_user_model().objects.create_user("profile", "p@example.com", "profile-password")
Membership.objects.create(user=user, project=environment.project, role=Membership.Role.ADMIN)
browser = Client()
browser.force_login(user)

def dashboard_list(i):
    return browser.get("/projects/profile/dev/tokens")

def dashboard_home(i):
    return browser.get("/")

def dashboard_detail(i):
    return browser.get(f"/tokens/{ids[i]}")

ops = {
    "create": create,
    "complete": complete,
    "retrieve": retrieve,
    "list": list_,
    "dashboard-list": dashboard_list,
    "dashboard-home": dashboard_home,
    "dashboard-detail": dashboard_detail,
}
if config["wsgi"]:
    import io, time
    from waitpoints_site.wsgi import application

    auth = f"Bearer {secret}"
    # The dashboard's requests carry the logged-in browser's cookies instead of the key.
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in browser.cookies.items())

    def environ(method, target, payload=b"", session=False):
        path_info, _, query = target.partition("?")
        return {
            "REQUEST_METHOD": method, "PATH_INFO": path_info, "QUERY_STRING": query,
            "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
            "HTTP_HOST": "127.0.0.1:8000",
            **({"HTTP_COOKIE": cookie} if session else {"HTTP_AUTHORIZATION": auth}),
            "HTTP_USER_AGENT": "bench.profile", "HTTP_ACCEPT": "*/*",
            "CONTENT_TYPE": "application/json" if payload else "",
            "CONTENT_LENGTH": str(len(payload)) if payload else "",
            "wsgi.input": io.BytesIO(payload), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }

    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(env):
        result = application(env, start_response)
        try:
            b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()

    create_body = body.encode()
    complete_body = b'{"data":{"approved":true}}'
    requests_for = {
        "create": lambda i: environ("POST", path, create_body),
        "complete": lambda i: environ("POST", f"{path}/{ids[i]}/complete", complete_body),
        "retrieve": lambda i: environ("GET", f"{path}/{ids[i]}"),
        "list": lambda i: environ("GET", path + "?page[size]=100"),
        "dashboard-list": lambda i: environ("GET", "/projects/profile/dev/tokens", session=True),
        "dashboard-home": lambda i: environ("GET", "/", session=True),
        "dashboard-detail": lambda i: environ("GET", f"/tokens/{ids[i]}", session=True),
    }
    warm = rounds * n  # ids past the rounds' own, for warming up
    print(f"{'request':<16} {'wall ms':>8} {'CPU ms':>8}   (best of {rounds} x {n}, sequential)")
    for name in config["ops"]:
        build = requests_for[name]
        for i in range(20):
            call(build(warm + i))
        best_wall = best_cpu = float("inf")
        for round_ in range(rounds):
            offset = round_ * n if name == "complete" else 0
            envs = [build(offset + i) for i in range(n)]  # built outside the timing
            statuses.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            for env in envs:
                call(env)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            bad = [s for s in statuses if not s.startswith("200")]
            assert not bad, (name, bad[:3])
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        print(f"{name:<16} {best_wall / n * 1000:8.2f} {best_cpu / n * 1000:8.2f}")
        if config["cpu"]:  # --wsgi --cpu: and cProfile of one more round, on CPU time
            import cProfile, pstats
            envs = [build(warm + 20 + i) for i in range(min(n, 80))]
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            for env in envs:
                call(env)
            profile.disable()
            order = os.environ.get("BENCH_PROFILE_SORT", "cumulative")  # or tottime
            lines = int(os.environ.get("BENCH_PROFILE_LINES", "45"))
            pstats.Stats(profile).sort_stats(order).print_stats(lines)
    sys.exit(0)

for name in config["ops"]:
    op = ops[name]
    count = n if name in ("create", "complete", "retrieve") else max(20, n // 10)
    for i in range(5):
        op(n + i)  # warm up (distinct ids for complete)
    queries = []

    def record(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = op(n + 50)
    assert response.status_code < 400, response.content
    print(f"\n======== {name}: {count} requests; SQL of one request ({len(queries)} queries)")
    for query in queries:
        print("  ", query[:160])
    if config["cpu"]:
        import cProfile, pstats, time
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for i in range(count):
            op(i)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"CPU seconds per request: {stats.total_tt / count * 1000:.2f} ms")
        order = os.environ.get("BENCH_PROFILE_SORT", "cumulative")  # or tottime
        lines = int(os.environ.get("BENCH_PROFILE_LINES", "45"))
        stats.sort_stats(order).print_stats(lines)
        continue
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(count):
        op(i)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=config["all"], timeline=False))
"""


if __name__ == "__main__":
    main()
