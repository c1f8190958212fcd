"""Content-Security-Policy and Permissions-Policy on every HTML page, no template that would need
'unsafe-inline', and `manage.py check --deploy` clean with the README's production settings.
(tests/browser/test_csp.py proves the policy in headless Chromium.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.surfaces.dashboard.conftest import member
from tokens.domain.links import callback_url
from tokens.models import Membership

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.django_db
def test_every_html_page_carries_both_policies(environment, make_token, django_user_model):
    token = make_token(timeout="1h")
    user = member(environment, "adam", Membership.Role.ADMIN)
    staff = django_user_model.objects.create_superuser(username="sam", password="pw-sam-12345")
    anonymous, dashboard, admin = Client(), Client(), Client()
    dashboard.force_login(user)
    admin.force_login(staff)
    env = f"/projects/{environment.project.slug}/{environment.slug}"
    pages = [
        (anonymous, "/accounts/login/"),
        (anonymous, "/accounts/password_reset/"),
        (anonymous, callback_url(token, base="")),
        (anonymous, callback_url(token, base="")[:-4] + "0000"),  # the invalid-link page
        (anonymous, "/no-such-page"),
        (anonymous, "/admin/login/"),
        (anonymous, "/api/docs/"),
        (dashboard, "/"),
        (dashboard, f"{env}/tokens"),
        (dashboard, f"/tokens/{token.friendly_id}"),
        (dashboard, f"{env}/webhooks"),
        (admin, "/admin/"),
        (admin, "/admin/tokens/token/"),
        (admin, f"/admin/tokens/token/{token.pk}/change/"),
        (admin, "/admin/tokens/apikey/add/"),
        (admin, "/admin/tokens/webhookendpoint/add/"),
    ]
    for client, path in pages:
        response = client.get(path)
        assert response["Content-Type"].startswith("text/html"), path
        policy = response["Content-Security-Policy"]
        assert policy == settings.CONTENT_SECURITY_POLICY, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "camera=()" in response["Permissions-Policy"], path


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on… event handler attribute"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_no_template_needs_unsafe_inline() -> None:
    """Every web page template; the e-mails are not web pages (mail clients need inline style)."""
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        if "emails" in path.parts:
            continue
        # Template comments are not sent to the browser.
        text = re.sub(r"{% comment %}.*?{% endcomment %}|{#.*?#}", "", path.read_text(), flags=re.S)
        found += [f"{path.relative_to(ROOT)}: {what}" for rx, what in INLINE if rx.search(text)]
    assert found == []


def test_check_deploy_is_clean_with_the_documented_production_settings() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "SESSION_", "CSRF_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "waitpoints_site.settings",
            "DEBUG": "False",
            "SECRET_KEY": "a-production-like-secret-" + "x7Qp2Lr9Vt4" * 5,
            "ALLOWED_HOSTS": "waitpoints.example.com",
            "PUBLIC_BASE_URL": "https://waitpoints.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://waitpoints.example.com",
            "SESSION_COOKIE_SECURE": "True",
            "CSRF_COOKIE_SECURE": "True",
            "SECURE_SSL_REDIRECT": "True",
            "SECURE_HSTS_SECONDS": "31536000",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
            "SECURE_HSTS_PRELOAD": "True",
            "USE_X_FORWARDED_PROTO": "True",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
