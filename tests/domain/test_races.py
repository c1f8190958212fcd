"""Races on real PostgreSQL: threads released together by a barrier, each on its own connection,
going through the full HTTP stack (django.test.Client), then database invariants."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tokens.domain import actors, chain, deadline, lifecycle
from tokens.domain.links import callback_url
from tokens.models import Token, TokenEvent

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = actors.Actor.system()
TRANSITIONS = ("completed", "timed_out", "cancelled")


def run_together(jobs: list[Callable[[], object]]) -> list[object]:
    """Run each job in its own thread, all released at once; re-raise the first failure."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def worker(index: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except BaseException as error:  # noqa: BLE001 - reported to the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def post_json(path: str, body: object, **headers: str) -> tuple[int, dict]:
    response = Client().generic(
        "POST", path, json.dumps(body).encode(), content_type="application/json", **headers
    )
    return response.status_code, response.json()


def test_it_applies_exactly_one_of_50_concurrent_completions(environment, secret_key):
    token = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token
    api_path = f"/api/v1/waitpoints/tokens/{token.friendly_id}/complete"
    cb_path = callback_url(token, base="")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret_key}"}

    jobs: list[Callable[[], object]] = []
    outputs: list[object] = []
    for n in range(25):
        api_body = {"via": "api", "n": n}
        cb_body = {"via": "callback", "n": n}
        outputs += [api_body, cb_body]
        jobs.append(lambda b=api_body: post_json(api_path, {"data": b}, **auth))
        jobs.append(lambda b=cb_body: post_json(cb_path, b))
    results = run_together(jobs)

    assert all(status == 200 for status, _ in results), results
    assert all(body["success"] is True for _, body in results)
    winners = [i for i, (_, body) in enumerate(results) if body["applied"] is True]
    assert len(winners) == 1
    assert all(body["status"] == "COMPLETED" for _, body in results)

    stored = Token.objects.get(pk=token.pk)
    assert stored.status == Token.Status.COMPLETED
    assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
        "json": outputs[winners[0]]
    }
    events = stored.events
    assert events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1
    assert events.filter(kind=TokenEvent.Kind.COMPLETE_IGNORED).count() == 49
    winner_channel = "api" if outputs[winners[0]]["via"] == "api" else "callback"
    assert events.get(kind=TokenEvent.Kind.COMPLETED).channel == winner_channel
    assert chain.verify(stored) is None  # 50 writers, one linear audit chain

    # A later replay changes nothing: the first writer won.
    completed_at = stored.completed_at
    assert post_json(cb_path, {"late": True})[1]["applied"] is False
    stored.refresh_from_db()
    assert json.loads(deadline.effective(stored, stored.completed_at).output) == {
        "json": outputs[winners[0]]
    }
    assert stored.completed_at == completed_at
    assert stored.events.filter(kind=TokenEvent.Kind.COMPLETED).count() == 1


def test_it_creates_one_token_for_20_concurrent_creates_with_one_key(environment, secret_key):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret_key}"}
    body = {"idempotencyKey": "order-42", "tags": ["race"]}
    results = run_together(
        [lambda: post_json("/api/v1/waitpoints/tokens", body, **auth) for _ in range(20)]
    )
    assert all(status == 200 for status, _ in results), results
    assert len({body["id"] for _, body in results}) == 1
    assert [body["isCached"] for _, body in results].count(False) == 1
    assert Token.objects.filter(environment=environment).count() == 1
    token = Token.objects.get()
    assert results[0][1]["id"] == token.friendly_id
    assert token.events.filter(kind=TokenEvent.Kind.CREATED).count() == 1


def test_it_resolves_a_completion_racing_the_sweep_exactly_once(environment):
    outcomes = []
    # timeout_at falls across the race window: from just passed (-50 ms) to about to pass while
    # the threads (released ~10-50 ms after `start`) reach the services, up to a second ahead.
    # Seeded, so a failure replays with the same offsets.
    offsets_ms = [-50 + index * 1050 / 29 for index in range(30)]
    random.Random(20261129).shuffle(offsets_ms)
    for iteration, offset_ms in enumerate(offsets_ms):
        start = timezone.now()
        offset = timedelta(milliseconds=offset_ms)
        token = lifecycle.token_create(
            environment=environment,
            actor=SYSTEM,
            timeout="60s",
            now=start + offset - timedelta(seconds=60),
        ).token
        path = callback_url(token, base="")
        jobs: list[Callable[[], object]] = [
            lambda: lifecycle.token_expire_due(),
            lambda p=path, i=iteration: post_json(p, {"i": i}),
            lambda p=path, i=iteration: post_json(p, {"i": i, "second": True}),
        ]
        results = run_together(jobs)
        swept = results[0]

        stored = Token.objects.get(pk=token.pk)
        assert stored.status in (Token.Status.COMPLETED, Token.Status.TIMED_OUT)
        transitions = list(
            stored.events.filter(kind__in=TRANSITIONS).values_list("kind", flat=True)
        )
        assert len(transitions) == 1, transitions
        assert transitions[0] == stored.status.lower()
        responses = [body for _, body in results[1:]]
        assert [body["applied"] for body in responses].count(True) == (
            1 if stored.status == Token.Status.COMPLETED else 0
        )
        assert all(body["status"] == stored.status for body in responses)
        if stored.status == Token.Status.COMPLETED:
            assert swept == 0
            assert stored.completed_at < stored.timeout_at  # never applied at or after timeout
            assert stored.output_is_error is False
        else:
            assert stored.output_is_error is True
            assert (
                json.loads(deadline.effective(stored, stored.completed_at).output)["code"]
                == "TRIGGER_WAITPOINT_TIMEOUT"
            )
        outcomes.append((offset_ms, stored.status))
    # Both sides won somewhere: a deadline already past always times out, one a second ahead
    # always completes; between them the race decides, and each case was checked above.
    by_offset = sorted(outcomes)
    assert by_offset[0][1] == Token.Status.TIMED_OUT, by_offset
    assert by_offset[-1][1] == Token.Status.COMPLETED, by_offset


def test_it_times_out_each_token_once_with_two_concurrent_sweeps(environment):
    past = timezone.now() - timedelta(hours=1)
    Token.objects.bulk_create(
        [
            Token(environment=environment, created_at=past, timeout_at=past + timedelta(seconds=i))
            for i in range(300)
        ]
    )
    future = lifecycle.token_create(environment=environment, actor=SYSTEM, timeout="1h").token

    counts = run_together([lambda: lifecycle.token_expire_due(batch_size=20)] * 2)

    assert sum(counts) == 300
    assert Token.objects.filter(status=Token.Status.TIMED_OUT).count() == 300
    assert TokenEvent.objects.filter(kind=TokenEvent.Kind.TIMED_OUT).count() == 300
    assert (
        TokenEvent.objects.filter(kind=TokenEvent.Kind.TIMED_OUT).values("token").distinct().count()
        == 300
    )
    assert lifecycle.token_expire_due(batch_size=20) == 0
    assert Token.objects.get(pk=future.pk).status == Token.Status.WAITING
