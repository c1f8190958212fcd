"""The audit trail's hash chain: every writer links its event, and verification names the first
event that was changed, removed or moved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tokens.domain import actors, audit, chain, decide, lifecycle, resolution
from tokens.models import Token, TokenEvent
from tokens.persistence import fast_paths

pytestmark = pytest.mark.django_db
SYSTEM = actors.Actor.system()


def fresh(token: Token) -> Token:
    return Token.objects.get(pk=token.pk)


def busy_token(make_token) -> Token:
    """A token with events from every kind of writer: create, audit.record, a vote, the
    resolving statement and a refused attempt after it."""
    token = make_token(approvers=["a@example.com", "b@example.com"], required_approvals=2)
    lifecycle.token_action_denied(token=token, actor=SYSTEM, action="forge")
    lifecycle.token_extend(token=token, actor=SYSTEM, timeout="2h")
    voter = decide.Voter.for_email("a@example.com")
    authority = decide.Authority.recipient()
    decide.decide(token=token, actor=SYSTEM, authority=authority, voter=voter, decision="approved")
    voter = decide.Voter.for_email("b@example.com")
    decide.decide(token=token, actor=SYSTEM, authority=authority, voter=voter, decision="approved")
    lifecycle.token_cancel(token=token, actor=SYSTEM, reason="late")
    return fresh(token)


def test_it_links_every_kind_of_write(make_token):
    token = busy_token(make_token)
    events = list(chain.events_in_order(token))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.kind for e in events} >= {"created", "denied", "extended", "voted", "completed"}
    assert events[-1].kind == TokenEvent.Kind.CANCEL_IGNORED
    assert (token.audit_seq, token.audit_head) == (len(events), events[-1].digest)
    assert chain.verify(token) is None


def test_the_sweep_links_the_events_it_writes_in_its_statement(make_token):
    now = timezone.now()
    tokens = [make_token(timeout="1h") for _ in range(3)]
    for token in tokens:
        lifecycle.token_action_denied(token=token, actor=SYSTEM, action="forge")
    assert lifecycle.token_expire_due(now=now + timedelta(hours=2)) == 3
    for token in tokens:
        stored = fresh(token)
        assert stored.audit_seq == 3
        assert chain.verify(stored) is None


def test_the_orm_twins_link_as_the_sql_does(make_token, monkeypatch):
    """SQLite runs the ORM twin: the links it computes in Python continue those PostgreSQL
    computes in SQL, and the other way round."""
    token = make_token(timeout="1h")
    lifecycle.token_action_denied(token=token, actor=SYSTEM, action="sql")
    monkeypatch.setattr(fast_paths, "_postgresql", lambda: False)
    lifecycle.token_action_denied(token=token, actor=SYSTEM, action="orm")
    other = make_token(timeout="1h")  # created through the ORM twin
    monkeypatch.undo()
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"x": 1.0})
    assert fresh(token).audit_seq == 4
    assert chain.verify(fresh(token)) is None
    lifecycle.token_complete(token=other, actor=SYSTEM, data="ok")
    assert chain.verify(fresh(other)) is None


def test_the_orm_twin_of_a_resolution_and_of_the_sweep_link_too(make_token, monkeypatch):
    token = make_token(timeout="1h")
    late = make_token(timeout="1h")
    monkeypatch.setattr(fast_paths, "_postgresql", lambda: False)
    lifecycle.token_complete(token=token, actor=SYSTEM, data={"x": 1})
    resolution.expire_due(now=timezone.now() + timedelta(hours=2), limit=10, token_ids=[late.pk])
    monkeypatch.undo()
    for stored in (fresh(token), fresh(late)):
        assert stored.audit_seq == 2
        assert chain.verify(stored) is None


def test_it_names_a_changed_event(make_token):
    token = busy_token(make_token)
    third = TokenEvent.objects.get(token=token, seq=3)
    TokenEvent.objects.filter(pk=third.pk).update(detail={"from": "forged", "to": "forged"})
    broken = chain.verify(token)
    assert broken is not None
    assert (broken.seq, broken.event_id) == (3, third.pk)
    assert "digest does not match" in broken.reason
    assert f"event #3 (id {third.pk}, extended)" in str(broken)


@pytest.mark.parametrize(
    "change",
    [
        {"created_at": timezone.now() - timedelta(days=1)},
        {"email": "mallory@example.com"},
        {"kind": TokenEvent.Kind.COMPLETED},
        {"ip": "10.0.0.1"},
        {"digest": "0" * 64},
    ],
)
def test_it_notices_any_changed_field(make_token, change):
    token = busy_token(make_token)
    TokenEvent.objects.filter(token=token, seq=2).update(**change)
    broken = chain.verify(token)
    assert broken is not None and broken.seq == 2


def test_it_notices_a_changed_actor(make_token, secret_key, environment):
    token = busy_token(make_token)
    api_key = environment.api_keys.get()
    TokenEvent.objects.filter(token=token, seq=2).update(api_key=api_key)
    broken = chain.verify(token)
    assert broken is not None and broken.seq == 2 and "key" in broken.reason


def test_a_deleted_key_keeps_the_trail_verifiable(make_token, environment, secret_key):
    api_key = environment.api_keys.get()
    token = make_token()
    actor = actors.Actor(channel="api", credential="secret_key", api_key=api_key)
    lifecycle.token_complete(token=token, actor=actor, data={"ok": True})
    key_id = api_key.pk
    api_key.delete()  # the events' foreign key is cleared; the digest covers actor_ref
    event = TokenEvent.objects.get(token=token, seq=2)
    assert (event.api_key_id, event.actor_ref) == (None, f"key:{key_id}")
    assert chain.verify(fresh(token)) is None


def test_it_names_the_event_after_a_removed_one(make_token):
    token = busy_token(make_token)
    TokenEvent.objects.filter(token=token, seq=3).delete()
    broken = chain.verify(token)
    assert broken is not None and broken.seq == 4
    assert "missing or out of order" in broken.reason


def test_it_notices_events_removed_at_the_end(make_token):
    token = busy_token(make_token)
    TokenEvent.objects.filter(token=token, seq=token.audit_seq).delete()
    broken = chain.verify(fresh(token))
    assert broken is not None and broken.event_id is None
    assert "removed or added at its end" in broken.reason


def test_it_notices_reordered_events(make_token):
    token = busy_token(make_token)
    second, third = (TokenEvent.objects.get(token=token, seq=n) for n in (2, 3))
    TokenEvent.objects.filter(pk=second.pk).update(seq=1000)
    TokenEvent.objects.filter(pk=third.pk).update(seq=2)
    TokenEvent.objects.filter(pk=second.pk).update(seq=3)
    broken = chain.verify(token)
    assert broken is not None and (broken.seq, broken.event_id) == (2, third.pk)


def test_an_export_checks_on_its_own_and_shows_an_edit(make_token):
    token = busy_token(make_token)
    lines = []
    previous = chain.GENESIS
    for event in chain.events_in_order(token):
        lines.append(chain.export_line(event, previous=previous))
        previous = event.digest
    assert list(chain.verify_lines(lines)) == []
    lines[2]["detail"] = {"to": "never"}
    assert list(chain.verify_lines(lines)) == [
        f"{token.friendly_id} event #3: digest does not match"
    ]
    del lines[2]
    assert f"{token.friendly_id} event #4: does not follow event #2" in list(
        chain.verify_lines(lines)
    )


def test_an_event_for_an_unknown_token_is_refused(make_token):
    event = audit.build("nosuchtoken", TokenEvent.Kind.DENIED, SYSTEM, timezone.now())
    with pytest.raises(Token.DoesNotExist):
        fast_paths.append_event(event)
