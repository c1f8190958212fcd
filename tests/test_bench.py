"""The benchmark's pieces that must stay true without running it (bench/README.md)."""

from __future__ import annotations

from pathlib import Path

from django.urls import resolve

from bench.runner import Shape, shape_tags, status_of

ROOT = Path(__file__).resolve().parents[1]


def test_the_floor_views_are_not_in_the_service_urls() -> None:
    from django.conf import settings

    assert settings.ROOT_URLCONF == "waitpoints_site.urls"
    assert not any(app.startswith("bench") for app in settings.INSTALLED_APPS)
    match = resolve("/api/v1/waitpoints/tokens/waitpoint_abc")
    assert match.func.__module__.startswith("rest_framework") or "tokens" in match.func.__module__
    assert not match.func.__module__.startswith("bench")


def test_the_data_shape_has_the_issues_tag_counts() -> None:
    shape = Shape(count=100_000, reserve=10_000)
    tags = [shape_tags(shape, index) for index in range(shape.count)]
    assert all("every" in names for names in tags)
    assert sum("rare" in names for names in tags) == 200
    assert sum("single" in names for names in tags) == 1
    # some of the rare-tagged tokens are COMPLETED ("COMPLETED + a tag on 200 tokens")
    rare = [index for index, names in enumerate(tags) if "rare" in names]
    assert any(status_of(shape, index) == "COMPLETED" for index in rare)
    # the complete runs' supply is WAITING
    assert {status_of(shape, index) for index in range(90_000, 100_000)} == {"WAITING"}


def test_bench_run_keeps_the_sections_other_benches_published(tmp_path: Path) -> None:
    from bench import report

    readme = tmp_path / "README.md"
    published = (
        "# Benchmarks\n\n<!-- bench.aap: start -->\nRun 2026-12-07 with `python -m bench.aap`\n"
        "<!-- bench.aap: end -->\n\nA note about that run.\n\n"
    )
    readme.write_text(published + "Run 2026-11-29T09:31:11+00:00 (full mode: 10 tokens)…\n")
    assert report.kept_sections(readme) == published  # a README from before the marker
    readme.write_text(published + report.RUN_MARKER + "\nRun 2026-12-08 (quick mode: …)\n")
    assert report.kept_sections(readme) == published
    readme.write_text("# Benchmarks\n\nRun 2026-11-29 (full mode: 10 tokens)\n")
    assert report.kept_sections(readme) == ""  # nothing else published: the report is all


def _samples(series: dict[str, list[float]], interval: float = 30) -> list[dict]:
    """Samples as bench.memory takes them: t=0 (idle) then one every ``interval`` seconds."""
    count = len(next(iter(series.values())))
    return [
        {"t": i * interval, "rss_mb": {pid: values[i] for pid, values in series.items()}}
        for i in range(count)
    ]


def test_memory_growth_is_the_last_minute_against_the_first() -> None:
    from bench import memory

    # 10 minutes: the idle figure and the warm-up do not count; a flat plateau is no growth.
    flat = [80.0, 118.0, 120.0] + [120.5, 119.5] * 9
    leaking = [80.0] + [118.0 + 1.0 * i for i in range(1, 21)]  # +2 MB a minute
    assert len(flat) == len(leaking) == 21
    result = memory.growth(_samples({"1": flat}), 600)
    assert result["verdict"] == "no growth"
    assert result["processes"]["1"]["idle_mb"] == 80.0
    assert result["processes"]["1"]["first_minute_mb"] == 119.0  # t=30 and t=60
    assert abs(result["processes"]["1"]["growth_mb"]) <= 1
    result = memory.growth(_samples({"1": flat, "2": leaking}), 600)
    assert result["verdict"] == "**growth**"
    assert result["processes"]["1"]["within"] and not result["processes"]["2"]["within"]
    # the means of t=30, 60 (118 + 1, + 2) and of t=540, 570, 600 (118 + 18, + 19, + 20)
    assert result["processes"]["2"]["growth_mb"] == 17.5


def test_memory_tolerance_is_a_few_mb_or_a_few_percent_whichever_is_larger() -> None:
    from bench import memory

    # The last minute of 10 is the last three samples (t=540, 570, 600).
    small = [10.0] * 18 + [12.5] * 3  # +2.5 MB on 10 MB: within 3 MB
    big = [400.0] * 18 + [411.0] * 3  # +11 MB on 400 MB: within 3% (12 MB)
    result = memory.growth(_samples({"small": small, "big": big}), 600)
    assert result["verdict"] == "no growth", result
    assert result["processes"]["big"]["tolerance_mb"] == 12.0
    worse = big[:-3] + [413.0] * 3
    assert memory.growth(_samples({"big": worse}), 600)["verdict"] == "**growth**"


def test_memory_gives_no_verdict_on_a_trial_or_a_process_that_died() -> None:
    from bench import memory

    assert memory.growth(_samples({"1": [1.0, 1.0, 1.0]}), 60)["verdict"].startswith("no verdict")
    died = _samples({"1": [50.0] * 21})
    for sample in died[5:]:
        del sample["rss_mb"]["1"]
    result = memory.growth(died, 600)
    assert result["verdict"].startswith("no verdict")
    assert "within" not in result["processes"]["1"]


def _results() -> dict:
    row = {"p50_ms": 5.0, "p95_ms": 10.0, "p99_ms": 12.0}
    rates = [{"connections": c, "rps": 100.0, "errors": 0} for c in (1, 8, 32)]
    from bench import report

    shapes = [*report.ISSUE_LIST_ROWS, "1,000 pages deep", "status COMPLETED"]
    web = [{"pid": 10, "rss_mb": 40.0, "command": "hypercorn"}]
    return {
        "date": "2026-12-07",
        "mode": "quick",
        "tokens_per_environment": 10,
        "elapsed_seconds": 1,
        "machine": {"cores": 2, "cpu": "x", "memory_gb": 4, "os": "linux"},
        "versions": {"python": "3.11"},
        "procfile": {"web": "hypercorn …"},
        "web_concurrency": "2",
        "service": {op: rates for op in ("create", "complete", "retrieve")},
        "floor": {op: rates for op in ("create", "complete", "retrieve")},
        "list": {name: dict(row) for name in shapes},
        "list_concurrent": {name: {**row, "p95_ms": 30.0} for name in shapes},
        "explain": {},
        "dashboard": {},
        "pgbench": {"insert": 1.0, "conditional update": 1.0},
        "rss_idle": {"web": web, "worker": []},
        "rss": {"web": [{**web[0], "rss_mb": 55.5}], "worker": []},
    }


def test_the_report_gives_the_list_at_8_connections_and_memory_idle_and_after() -> None:
    from bench import report

    results = _results()
    text = report.summary(results)
    assert "| list `page[size]=100`: first page, 8 connections | p95 30.0 ms" in text
    assert f"{len(results['list'])} of {len(results['list'])} within both" in text
    assert "| memory: RSS per web process, idle → after the runs | 40.0 → 55.5 MB" in text
    assert "| web | 10 | 40.0 | 55.5 | `hypercorn` |" in text
    results["list_concurrent"]["status COMPLETED"]["p95_ms"] = 41.0  # one shape misses
    text = report.summary(results)
    assert f"{len(results['list']) - 1} of {len(results['list'])} within both" in text
    assert "| status COMPLETED | 5.0 | 10.0 | 12.0 | 41.0 | met, **missed** |" in text


def test_the_memory_section_sits_between_its_markers(tmp_path: Path) -> None:
    from bench import memory, publishing

    samples = _samples({"7": [80.0] + [120.0] * 20})
    results = {
        "date": "2026-12-07",
        "machine": {"cores": 2},
        "procfile": {"web": "hypercorn …"},
        "minutes": 10,
        "interval_seconds": 30,
        "load_at_start": [0.2, 0.3, 0.4],
        "load": {"clients": 4, "requests": 1000, "rps": 100.0, "errors": 0},
        "commands": {"7": "hypercorn worker"},
        "samples": samples,
        "growth": memory.growth(samples, 600),
    }
    text = memory.section(results)
    assert text.startswith(memory.MARK_START) and text.endswith(memory.MARK_END)
    assert "**Verdict: no growth.**" in text and "quiet machine" in text
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- bench.throughput: start -->\nT\n"
                      "<!-- bench.throughput: end -->\n\nrest\n")  # fmt: skip
    memory.publish(results, tmp_path)
    once = readme.read_text()
    assert once.index("bench.throughput: end") < once.index(memory.MARK_START) < once.index("rest")
    memory.publish(results, tmp_path)
    assert readme.read_text() == once  # replaced in place, not added again
    assert publishing.QUIET_LOAD == 1.0
