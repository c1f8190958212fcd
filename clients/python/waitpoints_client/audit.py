"""Check an audit export (``Client.export_audit``) on its own, without the server.

Each line is one event of a token's hash chain (docs/audit.md):

    content digest = sha256(canonical JSON of kind … createdAt)   (keys sorted, no spaces, UTF-8)
    digest         = sha256("<previous>|<seq>|<token id without waitpoint_>|<content digest>")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

CONTENT_KEYS = (
    "kind",
    "channel",
    "credential",
    "actor",
    "ip",
    "userAgent",
    "email",
    "detail",
    "createdAt",
)


def _digest(line: dict[str, Any]) -> str:
    body = {name: line[name] for name in CONTENT_KEYS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    content = hashlib.sha256(canonical.encode()).hexdigest()
    token = str(line["token"]).removeprefix("waitpoint_")
    return hashlib.sha256(
        f"{line['previous']}|{line['seq']}|{token}|{content}".encode()
    ).hexdigest()


def verify_audit(lines: Iterable[dict[str, Any]]) -> list[str]:
    """What does not check in an export (empty: every line matches its digest, and each
    token's lines follow one another, from ``seq`` 1 when the export is a whole trail)."""
    problems: list[str] = []
    last: dict[str, tuple[int, str]] = {}
    for line in lines:
        token = str(line["token"])
        where = f"{token} event #{line['seq']}"
        if _digest(line) != line["digest"]:
            problems.append(f"{where}: digest does not match")
        seen = last.get(token)
        if seen is not None and (seen[0] + 1 != line["seq"] or seen[1] != line["previous"]):
            problems.append(f"{where}: does not follow event #{seen[0]}")
        last[token] = (int(line["seq"]), str(line["digest"]))
    return problems
