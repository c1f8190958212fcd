"""Run by the runner in the bench database: tenants, an API key per environment and a
logged-in dashboard user; prints them as JSON. ``python -m bench.fixtures``."""

from __future__ import annotations

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.models import JSONField  # noqa: E402
from django.test import Client  # noqa: E402

from tokens.domain import tenancy  # noqa: E402
from tokens.models import Membership, Token  # noqa: E402

# Columns the runner's COPY writes; every other NOT NULL column gets its model default.
COPIED = {
    "id", "environment_id", "status", "timeout_at", "tags", "approvers", "output",
    "output_type", "output_is_error", "created_at", "completed_at", "cancel_reason",
}  # fmt: skip


def column_defaults() -> dict[str, str]:
    """SQL literals of the model defaults of the columns the COPY leaves out."""
    defaults: dict[str, str] = {}
    for field in Token._meta.concrete_fields:
        column = field.column
        if column is None or column in COPIED or field.null or not field.has_default():
            continue
        value = field.get_default()
        if isinstance(field, JSONField):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        defaults[column] = "'" + str(value).replace("'", "''") + "'"
    return defaults


def main() -> None:
    measured = tenancy.environment_get_or_create(project_slug="bench", slug="dev")
    other = tenancy.environment_get_or_create(project_slug="other", slug="dev")
    _, secret = tenancy.api_key_create(environment=measured, name="bench")
    _, other_secret = tenancy.api_key_create(environment=other, name="bench")
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
    Membership.objects.create(user=user, project=measured.project, role=Membership.Role.ADMIN)
    client = Client()
    client.force_login(user)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    print(
        json.dumps(
            {
                "environment": measured.pk,
                "other_environment": other.pk,
                "secret": secret,
                "other_secret": other_secret,
                "cookie": cookie,
                "token_defaults": column_defaults(),
            }
        )
    )


main()
