"""Issue 9 #6: a full scenario on the embedded default leaves no credential in any log.

web, worker and beat run under honcho (the Procfile, as ``bin/serve``), and everything they print
is captured: the access log, Django's and Celery's logs, stdout. The scenario creates a token
with an approver (the worker sends the e-mail), opens its callback URL (also percent-encoded, which
Django decodes), approves it through the form, completes another token with its public JWT,
resets a password through the e-mailed link and logs in. Then no API key, JWT, callback hash,
reset link, password or session cookie may appear in the captured output, and the e-mails are
files readable by their owner only, listed on the superusers' "Sent mail" page.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import stat
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.smoke.processes import (
    embedded_env,
    free_port,
    honcho,
    manage,
    migrate_and_bootstrap,
    serving,
    tail,
    wait_until,
)

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(240)]

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    """urllib with a cookie jar: follows redirects, keeps the session and CSRF cookies."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open(
        self,
        url: str,
        *,
        form: dict[str, str] | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        data = None
        all_headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=all_headers)
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    def csrf_from(self, url: str) -> str:
        status, page, _ = self.open(url)
        assert status == 200, page
        match = _CSRF.search(page)
        assert match, page
        return match.group(1)

    def cookie(self, name: str) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == name)


def _mail(mail_dir: Path, count: int) -> list[str]:
    assert wait_until(lambda: len(list(mail_dir.glob("*.eml"))) >= count, timeout=30)
    return [path.read_text() for path in sorted(mail_dir.glob("*.eml"))]


def _percent_encoded(text: str) -> str:
    return "".join(f"%{ord(char):02X}" for char in text)


def test_it_logs_no_credentials_in_a_full_scenario(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = free_port()
    env = embedded_env(
        var,
        port,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_LEVEL="DEBUG",  # the most talkative setting: nothing may leak even then
    )
    boot = migrate_and_bootstrap(env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)  # pages render {% static %}
    manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='admin').update(email='admin@example.com')",
        env=env,
    )
    base, key = boot["base"], boot["key"]
    mail_dir = var / "mail"
    new_password = "N3w-" + secrets.token_urlsafe(16)
    log = tmp_path / "honcho.log"
    with serving(honcho(port, "web", "worker", "beat"), env=env, log=log, base_url=base):
        api = Browser()
        auth = {"Authorization": f"Bearer {key}", "Accept": "application/json"}

        # A token with an approver: the worker e-mails the Approve / Reject links.
        status, text, headers = api.open(
            f"{base}/api/v1/waitpoints/tokens",
            body={"timeout": "1h", "approvers": ["alice@example.com"]},
            headers=auth,
        )
        assert status == 200, text
        created = json.loads(text)
        callback = created["url"]
        digest = callback.rsplit("/", 1)[1]
        (approval,) = _mail(mail_dir, 1)
        # Each approver gets a personal link (signed for their address), not the shared URL.
        personal = re.search(r"(https?://[^\s\"<>]+)\?decision=approved", approval)
        assert personal, approval
        personal_digest = personal.group(1).rsplit("/", 1)[1]

        # The person opens the link (a scanner might percent-encode it), then approves.
        person = Browser()
        encoded = callback.replace(
            f"/callback/{digest}", f"/{_percent_encoded('callback')}/{_percent_encoded(digest)}"
        )
        status, page, _ = person.open(encoded, headers={"Accept": "text/html"})
        assert status == 200 and "Approve" in page, tail(log, 80)
        csrf = person.csrf_from(f"{callback}?decision=approved")
        status, page, _ = person.open(
            callback, form={"csrfmiddlewaretoken": csrf, "decision": "approved"}
        )
        assert status == 200, page
        status, text, _ = api.open(f"{base}/api/v1/waitpoints/tokens/{created['id']}", headers=auth)
        assert json.loads(text)["status"] == "COMPLETED", text

        # Another token, completed with the public access token the create answer carries.
        status, text, headers = api.open(
            f"{base}/api/v1/waitpoints/tokens", body={"timeout": "1h"}, headers=auth
        )
        jwt = headers["x-trigger-jwt"]
        other = json.loads(text)
        status, text, _ = api.open(
            f"{base}/api/v1/waitpoints/tokens/{other['id']}/complete",
            body={"data": {"ok": True}},
            headers={"Authorization": f"Bearer {jwt}", "Accept": "application/json"},
        )
        assert status == 200, text

        # Password reset through the e-mailed link, then a login with the new password.
        admin = Browser()
        csrf = admin.csrf_from(f"{base}/accounts/password_reset/")
        status, page, _ = admin.open(
            f"{base}/accounts/password_reset/",
            form={"csrfmiddlewaretoken": csrf, "email": "admin@example.com"},
        )
        assert status == 200, page
        reset_mail = _mail(mail_dir, 2)[-1]
        reset_link = re.search(r"http://\S+/reset/\S+/", reset_mail)
        assert reset_link, reset_mail
        reset_path = urllib.parse.urlsplit(reset_link.group(0)).path
        status, page, _ = admin.open(reset_link.group(0))
        assert status == 200 and "new_password1" in page, page
        set_password_url = f"{base}{reset_path.rsplit('/', 2)[0]}/set-password/"
        csrf = _CSRF.search(page).group(1)
        status, page, _ = admin.open(
            set_password_url,
            form={
                "csrfmiddlewaretoken": csrf,
                "new_password1": new_password,
                "new_password2": new_password,
            },
        )
        assert status == 200, page
        csrf = admin.csrf_from(f"{base}/accounts/login/")
        status, page, _ = admin.open(
            f"{base}/accounts/login/",
            form={"csrfmiddlewaretoken": csrf, "username": "admin", "password": new_password},
        )
        assert status == 200, page
        session = admin.cookie("sessionid")
        status, page, _ = admin.open(f"{base}/admin/sent-mail/")
        assert status == 200 and "Sent mail" in page, page
        assert "alice@example.com" in page and "admin@example.com" in page, page
        time.sleep(1)  # let the last access-log lines reach honcho's output

    output = log.read_text(errors="replace")
    assert "/callback/<redacted>" in output, tail(log)  # the access log did see those requests
    secrets_found = {
        "API key": key,
        "JWT": jwt,
        "callback hash": digest,
        "personal link hash": personal_digest,
        "percent-encoded callback hash": _percent_encoded(digest),
        "password-reset link": reset_path,
        "password-reset token": reset_path.rstrip("/").rsplit("/", 1)[1],
        "new password": new_password,
        "session cookie": session,
        "admin password": boot["password"],
    }
    leaked = {name: value for name, value in secrets_found.items() if value in output}
    assert not leaked, f"secrets in the logs: {sorted(leaked)}"
    assert "Content-Type: text/plain" not in output, "an e-mail was printed to a log"

    assert stat.S_IMODE(mail_dir.stat().st_mode) == 0o700
    for path in mail_dir.glob("*.eml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
