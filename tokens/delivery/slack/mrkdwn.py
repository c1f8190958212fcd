"""A request's Markdown description in Slack's own formatting ("mrkdwn"), safely.

The Markdown is parsed by markdown-it-py exactly as the pages parse it (CommonMark, tables,
strikethrough, raw HTML as text) and written out again as mrkdwn: ``*bold*``, ``_italic_``,
``~struck~``, code, ``<url|links>`` (http, https and mailto only), lists, quotes. Every piece
of text is escaped (``&``, ``<``, ``>``), so a description can never produce a mention
(``<!channel>``, ``<@U…>``), a link of its own choosing, or break out of the message; images
become their alt text (no tracking pixels, as on the pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token as MdToken

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
SAFE_SCHEMES = {"http", "https", "mailto"}
_INLINE_MARKS = {
    "strong_open": "*",
    "strong_close": "*",
    "em_open": "_",
    "em_close": "_",
    "s_open": "~",
    "s_close": "~",
}


def escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_href(href: str) -> str | None:
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return None
    if scheme not in SAFE_SCHEMES:
        return None
    # "|" would end the URL part of <url|label>; spaces and brackets cannot appear in it.
    return escape(href).replace("|", "%7C").replace(" ", "%20")


def inline(children: Sequence[MdToken]) -> str:
    parts: list[str] = []
    links: list[tuple[str | None, int]] = []
    for child in children:
        kind = child.type
        if kind == "text" or kind == "html_inline":
            parts.append(escape(child.content))
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind in _INLINE_MARKS:
            parts.append(_INLINE_MARKS[kind])
        elif kind == "code_inline":
            parts.append(f"`{escape(child.content)}`")
        elif kind == "link_open":
            links.append((_safe_href(str(child.attrGet("href") or "")), len(parts)))
        elif kind == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:]) or (href or "")
            del parts[start:]
            parts.append(f"<{href}|{label}>" if href else label)
        elif kind == "image":
            parts.append(escape(child.content))  # the alt text; never the image
    return "".join(parts)


def to_mrkdwn(markdown: str) -> str:
    """The description as mrkdwn ("" for none)."""
    if not markdown:
        return ""
    out: list[str] = []
    lists: list[list[int]] = []  # [ordered (0/1), count] per open list
    quote = 0
    heading = False
    marker: str | None = None
    row: list[str] | None = None
    for token in _MARKDOWN.parse(markdown):
        kind = token.type
        indent = "    " * max(len(lists) - 1, 0)
        prefix = "> " * quote
        if kind == "heading_open":
            heading = True
        elif kind == "heading_close":
            heading = False
            out.append("\n")
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(token.attrGet("start") or 1) if kind == "ordered_list_open" else 1
            lists.append([int(kind == "ordered_list_open"), start - 1])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                out.append("\n")
        elif kind == "list_item_open" and lists:
            lists[-1][1] += 1
            marker = f"{lists[-1][1]}." if lists[-1][0] else "•"
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
            if not quote:
                out.append("\n")
        elif kind in ("fence", "code_block"):
            out.append(f"{prefix}```\n{escape(token.content.rstrip(chr(10)))}\n```\n")
        elif kind == "hr":
            out.append(f"{prefix}───\n")
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            out.append(f"{prefix}{' | '.join(row)}\n")
            row = None
        elif kind == "inline":
            text = inline(token.children or [])
            if row is not None:
                row.append(text)
                continue
            if heading:
                text = f"*{text}*"
            if marker is not None:
                out.append(f"{prefix}{indent}{marker} {text}\n")
                marker = None
            else:
                lead = f"{prefix}{indent}  " if lists else prefix
                out.append(f"{lead}{text}\n")
        elif kind == "paragraph_close" and not lists and not quote:
            out.append("\n")
    return "".join(out).strip()


def shorten(text: str, limit: int, more: str) -> str:
    """``text`` within ``limit`` characters: cut at a paragraph (or line) break, then ``more``."""
    if len(text) <= limit:
        return text
    room = limit - len(more) - 2
    cut = text.rfind("\n\n", 0, room)
    if cut < room // 2:
        cut = text.rfind("\n", 0, room)
    if cut < room // 2:
        cut = text.rfind(" ", 0, room)
    if cut <= 0:
        cut = room
    head = text[:cut].rstrip()
    if head.count("```") % 2:
        head += "\n```"  # close a code block the cut left open
    return f"{head}\n{more}"
