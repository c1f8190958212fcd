"""The core imports no adapter: adapters turn requests into calls, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TOKENS = Path(__file__).resolve().parents[1] / "tokens"
ADAPTERS = (
    "tokens.api",
    "tokens.dashboard",
    "tokens.callback",
    "tokens.admin",
    "tokens.tasks",
    "tokens.http",
    "tokens.body",  # reading and strictly parsing request bodies, for every HTTP surface
    "tokens.management",
    "tokens.middleware",
    "tokens.health",
    "tokens.ratelimit",  # middleware and limits on HTTP surfaces
    "tokens.login",  # login forms and view
    "tokens.mailbox",  # the e-mail backend and its staff page
)
# Request and framework types belong to adapters too.
FOREIGN = ("django.http", "rest_framework", "django.contrib.admin")
CORE = sorted(
    path
    for path in TOKENS.glob("*.py")
    if f"tokens.{path.stem}" not in ADAPTERS and path.stem not in ("__init__", "apps")
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_is_what_we_think_it_is():
    stems = {path.stem for path in CORE}
    assert {"models", "services", "selectors", "resolution", "outbox", "emails", "links"} <= stems


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.stem)
def test_a_core_module_imports_no_adapter(path):
    bad = {
        name
        for name in imported_modules(path)
        if name.startswith(ADAPTERS) or name.startswith(FOREIGN)
    }
    assert not bad, f"tokens/{path.name} imports {sorted(bad)}"


# Surfaces other than the API, and what of the API's package each may use.
SURFACES = {
    # The callback URL is an endpoint of the published API: the schema describes it.
    "tokens.callback": (TOKENS / "callback.py", ("tokens.api.schema",)),
    "tokens.dashboard": (TOKENS / "dashboard", ()),
}


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_other_surfaces_do_not_import_api_internals(surface):
    """The callback view and the dashboard read bodies and requests with the helpers shared by
    every HTTP surface (tokens.http, tokens.body), not with the API's internals."""
    root, allowed = SURFACES[surface]
    paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
    bad = {
        f"{path.relative_to(TOKENS)}: {name}"
        for path in paths
        for name in imported_modules(path)
        if name.startswith("tokens.api") and not name.startswith(allowed)
    }
    assert not bad, sorted(bad)
