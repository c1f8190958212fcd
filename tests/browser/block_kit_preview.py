"""A rough HTML rendering of Block Kit JSON, for screenshots of what waitpoints sends to Slack.

This is not Slack: it lays out the block types we send (header, section text and fields,
context, actions with buttons) and the mrkdwn we write (bold, italic, strike, code, links,
quotes, dates, a few emoji) in a Slack-like style, so that docs/slack.md can show the blocks the
fake Web API received without a Slack workspace. Slack's own rendering differs in detail.
"""

from __future__ import annotations

import html
import re
from typing import Any

EMOJI = {
    ":white_check_mark:": "✔",
    ":x:": "✘",
    ":hourglass:": "⌛",
    ":no_entry_sign:": "⊘",
    ":alarm_clock:": "⏰",
    ":arrow_up:": "↑",
}
STYLE = """
body { margin: 0; padding: 24px; background: #f8f8f8; font: 15px/1.46 Lato, "Helvetica Neue",
  Arial, sans-serif; color: #1d1c1d; }
.caption { font-size: 13px; color: #616061; margin: 0 0 12px; max-width: 640px; }
.msg { display: flex; gap: 10px; background: #fff; border: 1px solid #ddd; border-radius: 8px;
  padding: 14px 18px; max-width: 640px; margin-bottom: 18px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #4338ca; color: #fff;
  font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.name { font-weight: 900; } .app { font-size: 11px; background: #e8e8e8; padding: 1px 4px;
  border-radius: 3px; margin-left: 4px; color: #616061; } .time { color: #616061; font-size: 12px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 4px; }
.section { margin: 6px 0; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; }
.context { color: #616061; font-size: 12.5px; margin: 6px 0; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; margin: 10px 0 2px; }
.btn { border: 1px solid #bbb; border-radius: 4px; padding: 4px 12px; font-weight: 700;
  font-size: 14px; background: #fff; color: #1d1c1d; }
.btn.primary { background: #007a5a; border-color: #007a5a; color: #fff; }
.btn.danger { background: #e01e5a; border-color: #e01e5a; color: #fff; }
blockquote { margin: 2px 0; padding-left: 10px; border-left: 4px solid #ddd; }
code { font-family: Monaco, Menlo, monospace; font-size: 12px; color: #c01343;
  background: #f6f6f6; border: 1px solid #e8e8e8; border-radius: 3px; padding: 0 3px; }
pre { font-family: Monaco, Menlo, monospace; font-size: 12px; background: #f6f6f6;
  border: 1px solid #e8e8e8; border-radius: 4px; padding: 8px; white-space: pre-wrap; }
a { color: #1264a3; text-decoration: none; }
"""


def _inline(text: str) -> str:
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", r"<b>@\1</b>", text)
    text = re.sub(r"<([a-z]+:[^|>]+)\|([^>]*)>", r'<a href="\1">\2</a>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", text)
    text = re.sub(r"(?<![\w~])~([^~\n]+)~(?![\w~])", r"<s>\1</s>", text)
    for code, symbol in EMOJI.items():
        text = text.replace(code, symbol)
    return text


def mrkdwn(text: str) -> str:
    """Our mrkdwn (already escaped for Slack: &amp; &lt; &gt;, which HTML reads the same)."""
    parts = re.split(r"```\n?(.*?)\n?```", text, flags=re.DOTALL)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<pre>{part}</pre>")
            continue
        lines = []
        for line in part.split("\n"):
            if line.startswith("> "):
                lines.append(f"<blockquote>{_inline(line[2:])}</blockquote>")
            else:
                lines.append(_inline(line) + "<br>")
        out.append("".join(lines))
    return "".join(out)


def _text(obj: dict[str, Any]) -> str:
    if obj.get("type") == "plain_text":
        return html.escape(obj.get("text", ""))
    return mrkdwn(obj.get("text", ""))


def render_blocks(blocks: list[dict[str, Any]]) -> str:
    out = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            out.append(f'<div class="header">{_text(block["text"])}</div>')
        elif kind == "section":
            if "text" in block:
                out.append(f'<div class="section">{_text(block["text"])}</div>')
            if "fields" in block:
                cells = "".join(f"<div>{_text(f)}</div>" for f in block["fields"])
                out.append(f'<div class="section fields">{cells}</div>')
        elif kind == "context":
            out.append(f'<div class="context">{"".join(_text(e) for e in block["elements"])}</div>')
        elif kind == "actions":
            buttons = "".join(
                f'<span class="btn {e.get("style", "")}">{_text(e["text"])}</span>'
                for e in block["elements"]
            )
            out.append(f'<div class="actions">{buttons}</div>')
    return "".join(out)


def page(messages: list[tuple[str, list[dict[str, Any]]]], caption: str) -> str:
    body = "".join(
        '<div class="msg"><div class="avatar">w</div><div>'
        f'<span class="name">waitpoints</span><span class="app">APP</span> '
        f'<span class="time">{html.escape(label)}</span>{render_blocks(blocks)}</div></div>'
        for label, blocks in messages
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Block Kit preview'
        f'</title><style>{STYLE}</style></head><body><p class="caption">{html.escape(caption)}'
        f"</p>{body}</body></html>"
    )
