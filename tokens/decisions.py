"""Approve / Reject: the output a person's decision stores, and how a stored output reads back.

Shared by the confirmation page behind callback URLs (``tokens.callback``) and the dashboard, so
both write the same shape and both recognise it.
"""

from __future__ import annotations

import json
from typing import Any

DECISIONS = ("approved", "rejected")
MAX_COMMENT_LENGTH = 2000


def decision_output(decision: str, comment: str, *, by: str | None = None) -> dict[str, str]:
    """``{"status": "approved"|"rejected", "comment": …, "by": …}``; empty parts left out."""
    output = {"status": decision}
    if comment:
        output["comment"] = comment
    if by:
        output["by"] = by
    return output


def decision_of(output: str | None, output_type: str) -> dict[str, Any]:
    """The JSON object a completion stored ({"status": "approved", …}), or {} for anything else
    (text, arrays, timeouts): callers read ``.get("status")`` without further checks."""
    if output is None or output_type != "application/super+json":
        return {}
    try:
        value = json.loads(output).get("json")
    except (ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}
