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
