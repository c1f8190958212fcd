"""Keyset pagination on the time-ordered id, rendered as ``{"data", "pagination"}``.

The cost of a page is an index range scan from the cursor: it does not grow with depth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.db.models import QuerySet

from tokens.domain import keys
from tokens.domain.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tokens.models import Token
from tokens.persistence.rows import TokenRow


@dataclass(frozen=True)
class PageRequest:
    size: int
    after: str | None
    before: str | None


def parse_page_request(
    params: dict[str, str],
) -> tuple[PageRequest | None, list[dict[str, object]]]:
    issues: list[dict[str, object]] = []
    size = DEFAULT_PAGE_SIZE
    if "page[size]" in params:
        raw = params["page[size]"]
        try:
            size = int(raw)
        except ValueError:
            issues.append({"path": ["page[size]"], "message": f"Expected an integer, got {raw!r}"})
        else:
            if not 1 <= size <= MAX_PAGE_SIZE:
                issues.append(
                    {
                        "path": ["page[size]"],
                        "message": f"Number must be between 1 and {MAX_PAGE_SIZE}",
                    }
                )
    cursors: dict[str, str | None] = {}
    for name in ("after", "before"):
        cursor = params.get(f"page[{name}]")
        cursors[name] = keys.parse_token_id(cursor) if cursor else None
        if cursor and cursors[name] is None:
            issues.append({"path": [f"page[{name}]"], "message": "Invalid cursor"})
    if issues:
        return None, issues
    return PageRequest(size=size, after=cursors["after"], before=cursors["before"]), []


def paginate(queryset: QuerySet[Token], page: PageRequest) -> tuple[list[Token], dict[str, str]]:
    return paginate_with(queryset, page, list)


Item = TypeVar("Item", Token, TokenRow)


def paginate_with(
    queryset: QuerySet[Token],
    page: PageRequest,
    fetch: Callable[[QuerySet[Token]], list[Item]],
) -> tuple[list[Item], dict[str, str]]:
    """The page, read by ``fetch`` from the ordered and sliced queryset (model instances, or
    rows: ``persistence.rows.token_rows``)."""
    size = page.size
    if page.before:  # backward: the rows just newer than the cursor, shown newest first
        rows = fetch(queryset.filter(pk__gt=page.before).order_by("pk")[: size + 1])
        has_more = len(rows) > size
        rows = list(reversed(rows[:size]))
        pagination = {"next": rows[-1].id} if rows else {}
        if has_more and rows:
            pagination["previous"] = rows[0].id
        return rows, pagination
    if page.after:
        queryset = queryset.filter(pk__lt=page.after)
    rows = fetch(queryset.order_by("-pk")[: size + 1])
    pagination = {}
    if len(rows) > size:
        rows = rows[:size]
        pagination["next"] = rows[-1].id
    if page.after and rows:
        pagination["previous"] = rows[0].id
    return rows, pagination
