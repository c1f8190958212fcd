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
