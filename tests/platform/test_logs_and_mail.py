"""Issue 9 #6 in process: what the log filters mask, and the e-mail files and their staff page.

The end-to-end check (web, worker and beat in subprocesses, every line they print) is
tests/smoke/test_no_secrets_in_logs.py.
"""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from tokens.delivery.mailbox import EmailBackend
from tokens.platform.logging import CollapseRepeatsFilter, RedactSecretsFilter, redact

HASH = "8e76a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e"


def _pct(text: str) -> str:
    return "".join(f"%{ord(char):02X}" for char in text)


@pytest.mark.parametrize(
    "line",
    [
        f'"GET /api/v1/waitpoints/tokens/waitpoint_x/callback/{HASH} HTTP/1.1" 200',
        f'"GET /api/v1/waitpoints/tokens/waitpoint_x/callback/{HASH}?decision=approved HTTP/1.1"',
        f'"GET /api/v1/waitpoints/tokens/waitpoint_x/callback/{_pct(HASH)} HTTP/1.1" 200',
        f'"GET /api/v1/waitpoints/tokens/waitpoint_x/{_pct("callback")}/{HASH} HTTP/1.1" 404',
        f'"GET /api/v1/waitpoints/tokens/waitpoint_x/callback/{HASH[:10]}%{HASH[10:]}" 404',
        f"Unauthorized: http://example.com/api/v1/waitpoints/tokens/w/CALLBACK/{HASH}",
    ],
)
def test_it_masks_callback_hashes_in_every_form(line):
    masked = redact(line)
    assert HASH not in masked and HASH[:20] not in masked
    assert _pct(HASH)[:30] not in masked
    assert "<redacted>" in masked


def test_it_masks_reset_links_keys_jwts_and_cookies():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    line = (
        '"GET /accounts/reset/MQ/cmx1-0123456789abcdef0123456789abcdef/ HTTP/1.1" '
        "key=tr_dev_4tH17IsAksXz28p_AbdalQJWCADAE26pM2ZRO0_X04Y "
        "webhook=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/+= "
        f"Authorization: Bearer {jwt} Cookie: sessionid=abcdef0123456789; csrftoken=zzzz9999"
    )
    masked = redact(line)
    for secret in (
        "cmx1-0123456789abcdef",
        "4tH17IsAksXz28p",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        jwt[:20],
        "abcdef0123456789",
        "zzzz9999",
    ):
        assert secret not in masked, masked
    assert "tr_dev_<redacted>" in masked


def test_the_filter_masks_arguments_and_tracebacks():
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed on %s", (f"/callback/{HASH}",), None
    )
    try:
        raise ValueError(f"bad url /callback/{HASH}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactSecretsFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert HASH not in formatted
    assert formatted.count("/callback/<redacted>") == 2


def test_it_collapses_repeated_warnings():
    repeats = CollapseRepeatsFilter(interval=60)

    def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("celery.beat", level, __file__, 1, message, None, None)

    assert repeats.filter(record("Connection error: Error 111. Trying again in 2.0 seconds"))
    passed = [
        repeats.filter(record(f"Connection error: Error 111. Trying again in {n}.0 seconds"))
        for n in range(4, 200)
    ]
    assert not any(passed)
    assert repeats.filter(record("something else"))
    assert all(repeats.filter(record("info line", logging.INFO)) for _ in range(5))


# ------------------------------------------------------------------------------------------------
# E-mail files and the "Sent mail" page
# ------------------------------------------------------------------------------------------------


def test_it_writes_each_message_to_a_private_file(settings, tmp_path):
    settings.WAITPOINTS_MAIL_DIR = tmp_path / "mail"
    settings.EMAIL_BACKEND = "tokens.delivery.mailbox.EmailBackend"
    sent = mail.send_mail("Approve?", f"http://x/callback/{HASH}", "a@example.com", ["b@x.org"])
    assert sent == 1
    mail.send_mail("Second", "body", "a@example.com", ["c@x.org"])
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert HASH in files[0].read_text()


def test_the_default_backend_without_smtp_is_the_mail_directory():
    # Settings as loaded (the test fixture swaps in locmem afterwards): no EMAIL_HOST here.
    import importlib

    import waitpoints_site.settings as loaded

    assert importlib.reload(loaded).EMAIL_BACKEND == "tokens.delivery.mailbox.EmailBackend"


@pytest.fixture
def mailbox_with_one(settings, tmp_path):
    settings.WAITPOINTS_MAIL_DIR = tmp_path / "mail"
    EmailBackend().send_messages(
        [mail.EmailMessage("Approve order 42?", f"Approve: /callback/{HASH}", to=["b@x.org"])]
    )
    return tmp_path / "mail"


def test_superusers_read_sent_mail(db, mailbox_with_one, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    browser = Client()
    browser.force_login(root)
    page = browser.get("/admin/sent-mail/")
    assert page.status_code == 200
    assert b"Approve order 42?" in page.content and b"b@x.org" in page.content
    assert page["Cache-Control"] == "no-store"
    (name,) = [path.name for path in mailbox_with_one.glob("*.eml")]
    message = browser.get("/admin/sent-mail/", {"m": name})
    assert HASH.encode() in message.content
    assert browser.get("/admin/sent-mail/", {"m": "../../etc/passwd"}).status_code == 404


def test_staff_who_are_not_superusers_do_not(db, mailbox_with_one, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    staff = User.objects.create_user("support", "s@example.com", "pw", is_staff=True)
    browser = Client()
    browser.force_login(staff)
    response = browser.get("/admin/sent-mail/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert Client().get("/admin/sent-mail/").status_code == 302


def test_the_docs_say_one_thing_about_where_e_mail_goes() -> None:
    """Without EMAIL_HOST every e-mail is a file in var/mail/, read at /admin/sent-mail/; the
    README's first steps once said approval e-mails went to the worker's log."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    first_steps = readme.split("\n## Use it\n", 1)[1].split("\n## ", 1)[0]
    assert "var/mail/" in first_steps and "/admin/sent-mail/" in first_steps
    wrong = re.compile(r"console backend[^.]*by default|by default[^.]*console|worker's log", re.I)
    for path in ("README.md", ".env.example", "waitpoints_site/settings.py", "docs/security.md"):
        found = wrong.findall((root / path).read_text())
        assert not found, f"{path}: {found}"
    for module in (root / "tokens").rglob("*.py"):
        assert not wrong.findall(module.read_text()), module
