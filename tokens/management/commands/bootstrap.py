"""``python manage.py bootstrap``: a demo project, a dev API key and an admin login, once.

Idempotent. The first run creates what is missing and saves the generated key and password to
``<var>/demo-credentials.json`` (mode 600, never committed: ``var/`` is git-ignored) so that later
runs can print them again; keys are otherwise shown only once. Nothing existing is replaced: if the
demo environment already has keys or a superuser already exists that this file does not describe,
it says so and tells how to get a new one instead.

The file keeps one entry per database (``{"databases": {"sqlite:/…/waitpoints.sqlite3": {…},
"postgresql://user@host:5432/name": {…}}}``), so trying the embedded default and then PostgreSQL
(or back) never loses the other's key and password. A file from before that (one flat entry) is
still read as a candidate for any database, checked against it, and kept as it is.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from tokens.domain import keys, tenancy
from tokens.models import ApiKey, Environment, Membership

DEMO_PROJECT = "demo"
DEMO_ENVIRONMENT = "dev"
CREDENTIALS_FILE = "demo-credentials.json"
SECRETS = ("api_key", "username", "password")


def database_label() -> str:
    """Which database the credentials belong to: its engine and address, never its password."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:{Path(db['NAME']).resolve()}"
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    user = f"{db['USER']}@" if db.get("USER") else ""
    return f"{connection.vendor}://{user}{host}{port}/{db['NAME']}"


def _default_base_url() -> str:
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    host = os.environ.get("BIND_HOST", "") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - only displayed, not bound
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('PORT', '') or '8000'}"


def _strings(entry: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in entry.items() if k in SECRETS and isinstance(v, str)}


class Command(BaseCommand):
    help = (
        "Create the demo project, its dev environment, a dev API key and an admin login when "
        "none exist, and print how to use them. Safe to run again: it prints the same key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin", help="the admin login (default admin)")
        parser.add_argument(
            "--base-url",
            default="",
            help="the URL to print (default PUBLIC_BASE_URL, else http://127.0.0.1:$PORT)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        path = Path(settings.VAR_DIR) / CREDENTIALS_FILE
        label = database_label()
        stored = self._load(path)
        found = stored.get("databases")
        entries: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
        mine = entries.get(label)
        own = _strings(mine) if isinstance(mine, dict) else {}
        # This database's own entry, else a flat (older) file's, only ever used after checking.
        saved = own if isinstance(mine, dict) else _strings(stored)
        with transaction.atomic():
            environment = tenancy.environment_get_or_create(
                project_slug=DEMO_PROJECT, slug=DEMO_ENVIRONMENT, project_name="Demo"
            )
            secret, key_note = self._api_key(environment, saved.get("api_key"))
            username, password, login_note = self._admin(options["username"], saved)
            if username:
                user = get_user_model().objects.get(username=username)
                Membership.objects.get_or_create(
                    user=user,
                    project=environment.project,
                    defaults={"role": Membership.Role.ADMIN},
                )
            # Written inside the transaction: a key or password is never committed without being
            # written down. Other databases' entries stay as they are; this one's stale values
            # stay too, and are only printed after checking them against the database.
            updated = dict(own)
            if secret:
                updated["api_key"] = secret
            if username and password:
                updated.update(username=username, password=password)
            if updated != own:
                self._save(path, {**stored, "databases": {**entries, label: updated}})
        self._print(
            base_url=options["base_url"] or _default_base_url(),
            environment=environment,
            secret=secret,
            key_note=key_note,
            username=username,
            password=password,
            login_note=login_note,
            path=path,
        )

    # --------------------------------------------------------------------------------------------

    def _api_key(self, environment: Environment, stored: str | None) -> tuple[str | None, str]:
        active = ApiKey.objects.filter(environment=environment, revoked_at__isnull=True)
        if stored and active.filter(digest=keys.key_digest(stored)).exists():
            return stored, "saved"
        if not active.exists():
            _api_key, secret = tenancy.api_key_create(environment=environment, name="bootstrap")
            return secret, "created"
        prefixes = ", ".join(f"{key.prefix}…" for key in active[:3])
        return None, (
            f"the demo environment already has API keys ({prefixes}), shown only at creation; "
            f"make another with: python manage.py create_api_key --project {DEMO_PROJECT} "
            f"--env {DEMO_ENVIRONMENT}"
        )

    def _admin(self, username: str, saved: dict[str, str]) -> tuple[str | None, str | None, str]:
        users = get_user_model().objects
        stored_user = saved.get("username")
        if stored_user:
            user = users.filter(username=stored_user, is_superuser=True, is_active=True).first()
            if user is not None and user.check_password(saved.get("password", "")):
                return stored_user, saved["password"], "saved"
        if (
            not users.filter(is_superuser=True).exists()
            and not users.filter(username=username).exists()
        ):
            password = secrets.token_urlsafe(18)
            users.create_superuser(username=username, email="", password=password)
            return username, password, "created"
        existing = users.filter(username=username, is_superuser=True).first()
        if existing is not None:
            # Ours to grant membership, but its password was set elsewhere.
            return (
                username,
                None,
                (
                    "password not known to bootstrap; set one with: "
                    f"python manage.py changepassword {username}"
                ),
            )
        return (
            None,
            None,
            ("a superuser already exists; use its login, or: python manage.py createsuperuser"),
        )

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _save(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.replace(temporary, path)

    def _print(
        self,
        *,
        base_url: str,
        environment: Environment,
        secret: str | None,
        key_note: str,
        username: str | None,
        password: str | None,
        login_note: str,
        path: Path,
    ) -> None:
        base_url = base_url.rstrip("/")
        write = self.stdout.write
        write("")
        write(
            f"waitpoints is set up: project '{environment.project.slug}', environment "
            f"'{environment.slug}'."
        )
        write("")
        write(f"  Base URL:   {base_url}")
        write(f"  API:        {base_url}/api/v1/waitpoints/tokens")
        write(f"  Dashboard:  {base_url}/")
        write(f"  Admin:      {base_url}/admin/")
        write(f"  Health:     {base_url}/healthz")
        write("")
        if username:
            write(f"  Login:      {username}")
        if password:
            write(f"  Password:   {password}")
        if login_note not in ("saved", "created"):
            write(f"  Login note: {login_note}")
        if secret:
            write(f"  API key:    {secret}")
        else:
            write(f"  API key:    ({key_note})")
        write("")
        if secret or password:
            write(f"  (saved in {path}; run bootstrap again to see them)")
        if secret:
            write("")
            write("Try it:")
            write(f"  curl -s -X POST {base_url}/api/v1/waitpoints/tokens \\")
            write(f"    -H 'Authorization: Bearer {secret}' \\")
            write("    -H 'Content-Type: application/json' -d '{\"timeout\": \"10m\"}'")
        write("")
