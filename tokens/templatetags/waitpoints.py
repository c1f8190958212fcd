"""Template filters for what a request shows: ``{{ token.description|markdown }}`` and
``{% for row in token.context|context_rows %}``."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import template
from django.utils.safestring import SafeString

from tokens.domain import decisions, markup

register = template.Library()


@register.filter(expects_localtime=True)
def isoformat(value: date | None) -> str:
    """``{{ moment|isoformat }}``: what ``{{ moment|date:'c' }}`` writes (ISO 8601 in the current
    time zone; "" for no value), without looking up the locale's formats on each call: a page
    of 25 rows wrote a hundred-odd, a tenth of its rendering (docs/benchmarks/profile.md)."""
    if not isinstance(value, date):
        return ""
    return value.isoformat()


@register.filter
def markdown(text: str | None) -> SafeString:
    return markup.render_markdown(text or "")


@register.filter
def context_rows(context: dict[str, Any] | None) -> list[markup.ContextRow]:
    return markup.context_rows(context)


@register.filter
def dict_get(mapping: Any, key: str) -> Any:
    """``{{ values|dict_get:name }}``: a mapping's item by a computed key ("" when absent)."""
    if hasattr(mapping, "get"):
        return mapping.get(key, "")
    return ""


@register.filter
def decision_labels(spec: dict[str, Any] | None) -> dict[str, str]:
    """``{{ token.decision_spec|decision_labels }}`` → ``{"approved": "Refund", "rejected": …}``."""
    return decisions.labels(spec)


@register.filter
def needs_input(spec: dict[str, Any] | None) -> bool:
    """Whether approving asks for required input (no one-click approval then)."""
    return decisions.has_required_fields(spec)


@register.filter
def pairs(mapping: Any) -> list[tuple[str, Any]]:
    """``{% for k, v in d|pairs %}``: safe where ``d.items`` would find a key named "items"."""
    return list(mapping.items()) if isinstance(mapping, dict) else []
