"""Content-Security-Policy and Permissions-Policy on every HTML page, no template that would need
'unsafe-inline', and `manage.py check --deploy` clean with the README's production settings.
(tests/browser/test_csp.py proves the policy in headless Chromium.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.smoke.processes import run_manage
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


def _readme_production_settings() -> dict[str, str]:
    """The variables of the README's "Production settings" block, as a reader copies them."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Production settings", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return dict(re.findall(r"([A-Z_]+)=(\S+)", block.replace("\\\n", " ").replace("\n", " ")))


def _env_example_production_settings() -> dict[str, str]:
    """.env.example's "Behind HTTPS" block, uncommented, on top of its active lines."""
    text = (ROOT / ".env.example").read_text()
    active = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, flags=re.M))
    https = text.split("# --- Behind HTTPS", 1)[1].split("\n# ---", 1)[0]
    return {**active, **dict(re.findall(r"^# ([A-Z_]+)=(.*)$", https, flags=re.M))}


def _check_deploy(variables: dict[str, str], tmp_path: Path) -> str:
    # Only what a production host sets (no test settings leak in), with a real key and database.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WAITPOINTS_ENV_FILE": "/dev/null",
        "WAITPOINTS_VAR_DIR": str(tmp_path / "var"),
        **variables,
    }
    if "…" in env.get("SECRET_KEY", "…") or "change-me" in env.get("SECRET_KEY", ""):
        env["SECRET_KEY"] = "a-production-like-secret-" + "x7Qp2Lr9Vt4" * 5
    for name in ("DATABASE_URL", "REDIS_URL"):
        if "…" in env.get(name, "…"):
            env[name] = os.environ[name]
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.mark.parametrize(
    "documented", [_readme_production_settings, _env_example_production_settings]
)
def test_check_deploy_is_clean_with_the_documented_production_settings(
    documented, tmp_path
) -> None:
    variables = documented()
    assert variables["SECURE_SSL_REDIRECT"] == "True"  # the block was found
    output = _check_deploy(variables, tmp_path)
    assert "System check identified no issues (0 silenced)." in output, output
