"""What a request shows an approver: its title, its Markdown description and its context.

Core: validation (used by ``lifecycle.token_create``) and rendering (used by every human
surface through the ``waitpoints`` template filters). The description is Markdown rendered by
markdown-it-py (CommonMark, raw HTML disabled) and then sanitised by nh3 (Ammonia) with a short
allow-list, so neither raw HTML nor ``javascript:`` links nor images (tracking pixels) survive,
whichever way the Markdown tries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_CONTEXT_BYTES, MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH

# CommonMark with tables and strikethrough; "html": False renders raw HTML as text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
SAFE_URL_SCHEMES = {"http", "https", "mailto"}


def clean_title(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TITLE_LENGTH:
        raise InvalidInput(
            f"Invalid title: expected a string of at most {MAX_TITLE_LENGTH} characters."
        )
    # One line: a title becomes an e-mail subject and a page heading.
    return " ".join(value.split())


def clean_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            "Invalid description: expected a Markdown string of at most "
            f"{MAX_DESCRIPTION_LENGTH} characters."
        )
    return value.strip()


def clean_context(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise InvalidInput(f"Invalid context: expected a JSON object, received {kind}.")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_CONTEXT_BYTES:
        raise InvalidInput(
            f"Invalid context: at most {MAX_CONTEXT_BYTES // 1024} KiB of JSON, "
            f"received {size} bytes."
        )
    return value or None


def render_markdown(text: str) -> SafeString:
    """Sanitised HTML for a description (safe to insert into any page or e-mail)."""
    if not text:
        return mark_safe("")  # noqa: S308 - empty
    html = nh3.clean(
        _MARKDOWN.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(html)  # noqa: S308 - sanitised by nh3 just above


@dataclass(frozen=True)
class ContextRow:
    """One key of the context: scalars read as text, objects and arrays fold (``folded``)."""

    key: str
    value: str
    folded: str | None = None  # indented JSON, for a <details> on pages
    compact: str = ""  # one shortened line of JSON, for e-mails (where nothing folds)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def context_rows(context: dict[str, Any] | None) -> list[ContextRow]:
    rows: list[ContextRow] = []
    for key, value in (context or {}).items():
        if isinstance(value, dict):
            summary = f"{len(value)} key{'' if len(value) == 1 else 's'}"
        elif isinstance(value, list):
            summary = f"{len(value)} item{'' if len(value) == 1 else 's'}"
        else:
            rows.append(ContextRow(key=str(key), value=_scalar(value)))
            continue
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        rows.append(
            ContextRow(key=str(key), value=summary, folded=pretty, compact=compact_json(value))
        )
    return rows


def compact_json(value: Any, limit: int = 200) -> str:
    """One line of JSON, shortened: for e-mails, where nothing folds."""
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
