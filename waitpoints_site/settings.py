"""The only settings module. Everything comes from environment variables with safe defaults.

Variables missing from the environment are first taken from ``.env`` (``waitpoints_site.env``),
here, so every entry point (manage.py, the web server, Celery) reads the same settings.

With no DATABASE_URL and no REDIS_URL the service runs on the embedded default: SQLite and
Celery's filesystem broker, both under ``var/``, so one command starts it on a fresh machine.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from waitpoints_site import env

env.load()

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state (SQLite, the filesystem broker, beat's schedule, a generated key). Not in git, and
# beat cannot create it itself, so make it here whatever the database and broker.
VAR_DIR = Path(os.environ.get("WAITPOINTS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------------------------------------
# Helpers: fail loudly on values we cannot read
# ------------------------------------------------------------------------------------------------


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value in ("True", "true", "1"):
        return True
    if value in ("False", "false", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/K8s secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


# ------------------------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY and (VAR_DIR / "secret_key").is_file():
    # The key bin/serve generated for the embedded default: `manage.py …` run by hand afterwards
    # must use the same one, or every stored API key digest stops matching.
    SECRET_KEY = (VAR_DIR / "secret_key").read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required (set DEBUG=True for local development)")
    SECRET_KEY = "insecure-development-key-never-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A failed CSRF check answers a page in the product's look (JSON on API paths).
CSRF_FAILURE_VIEW = "waitpoints_site.errors.csrf_failure"
# The embedded default: no DATABASE_URL and no REDIS_URL (SQLite and a filesystem broker).
EMBEDDED = not os.environ.get("DATABASE_URL") and not os.environ.get("REDIS_URL")


def _served_origin() -> str:
    """The origin bin/serve serves and exports as PUBLIC_BASE_URL: http://BIND_HOST:PORT, with
    a wildcard host shown as 127.0.0.1."""
    host = os.environ.get("BIND_HOST", "") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - names the wildcard, binds nothing
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get('PORT', '') or '8000'}"


# Absolute origin used in callback URLs and e-mails ("https://waitpoints.example.com"). On the
# embedded default it defaults to what bin/serve uses, so `manage.py …` run by hand agrees with
# the served site; elsewhere nothing can be guessed (tokens.W001 warns), API responses use the
# request's own origin and the worker uses http://127.0.0.1:8000.
PUBLIC_BASE_URL = (
    os.environ.get("PUBLIC_BASE_URL", "") or (_served_origin() if EMBEDDED else "")
).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us (no CDN)
    "tokens",
]

# The page middleware in the middle is skipped for API calls (DRF views under /api/, bearer
# credentials): they use no static file, session, user or message, and the stack
# was most of the framework's cost of a call (tokens/surfaces/common/page_middleware.py).
_FOR_PAGES = "tokens.surfaces.common.page_middleware."
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "tokens.surfaces.common.middleware.SecurityHeadersMiddleware",
    "tokens.surfaces.common.ratelimit.RateLimitHeadersMiddleware",
    # WhiteNoise, Django's sessions and common middleware:
    _FOR_PAGES + "WhiteNoiseForPages",
    _FOR_PAGES + "SessionForPages",
    _FOR_PAGES + "CommonForPages",
    # Itself on every request (DRF views are exempt, so it returns at once for them), where
    # `check --deploy` looks for it.
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's authentication and messages:
    _FOR_PAGES + "AuthenticationForPages",
    _FOR_PAGES + "MessagesForPages",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tokens.surfaces.common.middleware.ApiJsonErrorsMiddleware",
]

ROOT_URLCONF = "waitpoints_site.urls"
WSGI_APPLICATION = "waitpoints_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------------------------
# Database: PostgreSQL from DATABASE_URL, else the embedded SQLite file
# ------------------------------------------------------------------------------------------------

# A database that is down or hangs must cost a request seconds, not minutes: connect_timeout bounds
# the connection (libpq's minimum is 2 s), statement_timeout makes the server cancel a statement
# stuck on a lock or a slow plan. Both become a JSON 503 / "try again shortly" page
# (tokens.surfaces.common.middleware). 0 disables either; the release step (migrate) sets the
# statement one to 0.
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 15000)

if os.environ.get("DATABASE_URL"):
    # Persistent connections, one per thread that runs queries: the web role runs ordinary
    # requests on a bounded pool of threads (waitpoints_site/threadpool.py) and the waiters'
    # reads on another (tokens/delivery/waiting.py), so the connections are bounded too
    # (env.web_connections per web process).
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # The same backend, health-checking a busy connection once a second rather than before
        # every request (waitpoints_site/postgresql/base.py says what that trades).
        DATABASES["default"]["ENGINE"] = "waitpoints_site.postgresql"
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    # Parameters travel apart from the SQL: psycopg quoted each one into the text in Python, a
    # tenth of a create's CPU (issue 18). Not prepared (Django's default, prepare_threshold
    # None): after five runs PostgreSQL may plan a prepared statement once for any values, and
    # such generic plans made the list's two-tag and createdAt-period filters 20-50 times
    # slower at 1M tokens (docs/benchmarks/profile.md, fifth pass). Unnamed statements are
    # planned with their values every time.
    _db_options.setdefault("server_side_binding", True)
    if DATABASE_CONNECT_TIMEOUT > 0:
        _db_options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    if DATABASE_STATEMENT_TIMEOUT_MS > 0:
        _db_options["options"] = (
            f"{_db_options.get('options', '')} -c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}"
        ).strip()
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "waitpoints.sqlite3"),
            # web, worker and beat share the file: take the write lock at BEGIN so that
            # read-then-write transactions serialise instead of failing with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# ------------------------------------------------------------------------------------------------
# Security
# ------------------------------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
# Domain-wide commitments, so the operator's to make (README: production settings).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Both set by tokens.surfaces.common.middleware.SecurityHeadersMiddleware. No page runs inline
# script or style:
# everything is a file under static/, so 'self' is the whole policy; forms post only to us and
# nothing may frame a page.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Powerful browser features no page of ours uses (clipboard writing, for Copy buttons, stays).
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=(), browsing-topics=()"
)
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Reverse proxies whose X-Forwarded-For is believed for the audit trail's client address:
# addresses or CIDRs, comma-separated ("10.0.0.0/8,127.0.0.1"; "unix" for a proxy on a Unix
# socket). Empty: REMOTE_ADDR as is. See tokens/http.py.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    if _proxy != "unix":
        try:
            ipaddress.ip_network(_proxy, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
            ) from None

# Complete and callback accept 3 MiB; leave room for the JSON envelope around the output.
DATA_UPLOAD_MAX_MEMORY_SIZE = 3 * 1024 * 1024 + 64 * 1024

# ------------------------------------------------------------------------------------------------
# E-mail: files under var/mail/ (shown at /admin/sent-mail/) by default, SMTP with EMAIL_HOST
# ------------------------------------------------------------------------------------------------

EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
# Without SMTP, messages are written one file each (mode 600) under var/mail/ and shown to
# superusers at /admin/sent-mail/: never into a log, where callback hashes and password-reset
# links would be readable by whoever reads the logs (tokens/mailbox.py).
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "tokens.delivery.mailbox.EmailBackend",
)
WAITPOINTS_MAIL_DIR = Path(os.environ.get("WAITPOINTS_MAIL_DIR", VAR_DIR / "mail"))
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
# Seconds for the SMTP connect and each socket operation: a server that accepts and never
# answers fails the attempt (retried later by the outbox) instead of holding a worker.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "waitpoints <waitpoints@localhost>")

# ------------------------------------------------------------------------------------------------
# REST framework
# ------------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.surfaces.triggerdev_v1.authentication.ApiKeyAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": (
        "tokens.surfaces.common.content_negotiation.ContentNegotiation"
    ),
    "EXCEPTION_HANDLER": "tokens.surfaces.triggerdev_v1.exception_handler.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "waitpoints API",
    "DESCRIPTION": (
        "Waitpoint tokens, wire-compatible with Trigger.dev's v1 API (the official "
        "`@trigger.dev/sdk` works against it). Success is always `200`; every error is JSON "
        '`{"error": "…"}`, with `details` for a bad query. Optional fields are omitted, never '
        "`null`; dates are ISO-8601 UTC with `Z`. Methods a path does not list answer "
        '`405 {"error": "Method not allowed"}`. Fields and operations marked '
        "`x-waitpoints-extension` are ours, not upstream's; the official SDK ignores them."
    ),
    "VERSION": "1.0.0",
    "TAGS": [
        {"name": "Waitpoint tokens", "description": "Create, read, complete and cancel tokens."},
        {"name": "Webhooks", "description": "Endpoints that receive resolved tokens' events."},
        {"name": "Auth", "description": "Public access tokens for the SDK."},
    ],
    # The schema and its docs are public: the contract is not a secret (the API still is).
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["tokens.surfaces.common.openapi.include_plain_views"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False, "tryItOutEnabled": False},
}

# ------------------------------------------------------------------------------------------------
# Celery: Redis from REDIS_URL, else the filesystem broker (needs no server)
# ------------------------------------------------------------------------------------------------

# The embedded broker is kombu's filesystem transport with its read-before-written race fixed
# (waitpoints_site/broker.py says why this and not another transport).

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "waitpoints_site.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Exchange bindings (worker remote control); kombu's default is ./control in the cwd.
        "control_folder": str(_broker_dir / "control"),
    }
# Never let a publish hang a caller: connect and retry briefly, then give up (the outbox and the
# periodic sweep pick the work up later).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The worker reconnects for as long as the broker is away (waitpoints_site/worker.py: every
# 0.5–2 s), rather than exiting after 100 attempts.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CONSUMER = "waitpoints_site.worker:Consumer"
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
SWEEP_INTERVAL_SECONDS = float(os.environ.get("SWEEP_INTERVAL_SECONDS", "1"))
CELERY_BEAT_SCHEDULE = {
    "expire-timed-out-tokens": {
        "task": "tokens.tasks.expire_timed_out_tokens",
        "schedule": SWEEP_INTERVAL_SECONDS,
        # A sweep that could not start soon is pointless: the next one is a second away.
        "options": {"expires": max(5.0, SWEEP_INTERVAL_SECONDS * 5)},
    },
}

# ------------------------------------------------------------------------------------------------
# waitpoints
# ------------------------------------------------------------------------------------------------

# Default timeout for tokens created without one; "" or "none" means tokens wait forever.
WAITPOINTS_DEFAULT_TIMEOUT = os.environ.get("WAITPOINTS_DEFAULT_TIMEOUT", "10m")
WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL = os.environ.get(
    "WAITPOINTS_DEFAULT_IDEMPOTENCY_KEY_TTL", "1h"
)
WAITPOINTS_SWEEP_BATCH_SIZE = env_int("WAITPOINTS_SWEEP_BATCH_SIZE", 1000)
# Delivery (tokens/delivery/outbox.py, docs/architecture.md "Delivery"). Slots: outbox messages
# one delivery process sends at once, each on a thread of its own, so a slow receiver holds a
# slot, not the queue. Of those, some are reserved for the service's own mail and reminders.
# Lane: one webhook endpoint (or Slack, …) has at most this many in flight across all processes;
# tenant: one project's receivers together. The delivery process polls the outbox this often.
WAITPOINTS_OUTBOX_SENDERS = env_int("WAITPOINTS_OUTBOX_SENDERS", 32)
WAITPOINTS_OUTBOX_RESERVED_SLOTS = env_int("WAITPOINTS_OUTBOX_RESERVED_SLOTS", 4)
WAITPOINTS_OUTBOX_LANE_CONCURRENCY = env_int("WAITPOINTS_OUTBOX_LANE_CONCURRENCY", 4)
WAITPOINTS_OUTBOX_TENANT_CONCURRENCY = env_int("WAITPOINTS_OUTBOX_TENANT_CONCURRENCY", 8)
WAITPOINTS_OUTBOX_POLL_SECONDS = float(os.environ.get("WAITPOINTS_OUTBOX_POLL_SECONDS") or 0.25)
# The Celery worker starts the delivery process (manage.py deliver) beside itself; False when it
# runs on its own (then start `python manage.py deliver` yourself).
WAITPOINTS_DELIVERY_PROCESS = env_bool("WAITPOINTS_DELIVERY_PROCESS", True)

# Webhooks: deliveries to loopback, link-local and private addresses are refused unless allowed
# (development and tests), so a tenant cannot make the service probe its own network.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
WEBHOOKS_CONNECT_TIMEOUT = env_int("WEBHOOKS_CONNECT_TIMEOUT", 5)  # seconds
WEBHOOKS_TOTAL_TIMEOUT = env_int("WEBHOOKS_TOTAL_TIMEOUT", 10)  # seconds, whole attempt

# Slack (docs/slack.md). The Web API's base URL: Slack's own unless a stand-in is configured
# (the tests point it at a local fake). Every call from the worker is bounded by SLACK_TIMEOUT;
# the two calls a click cannot wait for the worker to make (who clicked, when not cached; and
# opening a form, whose trigger expires after 3 s) by SLACK_CLICK_TIMEOUT.
SLACK_API_URL = os.environ.get("SLACK_API_URL", "https://slack.com/api/")
if not SLACK_API_URL.endswith("/"):
    SLACK_API_URL += "/"
SLACK_TIMEOUT = env_int("SLACK_TIMEOUT", 10)  # seconds
SLACK_CLICK_TIMEOUT = float(os.environ.get("SLACK_CLICK_TIMEOUT") or 2)  # seconds
# How long an e-mail ↔ Slack user lookup is trusted (a miss: a tenth of it).
SLACK_USER_CACHE_SECONDS = env_int("SLACK_USER_CACHE_SECONDS", 24 * 3600)

# ------------------------------------------------------------------------------------------------
# Cache: rate-limit counters and worker/beat heartbeats. Redis when REDIS_URL is set, else a table
# in the database (created by `manage.py createcachetable`, which migrate runs too).
# ------------------------------------------------------------------------------------------------

REDIS_CONNECT_TIMEOUT_SECONDS = 0.05
REDIS_TIMEOUT_SECONDS = 0.1
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "waitpoints",
            # A Redis that is down or hangs must not hold a request: fail fast, then fail open
            # (the rate limiter stops asking for a while, tokens/surfaces/common/ratelimit.py).
            # At most 150 ms a request: a connect, then its SELECT or one command. Redis on
            # the same network answers in well under a millisecond.
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "waitpoints_cache",
            "KEY_PREFIX": "waitpoints",
        }
    }

# ------------------------------------------------------------------------------------------------
# Rate limits ("count/period", period in s, m or h; "" or "off" disables one). Per client address
# unless said otherwise. Over the limit: 429 with Retry-After and x-ratelimit-* (tokens/ratelimit).
# ------------------------------------------------------------------------------------------------

WAITPOINTS_RATELIMIT_LOGIN = os.environ.get("WAITPOINTS_RATELIMIT_LOGIN", "10/5m")
WAITPOINTS_RATELIMIT_API_KEY_FAILURES = os.environ.get(
    "WAITPOINTS_RATELIMIT_API_KEY_FAILURES", "30/1m"
)
WAITPOINTS_RATELIMIT_CALLBACK_FAILURES = os.environ.get(
    "WAITPOINTS_RATELIMIT_CALLBACK_FAILURES", "30/1m"
)
# Every call, per secret key; and per public access token (upstream's API_RATE_LIMIT_JWT_*:
# 60 a minute), so browsers completing tokens never spend the backend key's budget.
WAITPOINTS_RATELIMIT_API_CALLS = os.environ.get("WAITPOINTS_RATELIMIT_API_CALLS", "1200/1m")
WAITPOINTS_RATELIMIT_PUBLIC_TOKEN_CALLS = os.environ.get(
    "WAITPOINTS_RATELIMIT_PUBLIC_TOKEN_CALLS", "60/1m"
)
# How long each process trusts an API key it found active (tokens/persistence/keycache.py): a
# key revoked in another process stops working within this many seconds, in its own at once.
# 0: look every key up.
WAITPOINTS_API_KEY_CACHE_SECONDS = float(os.environ.get("WAITPOINTS_API_KEY_CACHE_SECONDS") or 5)
# Tests give each test its own namespace of counters.
WAITPOINTS_RATELIMIT_NAMESPACE = os.environ.get("WAITPOINTS_RATELIMIT_NAMESPACE", "rl")

# ------------------------------------------------------------------------------------------------
# Health: /healthz answers 503 when the oldest overdue WAITING token is older than this.
# ------------------------------------------------------------------------------------------------

WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS = env_int("WAITPOINTS_HEALTH_MAX_SWEEP_LAG_SECONDS", 60)
WAITPOINTS_HEARTBEAT_SECONDS = env_int("WAITPOINTS_HEARTBEAT_SECONDS", 5)
CELERY_BEAT_SCHEDULER = "tokens.platform.heartbeat.HeartbeatScheduler"
# The same outage message (e.g. "Redis is down") at most once per this many seconds per process.
WAITPOINTS_LOG_REPEAT_SECONDS = env_int("WAITPOINTS_LOG_REPEAT_SECONDS", 60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Celery replaces these handlers in the worker and beat; waitpoints_site/celery.py puts the
    # same filters on its own handlers.
    "filters": {
        "redact_secrets": {"()": "tokens.platform.logging.RedactSecretsFilter"},
        "collapse_repeats": {"()": "tokens.platform.logging.CollapseRepeatsFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_secrets", "collapse_repeats"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The web role's server (uvicorn, waitpoints_site/web.py): its access log and its own
        # lines, through the same redacting handler.
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Beat and the worker would log every one-second sweep at INFO; keep what matters.
        "celery.beat": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
    },
}

# ------------------------------------------------------------------------------------------------
# Long-poll wait (tokens/api/wait.py, tokens/waiting.py) and slow clients (waitpoints_site/asgi.py)
# ------------------------------------------------------------------------------------------------

WAITPOINTS_WAIT_DEFAULT_SECONDS = env_int("WAITPOINTS_WAIT_DEFAULT_SECONDS", 30)
WAITPOINTS_WAIT_MAX_SECONDS = 60
# Threads per web process for the waiters' short database reads, however many waiters.
WAITPOINTS_WAIT_DB_THREADS = env.wait_db_threads()
# SQLite only (no LISTEN/NOTIFY): how often one query per web process checks every waited token
# for resolutions made by other processes. Resolutions made in the same process wake at once.
WAITPOINTS_WAIT_RECHECK_SECONDS = float(os.environ.get("WAITPOINTS_WAIT_RECHECK_SECONDS") or 1.0)
# A request's announced body must arrive within this time, or 408 and the connection is closed.
WAITPOINTS_BODY_TIMEOUT_SECONDS = float(os.environ.get("WAITPOINTS_BODY_TIMEOUT_SECONDS") or 10)

# ------------------------------------------------------------------------------------------------
# The Agent Approval Protocol provider at /api/aap (tokens/domain/aap, tokens/surfaces/aap)
# ------------------------------------------------------------------------------------------------

# How long an approval may be acted on: decision.expires_at = decided_at + this.
WAITPOINTS_AAP_APPROVAL_VALID_SECONDS = env_int("WAITPOINTS_AAP_APPROVAL_VALID_SECONDS", 600)
# The longest approval window a request gets (a longer `timeout` is shortened to it).
WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS = env_int("WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS", 7 * 24 * 3600)
# Per instance credential (requests) and per provisioner token (instance operations); failed
# credentials count per client address, as for API keys.
WAITPOINTS_RATELIMIT_AAP_CALLS = os.environ.get("WAITPOINTS_RATELIMIT_AAP_CALLS", "600/1m")
WAITPOINTS_RATELIMIT_AAP_PROVISIONING = os.environ.get(
    "WAITPOINTS_RATELIMIT_AAP_PROVISIONING", "60/1m"
)
# Receiver verifications per destination host, whichever provisioner, instance or URL path asks.
WAITPOINTS_RATELIMIT_AAP_VERIFICATIONS = os.environ.get(
    "WAITPOINTS_RATELIMIT_AAP_VERIFICATIONS", "20/10m"
)
# Per provisioning account (an environment: all its instances, all its provisioner tokens): new
# approval requests, and receiver verifications.
WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS = os.environ.get(
    "WAITPOINTS_RATELIMIT_AAP_ACCOUNT_REQUESTS", "1200/1m"
)
WAITPOINTS_RATELIMIT_AAP_ACCOUNT_VERIFICATIONS = os.environ.get(
    "WAITPOINTS_RATELIMIT_AAP_ACCOUNT_VERIFICATIONS", "60/10m"
)
# Attempts toward receivers (events, first tries and retries, and verifications) per fixed window,
# per destination host (any instance, path or port) and per resolved address (any host name on
# it), counted across processes in the default cache (tokens/delivery/aap.py). An event over one
# waits for the next window without spending an attempt; a verification over one answers 429.
WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST = os.environ.get(
    "WAITPOINTS_AAP_DELIVERY_RATE_PER_HOST", "60/1m"
)
WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS = os.environ.get(
    "WAITPOINTS_AAP_DELIVERY_RATE_PER_ADDRESS", "300/1m"
)
# Event attempts per provisioning account (an environment's instances together, any receiver).
WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT = os.environ.get(
    "WAITPOINTS_AAP_DELIVERY_RATE_PER_ACCOUNT", "600/1m"
)
