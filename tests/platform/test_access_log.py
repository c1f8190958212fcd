"""The web role's access-log lines are hypercorn's (waitpoints_site/access_log.py builds them
without copying the environment per line)."""

from __future__ import annotations

from hypercorn.config import Config
from hypercorn.logging import AccessLogAtoms

from waitpoints_site.access_log import LazyAtoms

SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/api/v1/waitpoints/tokens",
    "raw_path": b"/api/v1/waitpoints/tokens",
    "query_string": b"page[size]=5",
    "headers": [(b"host", b"h"), (b"User-Agent", b"sdk/4"), (b"referer", b"http://x/")],
    "client": ("10.0.0.1", 4242),
    "server": ("127.0.0.1", 8000),
}
RESPONSE = {"status": 201, "headers": [(b"Content-Length", b"12"), (b"content-type", b"x")]}


def test_the_default_format_gives_hypercorns_line() -> None:
    fmt = Config().access_log_format
    theirs = fmt % AccessLogAtoms(SCOPE, RESPONSE, 0.25)
    ours = fmt % LazyAtoms(SCOPE, RESPONSE, 0.25)
    # The timestamp is the only part that may differ (a second may pass between the two).
    assert ours.split("[", 1)[0] == theirs.split("[", 1)[0]
    assert ours.split("]", 1)[1] == theirs.split("]", 1)[1]
    assert '"POST /api/v1/waitpoints/tokens 1.1" 201 12 "http://x/" "sdk/4"' in ours


def test_missing_parts_and_other_atoms_read_as_hypercorn_reads_them() -> None:
    bare = {**SCOPE, "headers": [], "client": None}
    for key in ("h", "b", "f", "a", "s", "D", "{host}i", "Uq", "{content-type}o"):
        assert LazyAtoms(bare, RESPONSE, 0.25)[key] == AccessLogAtoms(bare, RESPONSE, 0.25)[key]
    assert LazyAtoms(SCOPE, None, 0.25)["s"] == AccessLogAtoms(SCOPE, None, 0.25)["s"]
