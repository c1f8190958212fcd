"""The layers of ``tokens/``, checked by package (docs/architecture.md draws them).

* ``domain``, ``persistence`` and ``delivery`` are the core: they never import a surface, the
  platform, the Celery tasks or the management commands; the domain also imports nothing of
  HTTP or DRF and runs no SQL of its own (its statements live in ``persistence``).
* ``surfaces.<name>`` turn requests into calls of the core; they share ``surfaces.common`` and
  never import each other.
* ``platform`` (process-level: logging, heartbeats) is for ``waitpoints_site`` and the health
  surface only.
* No module imports itself back through others: a cycle hides which module comes first.

A module added anywhere is checked by the rules of the package it lands in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOKENS = REPO / "tokens"
CORE = ("tokens.domain", "tokens.persistence", "tokens.delivery")
NOT_FOR_THE_CORE = (
    "tokens.surfaces",
    "tokens.platform",
    "tokens.tasks",
    "tokens.management",
    "waitpoints_site",
)
HTTP = (
    "django.http",
    "django.shortcuts",
    "rest_framework",
    "drf_spectacular",
    "django.contrib.admin",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(TOKENS.rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = modules()


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            names.update(submodules)
            # ``from tokens.domain import keys`` imports the module, not the package's names.
            if not submodules <= set(MODULES):
                names.add(base)
    return names


def tokens_imports(path: Path) -> set[str]:
    """The modules of ``tokens`` that ``path`` imports (``from tokens.domain import x`` names
    ``tokens.domain.x`` when that is a module)."""
    found = set()
    for name in imported(path):
        if name in MODULES:
            found.add(name)
    return found


def of_package(prefix: str) -> list[str]:
    return sorted(name for name in MODULES if name == prefix or name.startswith(prefix + "."))


def starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_packages_are_what_we_think_they_are():
    assert {"tokens.domain.decide", "tokens.domain.resolution", "tokens.domain.deadline"} <= set(
        MODULES
    )
    assert {"tokens.persistence.selectors", "tokens.persistence.filters"} <= set(MODULES)
    assert {"tokens.delivery.outbox", "tokens.delivery.http_client"} <= set(MODULES)
    assert {"tokens.surfaces.triggerdev_v1", "tokens.surfaces.dashboard"} <= set(MODULES)
    # Every module of the app lives in a package by role, but for the few Django looks for.
    loose = {
        name
        for name in MODULES
        if name.count(".") == 1
        and name.split(".")[1] not in ("domain", "persistence", "delivery", "surfaces", "platform")
    }
    assert loose == {
        "tokens.apps",
        "tokens.checks",
        "tokens.management",
        "tokens.models",
        "tokens.tasks",
        "tokens.templatetags",
    }


@pytest.mark.parametrize("name", [n for p in CORE for n in of_package(p)])
def test_the_core_imports_no_surface(name):
    bad = {n for n in imported(MODULES[name]) if starts(n, NOT_FOR_THE_CORE)}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", of_package("tokens.domain"))
def test_the_domain_knows_no_http_and_runs_no_sql(name):
    path = MODULES[name]
    bad = {n for n in imported(path) if starts(n, HTTP)}
    assert not bad, f"{name} imports {sorted(bad)}"
    text = path.read_text()
    for sql in ("cursor(", ".raw(", "RawSQL"):
        assert sql not in text, f"{name} runs SQL ({sql}): it belongs in tokens.persistence"


def _surface(name: str) -> str | None:
    """``tokens.surfaces.dashboard.views`` → ``dashboard``; None outside the surfaces."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "surfaces" else None


@pytest.mark.parametrize("name", of_package("tokens.surfaces"))
def test_a_surface_imports_no_other_surface(name):
    mine = _surface(name)
    others = {
        target
        for target in tokens_imports(MODULES[name]) | imported(MODULES[name])
        if _surface(target) not in (None, mine, "common")
    }
    assert not others, f"{name} imports {sorted(others)}"


@pytest.mark.parametrize("name", of_package("tokens.surfaces.common"))
def test_the_common_surface_code_imports_no_surface(name):
    bad = {t for t in imported(MODULES[name]) if _surface(t) not in (None, "common")}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_site_and_health_use_the_platform(name):
    if starts(name, ("tokens.platform", "tokens.surfaces.health")):
        return
    bad = {n for n in imported(MODULES[name]) if starts(n, ("tokens.platform",))}
    assert not bad, f"{name} imports {sorted(bad)}"


def test_models_import_only_key_generation():
    assert tokens_imports(MODULES["tokens.models"]) <= {"tokens.domain.keys"}
    assert not tokens_imports(MODULES["tokens.domain.keys"])


def test_no_import_cycles():
    graph = {name: tokens_imports(path) - {name} for name, path in MODULES.items()}
    # A package's __init__ importing its own modules is not a cycle of theirs.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" → ".join(cycle) for cycle in cycles)
