"""A list page's tokens as rows: one SELECT of the columns a list item shows, no model instances.

Profiling the API's list (``bench.profile list --cpu``) showed most of a page's time in Python,
not PostgreSQL: building 101 ``Token`` instances (fifty-odd fields each, five JSON columns
decoded, ``output`` fetched though a list item never shows it), then rendering them. A
``TokenRow`` is a named tuple of just the columns ``TokenOutputSerializer(detail=False)`` reads
(its JSON columns decoded once, by Django's converters, as for a model), with the few derived
attributes it uses computed by the same functions as ``Token``'s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db.models import QuerySet

from tokens.domain import keys
from tokens.models import Environment, Token, decoded, latest_proposal_json


class TokenRow(NamedTuple):
    """What a list item shows of one token, read as the selectors read it (``db_now``)."""

    id: str
    status: str
    timeout_at: datetime | None
    timeout_outcome: str
    completed_at: datetime | None
    idempotency_key: str | None
    idempotency_key_expires_at: datetime | None
    tags: list[str]
    title: str
    description: str
    context_json: str
    decision_json: str
    required_approvals: int
    requested_by: str
    proposal_json: str
    proposal_current_json: str
    proposal_schema_json: str
    proposal_version: int
    proposal_editable: Any
    created_at: datetime
    cancelled_at: datetime | None
    on_timeout: dict[str, Any] | None
    decision_valid_for: timedelta | None
    decision_expires_at: datetime | None
    consumed_at: datetime | None
    consumed_by: str
    db_now: datetime | None
    environment: Environment  # the caller's: every row of a page is in it (no join)

    # Token's derived readings, from the same columns in the same way (tokens.models).
    @property
    def friendly_id(self) -> str:
        return keys.friendly_id(self.id)

    @property
    def context(self) -> dict[str, Any] | None:
        return decoded(self.context_json)

    @property
    def proposal(self) -> dict[str, Any] | None:
        return decoded(latest_proposal_json(self.proposal_current_json, self.proposal_json))

    @property
    def proposal_schema(self) -> dict[str, Any] | None:
        return decoded(self.proposal_schema_json)

    @property
    def decision_spec(self) -> dict[str, Any] | None:
        return decoded(self.decision_json)


COLUMNS = TokenRow._fields[:-1]  # all but the environment, which the caller gives


def token_rows(queryset: QuerySet[Token], environment: Environment) -> list[TokenRow]:
    """The rows of ``queryset`` (already ordered and sliced, read through the selectors so that
    they carry ``db_now``), all in ``environment``."""
    make = TokenRow._make
    return [make((*values, environment)) for values in queryset.values_list(*COLUMNS)]
