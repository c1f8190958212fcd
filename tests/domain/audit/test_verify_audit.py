"""``manage.py verify_audit``: quiet success, or exit 1 naming the first event that breaks."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tokens.domain import actors, lifecycle
from tokens.models import TokenEvent

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()


def run(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_verifies_every_chain(make_token):
    for _ in range(3):
        lifecycle.token_cancel(token=make_token(), actor=SYSTEM)
    assert "Verified 6 event(s) of 3 token(s): every chain matches." in run()


def test_it_names_the_first_event_that_does_not_match(make_token):
    good, bad = make_token(), make_token()
    lifecycle.token_cancel(token=bad, actor=SYSTEM, reason="a")
    lifecycle.token_action_denied(token=bad, actor=SYSTEM, action="b")
    event = TokenEvent.objects.get(token=bad, seq=2)
    TokenEvent.objects.filter(pk=event.pk).update(detail={"reason": "edited"})
    with pytest.raises(CommandError) as raised:
        run()
    assert raised.value.returncode == 1
    assert f"{bad.friendly_id}: event #2 (id {event.pk}, cancelled)" in str(raised.value)
    assert "1 of 2 audit trail(s)" in str(raised.value)
    assert "every chain matches" in run("--token", good.friendly_id)
    with pytest.raises(CommandError):
        run("--token", bad.friendly_id)


def test_since_checks_the_tokens_with_recent_events(make_token):
    old, _recent = make_token(), make_token()
    TokenEvent.objects.filter(token=old).update(created_at=timezone.now() - timedelta(days=9))
    # The old token's edited event breaks its chain, but --since leaves it out.
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert "of 1 token(s)" in run("--since", yesterday)
    with pytest.raises(CommandError):
        run()


def test_it_refuses_bad_arguments():
    with pytest.raises(CommandError, match="not a date"):
        run("--since", "last tuesday")
    with pytest.raises(CommandError, match="No token"):
        run("--token", "waitpoint_nosuch")


def test_it_exits_non_zero_from_the_command_line(make_token, capsys):
    token = make_token()
    TokenEvent.objects.filter(token=token).update(kind="completed")
    with pytest.raises(SystemExit) as exited:
        call_command_line("verify_audit", "--token", token.friendly_id)
    assert exited.value.code == 1
    assert f"{token.friendly_id}: event #1" in capsys.readouterr().err


def call_command_line(*argv: str) -> None:
    from django.core.management import ManagementUtility

    ManagementUtility(["manage.py", *argv]).execute()
