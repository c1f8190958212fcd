"""The one resolution path, on real PostgreSQL connections: every way a token resolves is
announced (NOTIFY and the after-commit signal), the sweep is one statement per batch, and a
terminal state a reader has seen never changes, even for a completion held across the deadline.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tests.domain.test_races import run_together
from tokens.domain import actors, deadline, lifecycle, signals
from tokens.domain.links import callback_url
from tokens.models import Membership, Token, TokenEvent
from tokens.persistence import fast_paths, selectors

SYSTEM = actors.Actor.system()


def _dsn() -> str:
    db = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )


@contextmanager
def listening() -> Iterator[psycopg.Connection]:
    """A separate connection LISTENing on the resolution channel, as a long-poll process would."""
    with psycopg.connect(_dsn(), autocommit=True) as listener:
        listener.execute(f"LISTEN {fast_paths.NOTIFY_CHANNEL}")
        yield listener


def announced_ids(listener: psycopg.Connection, expected: int) -> set[str]:
    """Ids received over NOTIFY until ``expected`` arrived (or 10 s without news)."""
    ids: set[str] = set()
    for notice in listener.notifies(timeout=10, stop_after=None):
        ids.update(notice.payload.split(","))
        if len(ids) >= expected:
            break
    return ids


@pytest.fixture
def signalled() -> Iterator[list[str]]:
    received: list[str] = []

    def receiver(sender: object, token_ids: list[str], statuses: dict[str, str], **_: object):
        assert set(statuses) == set(token_ids)
        received.extend(token_ids)

    signals.token_resolved.connect(receiver)
    yield received
    signals.token_resolved.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_it_announces_a_resolution_on_every_path(environment, secret_key, make_token, signalled):
    """Complete (secret key, public access token, callback URL JSON and form, dashboard),
    cancel, force timeout, the sweep and an overdue token met on access: each is announced
    once, to other connections (NOTIFY) and in-process (signal), after commit."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    user = User.objects.create_user("ann", password="pw")
    Membership.objects.create(user=user, project=environment.project, role="admin")
    browser = Client()
    browser.force_login(user)
    tokens: dict[str, Token] = {}

    with listening() as listener:
        created = api.post("/api/v1/waitpoints/tokens", {}, format="json")
        jwt = created["x-trigger-jwt"]
        tokens["api"] = Token.objects.get(pk=created.json()["id"].removeprefix("waitpoint_"))
        assert (
            api.post(
                f"/api/v1/waitpoints/tokens/{tokens['api'].friendly_id}/complete",
                {"data": 1},
                format="json",
            ).json()["applied"]
            is True
        )

        public = APIClient()
        public.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt}")
        tokens["public"] = tokens["api"]  # same token: its second completion is not announced
        assert (
            public.post(
                f"/api/v1/waitpoints/tokens/{tokens['api'].friendly_id}/complete",
                {"data": 2},
                format="json",
            ).json()["applied"]
            is False
        )

        tokens["callback"] = make_token()
        url = callback_url(tokens["callback"], base="")
        assert Client().post(url, {"ok": True}, content_type="application/json").json()["applied"]

        tokens["form"] = make_token()
        form_url = callback_url(tokens["form"], base="")
        page = Client(enforce_csrf_checks=True)
        page.get(form_url)
        csrf = page.cookies["csrftoken"].value
        page.post(form_url, {"decision": "approved", "csrfmiddlewaretoken": csrf})

        tokens["dashboard"] = make_token()
        browser.post(f"/tokens/{tokens['dashboard'].friendly_id}/approve", {"comment": ""})

        tokens["cancel"] = make_token()
        api.post(
            f"/api/v1/waitpoints/tokens/{tokens['cancel'].friendly_id}/cancel", {}, format="json"
        )

        tokens["force"] = make_token()
        lifecycle.token_force_timeout(token=tokens["force"], actor=SYSTEM)

        past = timezone.now() - timedelta(minutes=5)
        tokens["sweep"] = make_token(timeout="1m", now=past)
        assert lifecycle.token_expire_due() == 1

        tokens["on_access"] = make_token(timeout="1m", now=past)
        late = lifecycle.token_complete(token=tokens["on_access"], actor=SYSTEM, data="late")
        assert late.applied is False

        expected = {token.pk for token in tokens.values()}
        ids = announced_ids(listener, len(expected))

    assert ids == expected
    assert sorted(signalled) == sorted(expected)  # each exactly once
    for name, token in tokens.items():
        token.refresh_from_db()
        assert token.status != Token.Status.WAITING, name


@pytest.mark.django_db
def test_it_sweeps_with_one_update_per_batch(environment, make_token):
    now = timezone.now()
    for index in range(5):
        make_token(timeout="1m", now=now - timedelta(minutes=10, seconds=index))

    with CaptureQueriesContext(connection) as queries:
        assert lifecycle.token_expire_due(batch_size=2) == 5

    statements = [q["sql"] for q in queries if "UPDATE tokens_token" in q["sql"]]
    assert len(statements) == math.ceil(5 / 2)  # 2 + 2 + 1: the short batch ends the sweep
    # Each statement writes its audit events too (INSERT … SELECT from the UPDATE's RETURNING).
    assert all("INSERT INTO tokens_tokenevent" in sql for sql in statements)
    assert not [q for q in queries if q["sql"].startswith('INSERT INTO "tokens_tokenevent"')]
    assert Token.objects.filter(status=Token.Status.TIMED_OUT).count() == 5
    assert TokenEvent.objects.filter(kind=TokenEvent.Kind.TIMED_OUT, channel="system").count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_completion_held_across_the_deadline_never_commits(environment):
    """A reader sees TIMED_OUT once the deadline passes; the completion that was applied just
    before it, but commits after it, is refused at COMMIT by the database (deferred trigger)."""
    token = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="2s").token
    applied = threading.Event()
    reader_saw_timeout = threading.Event()
    outcome: dict[str, object] = {}

    def held_completion() -> None:
        try:
            with transaction.atomic():
                result = lifecycle.token_complete(token=token, actor=SYSTEM, data="held")
                outcome["applied_inside"] = result.applied
                applied.set()
                reader_saw_timeout.wait(timeout=30)
        except IntegrityError as error:
            outcome["error"] = error
        finally:
            connection.close()

    worker = threading.Thread(target=held_completion)
    worker.start()
    assert applied.wait(timeout=10)
    assert outcome["applied_inside"] is True

    seen = []
    while not reader_saw_timeout.is_set():  # read as the API does until the deadline passes
        read = selectors.token_get_for_environment(environment=environment, token_id=token.pk)
        status = deadline.effective(read, timezone.now()).status
        seen.append(status)
        if status == Token.Status.TIMED_OUT:
            reader_saw_timeout.set()
        else:
            assert status == Token.Status.WAITING
            threading.Event().wait(0.05)
    worker.join(timeout=30)

    error = outcome.get("error")
    assert isinstance(error, IntegrityError), outcome
    assert deadline.is_deadline_refusal(error)
    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.WAITING  # never COMPLETED
    assert deadline.effective(stored, timezone.now()).status == Token.Status.TIMED_OUT
    assert lifecycle.token_expire_due() == 1
    assert Token.objects.get(pk=token.pk).status == Token.Status.TIMED_OUT


@pytest.mark.django_db(transaction=True)
def test_a_completion_slowed_past_the_deadline_reports_the_timeout(environment):
    """The service's own commit lands after the deadline (its audit insert waits on a lock held
    by another transaction): nothing is applied and the caller learns the token timed out."""
    token = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1s").token
    locked = threading.Event()
    release = threading.Event()

    def hold_the_audit_table() -> None:
        with psycopg.connect(_dsn()) as other:
            other.execute("LOCK TABLE tokens_tokenevent IN EXCLUSIVE MODE")
            locked.set()
            release.wait(timeout=30)
        # leaving the block commits and releases the lock

    holder = threading.Thread(target=hold_the_audit_table)
    holder.start()
    assert locked.wait(timeout=10)

    def release_after_the_deadline() -> None:
        while deadline.is_waiting(
            selectors.token_get_for_environment(environment=environment, token_id=token.pk),
            timezone.now(),
        ):
            threading.Event().wait(0.05)
        release.set()
        connection.close()

    results = run_together(
        [
            lambda: lifecycle.token_complete(token=token, actor=SYSTEM, data="slow"),
            release_after_the_deadline,
        ]
    )
    holder.join(timeout=30)

    result = results[0]
    assert result.applied is False
    assert result.token.status == Token.Status.TIMED_OUT
    kinds = list(token.events.values_list("kind", flat=True))
    assert kinds == ["created", "timed_out", "complete_ignored"]
