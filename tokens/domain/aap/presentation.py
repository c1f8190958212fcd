"""What the approver of an AAP request sees: the proposed call shaped for a page (the dashboard's
token page and the personal-link confirmation page both use :func:`proposed_call`). Values are
plain text for the templates to escape; nothing here is markup, a link or executed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tokens.domain.aap.representation import tagged_as_request
from tokens.models import AapRequest, Token

# Strings longer than this (or with line breaks) are folded behind <details>.
FOLD_CHARACTERS = 200
# Arguments whose JSON text is longer than this are flagged as too large to review on a page.
REVIEWABLE_CHARACTERS = 20_000


@dataclass(frozen=True)
class Argument:
    name: str
    kind: str  # "text" (short string), "long" (folded string), "json" (anything else)
    text: str


@dataclass(frozen=True)
class ProposedCall:
    tool: str
    server: str
    instance: str
    runtime: str
    reasoning: str
    arguments: list[Argument] = field(default_factory=list)
    arguments_size: int = 0
    too_large: bool = False
    context_text: str = ""


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


def _argument(name: str, value: Any) -> Argument:
    if isinstance(value, str):
        if len(value) > FOLD_CHARACTERS or "\n" in value:
            return Argument(name=name, kind="long", text=value)
        return Argument(name=name, kind="text", text=value)
    return Argument(name=name, kind="json", text=_pretty(value))


def _runtime(context: dict[str, Any] | None) -> str:
    if not context:
        return ""
    value = context.get("runtime")
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [str(value.get(key)) for key in ("name", "version") if value.get(key)]
        return " ".join(parts) if parts else _pretty(value)
    return ""


def proposed_call(token: Token) -> ProposedCall | None:
    """The call an AAP request's token asks a person to allow, or None for any other token."""
    if not tagged_as_request(token):
        return None  # not an AAP request: no query (the tag is checked against the row below)
    request = AapRequest.objects.select_related("instance").filter(token_id=token.pk).first()
    if request is None:
        return None
    arguments = request.arguments
    size = len(request.arguments_json)
    context = request.context
    return ProposedCall(
        tool=request.tool,
        server=request.server or "",
        instance=request.instance.name,
        runtime=_runtime(context),
        reasoning=request.agent_reasoning or "",
        arguments=[_argument(str(name), value) for name, value in arguments.items()],
        arguments_size=size,
        too_large=size > REVIEWABLE_CHARACTERS,
        context_text=_pretty(context) if context else "",
    )
