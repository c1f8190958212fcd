"""bench/aap.py at a tiny scale against the live web role, so that it cannot rot: its create
latency row, its SDK gates woken by decisions over the token API, its busy-machine refusal and
its section of docs/benchmarks/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import aap
from tests.live import web  # noqa: F401 - the live web role fixture
from tokens.domain import tenancy
from tokens.domain.aap import instances
from tokens.models import AapRequest, Environment, Token

pytestmark = pytest.mark.django_db(transaction=True)

GATES = 5


@pytest.fixture
def credential(environment: Environment) -> str:
    _instance, secret = instances.instance_create_for_environment(
        environment=environment, name="bench"
    )
    return secret


def test_it_times_creates_on_one_and_on_several_connections(web, credential) -> None:  # noqa: F811
    rows = [
        aap.create_latency(url=web.url, credential=credential, count=6, connections=n)
        for n in (1, 3)
    ]
    assert [row["requests"] for row in rows] == [6, 6]
    assert [row["errors"] for row in rows] == [0, 0]
    assert all(0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] for row in rows)
    # The warm-up creates are real too, but only the timed ones are counted.
    assert AapRequest.objects.count() >= 12


def test_every_gate_parks_then_wakes_on_its_decision(
    web,  # noqa: F811
    credential,
    environment: Environment,
) -> None:
    _key, api_key = tenancy.api_key_create(environment=environment, name="approver")
    result = aap.gates(url=web.url, credential=credential, api_key=api_key, count=GATES, deciders=2)
    assert result["parked"] >= GATES
    assert result["decided"] == GATES
    assert result["woken"] == GATES
    # Each gate ran the SDK's whole path: the approval came back, was consumed and allowed.
    assert result["allowed"] == GATES
    assert Token.objects.filter(consumed_at__isnull=False).count() == GATES
    assert result["within_1s"] == GATES and result["passed"]
    wake = result["wake_from_call_start"]
    assert 0 < wake["p50_ms"] <= wake["max_ms"] <= 1000


def test_a_busy_machine_is_refused_unless_allowed() -> None:
    assert aap.busy_refusal([0.4, 2.0, 3.0], allow_busy=False) is None
    refusal = aap.busy_refusal([1.3, 0.5, 0.5], allow_busy=False)
    assert refusal is not None and "1.3" in refusal
    assert aap.busy_refusal([1.3, 0.5, 0.5], allow_busy=True) is None


def results(load: float, *, within: int = GATES) -> dict:
    row = {"connections": 1, "requests": 10, "errors": 0, "rps": 50.0}
    row.update(p50_ms=10.0, p95_ms=12.0, p99_ms=14.0, max_ms=15.0)
    wake = {"p50_ms": 20.0, "p95_ms": 30.0, "p99_ms": 40.0, "max_ms": 50.0}
    return {
        "date": "2026-12-07T12:00:00+00:00",
        "machine": {"cores": 2},
        "sdk": "agentapprovalprotocol 0.3.3",
        "load_at_start": [load, 1.0, 1.0],
        "create": [row, {**row, "connections": 8}],
        "gates": {
            "gates": GATES,
            "within_1s": within,
            "allowed": GATES,
            "decisions_per_s": 40.0,
            "passed": within == GATES,
            "wake": wake,
            "wake_from_call_start": wake,
        },
    }


def test_its_section_says_busy_figures_are_busy_and_replaces_itself(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\n{aap.AFTER}\n\nthe full run\n")
    aap.publish(results(2.5, within=GATES - 1), tmp_path)
    text = readme.read_text()
    assert "**busy machine** (load average 2.5 / 1.0 / 1.0" in text
    assert "figures: see the run of 2026-12-07T12:00:00+00:00" in text
    assert f"**{GATES - 1}/{GATES} woken within 1 s**" in text and "**missed**" in text
    assert text.index(aap.AFTER) < text.index(aap.MARK_START) < text.index("the full run")
    aap.publish(results(0.3), tmp_path)
    text = readme.read_text()
    assert text.count(aap.MARK_START) == 1 and "busy" not in text
    assert "quiet machine (load average 0.3" in text and ": met |" in text
    assert text.endswith("the full run\n")
    assert (tmp_path / "aap.json").exists()
