"""What Slack shows: the request as a Block Kit message, the form (a modal) for requests with
input fields, and the small notes a clicker alone sees.

Every message is rendered from the token as it is when the message is sent (``view_of``), so
a late or repeated update can only show the current state. Text from the request is escaped
or converted (``mrkdwn``); Slack's limits (header 150, section 3000, ten fields of 2000,
button 75, modal title 24) are applied here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from tokens.delivery.slack.mrkdwn import escape, shorten, to_mrkdwn
from tokens.domain import deadline, decisions, links, markup
from tokens.domain.decisions import FieldSpec
from tokens.domain.limits import MAX_COMMENT_LENGTH
from tokens.models import Token, TokenEvent, Vote
from tokens.persistence import selectors

DECIDE_BLOCK = "waitpoints:decide"
APPROVE, REJECT, OPEN = "approve", "reject", "open"
ACTION_DECISIONS = {APPROVE: "approved", REJECT: "rejected"}
MODAL_CALLBACK = "waitpoints:form"
COMMENT_BLOCK = "comment"
FIELD_BLOCK = "field:"
MORE = "_The full description is on the token page._"
MAX_FIELDS = 10  # Slack's limit on a section's fields


@dataclass(frozen=True)
class View:
    """A token as its messages show it."""

    token: Token
    status: str
    completed_at: datetime | None
    output: dict[str, Any]
    votes: list[Vote]
    resolution: TokenEvent | None

    @property
    def waiting(self) -> bool:
        return self.status == Token.Status.WAITING

    @property
    def key(self) -> str:
        """What the message shows, in short: an update that would show the same is skipped."""
        return f"WAITING:{len(self.votes)}" if self.waiting else str(self.status)


def view_of(token_id: str) -> View:
    token = Token.objects.select_related("environment__project").get(pk=token_id)
    state = deadline.effective(token, timezone.now())
    votes = selectors.votes_for_token(token=token) if token.required_approvals > 1 else []
    waiting = state.status == Token.Status.WAITING
    return View(
        token=token,
        status=str(state.status),
        completed_at=state.completed_at,
        output=decisions.decision_of(state.output, state.output_type),
        votes=votes,
        resolution=None if waiting else selectors.token_resolution_event(token=token),
    )


def date(moment: datetime) -> str:
    """A date Slack shows in each reader's own time zone (the fallback in UTC)."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _text(text: str, *, kind: str = "mrkdwn") -> dict[str, Any]:
    if kind == "plain_text":
        return {"type": "plain_text", "text": text, "emoji": True}
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _text(shorten(text, 3000, MORE))}


def _title(token: Token) -> str:
    return token.title or "Approval requested"


def _facts(token: Token) -> str:
    facts = []
    if token.requested_by:
        facts.append(f"Requested by *{escape(token.requested_by)}*")
    if token.timeout_at:
        facts.append(f"Deadline {date(token.timeout_at)}")
    if token.required_approvals > 1:
        facts.append(f"Needs {token.required_approvals} approvals")
    environment = token.environment
    facts.append(f"`{token.friendly_id}` · {escape(str(environment.project))} / {environment.slug}")
    return " · ".join(facts)


def _context_fields(token: Token) -> list[dict[str, Any]]:
    rows = markup.context_rows(token.context)
    shown = rows if len(rows) <= MAX_FIELDS else rows[: MAX_FIELDS - 1]
    fields = []
    for row in shown:
        value = f"`{escape(row.compact)}`" if row.folded is not None else escape(row.value)
        fields.append(_text(shorten(f"*{escape(row.key)}*\n{value}", 2000, "…")))
    if len(rows) > len(shown):
        fields.append(_text(f"_…and {len(rows) - len(shown)} more on the token page_"))
    return fields


def _who(view: View) -> str:
    by = view.output.get("by") if isinstance(view.output.get("by"), str) else ""
    if by:
        return escape(by)
    if view.resolution is None:
        return "someone"
    event = view.resolution
    channel = TokenEvent.Channel(event.channel).label if event.channel else ""
    label = escape(event.actor_label)
    if channel and event.channel != TokenEvent.Channel.SYSTEM:
        return f"{label} ({channel})"
    return label


def outcome(view: View) -> str:
    """One paragraph: what happened, who did it and when."""
    when = f" {date(view.completed_at)}" if view.completed_at else ""
    labels = decisions.labels(view.token.decision_spec)
    if view.status == Token.Status.TIMED_OUT:
        return f":hourglass: *Timed out*{when}: nobody decided in time."
    if view.status == Token.Status.CANCELLED:
        reason = view.token.cancel_reason
        text = f":no_entry_sign: *Cancelled* by {_who(view)}{when}"
        return text + (f"\n> {escape(reason)}" if reason else "")
    decision = view.output.get("status")
    if decision not in decisions.DECISIONS:
        return f":white_check_mark: *Completed* by {_who(view)}{when}"
    icon, word = (
        (":white_check_mark:", "Approved") if decision == "approved" else (":x:", "Rejected")
    )
    label = labels[decision]
    named = f" ({escape(label)})" if label not in ("Approve", "Reject") else ""
    lines = [f"{icon} *{word}*{named} by {_who(view)}{when}"]
    comment = view.output.get("comment")
    if isinstance(comment, str) and comment:
        lines.append(f"> {escape(comment)}")
    given = view.output.get("fields")
    if isinstance(given, dict):
        titles = {f.name: f.title for f in decisions.field_specs(view.token.decision_spec)}
        for name, value in given.items():
            shown = json.dumps(value) if not isinstance(value, str) else value
            lines.append(f"*{escape(titles.get(name) or name)}*: {escape(shown)}")
    return "\n".join(lines)


def _votes(view: View) -> str:
    approvals = sum(vote.decision == "approved" for vote in view.votes)
    lines = [f"*{approvals} of {view.token.required_approvals} approvals*"]
    for vote in view.votes:
        icon = ":white_check_mark:" if vote.decision == "approved" else ":x:"
        lines.append(f"{icon} {escape(vote.label)} {date(vote.created_at)}")
    return "\n".join(lines)


def _button(action: str, label: str, token: Token, style: str = "") -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": action,
        "text": _text(label[:75], kind="plain_text"),
        "value": token.friendly_id,
    }
    if style:
        button["style"] = style
    return button


def message(view: View, *, base: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text (notifications) and the blocks of the token's message."""
    token = view.token
    title = _title(token)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text(title[:150], kind="plain_text")}
    ]
    description = to_mrkdwn(token.description)
    if description:
        blocks.append(_section(description))
    fields = _context_fields(token)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [_text(_facts(token))]})
    if view.votes:
        blocks.append(_section(_votes(view)))
    url = links.dashboard_url(token, base=base or links.public_base_url())
    open_button = {
        "type": "button",
        "action_id": OPEN,
        "text": _text("Open in waitpoints", kind="plain_text"),
        "url": url,
    }
    if view.waiting:
        labels = decisions.labels(token.decision_spec)
        elements = [
            _button(APPROVE, labels["approved"], token, "primary"),
            _button(REJECT, labels["rejected"], token, "danger"),
            open_button,
        ]
        blocks.append({"type": "actions", "block_id": DECIDE_BLOCK, "elements": elements})
        return f"Approval requested: {title}", blocks
    result = outcome(view)
    blocks.append(_section(result))
    blocks.append({"type": "actions", "block_id": "waitpoints:open", "elements": [open_button]})
    return f"{title}: {result.splitlines()[0]}", blocks


# ------------------------------------------------------------------------------------------------
# The form: a modal with the request's input fields and a comment
# ------------------------------------------------------------------------------------------------


def _element(field: FieldSpec) -> dict[str, Any]:
    if field.enum is not None:
        options = [
            {"text": _text(str(option)[:75], kind="plain_text"), "value": str(option)[:150]}
            for option in field.enum
        ]
        return {"type": "static_select", "action_id": "value", "options": options}
    if field.type == "boolean":
        option = {"text": _text(field.title[:75], kind="plain_text"), "value": "on"}
        return {"type": "checkboxes", "action_id": "value", "options": [option]}
    if field.type in ("number", "integer"):
        return {
            "type": "number_input",
            "action_id": "value",
            "is_decimal_allowed": field.type == "number",
        }
    return {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": field.multiline,
        "max_length": min(field.max_length or 3000, 3000),
    }


def modal(token: Token, decision: str, *, metadata: dict[str, str]) -> dict[str, Any]:
    """The form for a decision on a request with input fields (``views.open``)."""
    label = decisions.labels(token.decision_spec)[decision]
    blocks: list[dict[str, Any]] = [_section(f"*{escape(_title(token))}*")]
    for field in decisions.field_specs(token.decision_spec):
        block: dict[str, Any] = {
            "type": "input",
            "block_id": FIELD_BLOCK + field.name,
            "label": _text(field.title[:2000], kind="plain_text"),
            "element": _element(field),
            "optional": not (field.required and decision == "approved"),
        }
        if field.description:
            block["hint"] = _text(field.description[:2000], kind="plain_text")
        blocks.append(block)
    blocks.append(
        {
            "type": "input",
            "block_id": COMMENT_BLOCK,
            "label": _text("Comment", kind="plain_text"),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": min(MAX_COMMENT_LENGTH, 3000),
            },
            "optional": True,
        }
    )
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": _text(label[:24], kind="plain_text"),
        "submit": _text(label[:24], kind="plain_text"),
        "close": _text("Cancel", kind="plain_text"),
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": blocks,
    }


def form_values(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The fields (by name, as the confirmation page's form gives them) and the comment of a
    submitted modal's ``view.state.values``."""
    fields: dict[str, Any] = {}
    comment = ""
    for block_id, actions in (state or {}).items():
        value = (actions or {}).get("value") or {}
        kind = value.get("type")
        if kind == "static_select":
            given = (value.get("selected_option") or {}).get("value", "")
        elif kind == "checkboxes":
            given = "on" if value.get("selected_options") else ""
        else:
            given = value.get("value") or ""
        if block_id == COMMENT_BLOCK:
            comment = str(given)
        elif block_id.startswith(FIELD_BLOCK):
            fields[block_id.removeprefix(FIELD_BLOCK)] = given
    return fields, comment


def field_errors(errors: dict[str, str]) -> dict[str, str]:
    """A decision's field errors as a modal's ``response_action: errors``."""
    return {FIELD_BLOCK + name: message[:150] for name, message in errors.items()}


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (replaces the form after a refusal)."""
    return {
        "type": "modal",
        "title": _text(title[:24], kind="plain_text"),
        "close": _text("Close", kind="plain_text"),
        "blocks": [_section(text)],
    }


# ------------------------------------------------------------------------------------------------
# Thread replies: reminders and escalations
# ------------------------------------------------------------------------------------------------


def people(addresses: list[str], user_ids: dict[str, str]) -> str:
    named = [f"<@{user_ids[a.lower()]}>" if a.lower() in user_ids else escape(a) for a in addresses]
    if len(named) <= 1:
        return "".join(named)
    return ", ".join(named[:-1]) + " and " + named[-1]


def reply(purpose: str, *, addresses: list[str], user_ids: dict[str, str], direct: bool) -> str:
    if purpose == "escalation":
        if direct:
            return ":arrow_up: This request was escalated: your decision is needed."
        return f":arrow_up: Escalated: now also asking {people(addresses, user_ids)}."
    if direct or not addresses:
        return ":alarm_clock: Reminder: this request still waits for a decision."
    return f":alarm_clock: Reminder: still waiting for {people(addresses, user_ids)}."


def decided_notice(view: View) -> str:
    """What a clicker reads when the token was decided before their click counted."""
    if view.waiting:
        return "This request still waits for a decision."
    return "Already decided: " + outcome(view).split("\n", 1)[0]


def metadata_of(view_payload: dict[str, Any]) -> dict[str, str]:
    try:
        value = json.loads(view_payload.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
