"""Keyset pagination on the time-ordered id, rendered as ``{"data", "pagination"}``.

The cost of a page is an index range scan from the cursor: it does not grow with depth.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection
from django.db.models import Q, QuerySet

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


@dataclass(frozen=True)
class Part:
    """Some of a list's rows (``TokenFilter.apply_parts``; the parts of one list are disjoint)."""

    rows: QuerySet[Token]
    # Few rows whatever the table's size (overdue WAITING ones, as many as the sweep has yet to
    # store): read whole by their own best index, not in id order. In id order PostgreSQL walks
    # the environment's WAITING ids to find them (612,500 rows, 0.7 s, with 10,000 overdue).
    few: bool = False


def paginate(queryset: QuerySet[Token], page: PageRequest) -> tuple[list[Token], dict[str, str]]:
    return paginate_with([Part(queryset)], page, list)


Item = TypeVar("Item", Token, TokenRow)


def paginate_with(
    parts: Sequence[Part],
    page: PageRequest,
    fetch: Callable[[QuerySet[Token]], list[Item]],
) -> tuple[list[Item], dict[str, str]]:
    """The page of the rows of ``parts``, read by ``fetch`` from the ordered and sliced query
    (model instances, or rows: ``persistence.rows.token_rows``)."""
    size = page.size
    if page.before:  # backward: the rows just newer than the cursor, shown newest first
        rows = fetch(_window(parts, Q(pk__gt=page.before), "pk", size + 1))
        has_more = len(rows) > size
        rows = list(reversed(rows[:size]))
        pagination = {"next": rows[-1].id} if rows else {}
        if has_more and rows:
            pagination["previous"] = rows[0].id
        return rows, pagination
    rows = fetch(_window(parts, Q(pk__lt=page.after) if page.after else Q(), "-pk", size + 1))
    pagination = {}
    if len(rows) > size:
        rows = rows[:size]
        pagination["next"] = rows[-1].id
    if page.after and rows:
        pagination["previous"] = rows[0].id
    return rows, pagination


def _window(parts: Sequence[Part], cursor: Q, order: str, limit: int) -> QuerySet[Token]:
    """The first ``limit`` rows of the parts in ``order`` from the cursor: each part's own first
    ``limit`` (its own index range, so that the cost is bounded by the page, not by how many
    other rows lie between matches; a part of few rows whole), then the first ``limit`` of their
    UNION ALL. A database that cannot order and slice the parts of a UNION (SQLite) reads their
    OR instead."""
    if len(parts) == 1 or not connection.features.supports_slicing_ordering_in_compound:
        either = functools.reduce(operator.or_, (part.rows for part in parts))
        return either.filter(cursor).order_by(order)[:limit]
    first, *others = (
        part.rows.filter(cursor).order_by()
        if part.few
        else part.rows.filter(cursor).order_by(order)[:limit]
        for part in parts
    )
    return first.union(*others, all=True).order_by(order)[:limit]
