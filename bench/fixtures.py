"""Run by the runner in the bench database: tenants, an API key per environment and a
logged-in dashboard user; prints them as JSON. ``python -m bench.fixtures``."""

from __future__ import annotations

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from tokens import services  # noqa: E402
from tokens.models import Membership  # noqa: E402


def main() -> None:
    measured = services.environment_get_or_create(project_slug="bench", slug="dev")
    other = services.environment_get_or_create(project_slug="other", slug="dev")
    _, secret = services.api_key_create(environment=measured, name="bench")
    _, other_secret = services.api_key_create(environment=other, name="bench")
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
            }
        )
    )


main()
