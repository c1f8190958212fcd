"""django-filter FilterSets: the API list (``filter[...]`` parameters) and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from tokens.domain import keys
from tokens.domain.durations import parse_period
from tokens.models import Token
from tokens.persistence.selectors import status_q, tagged_q

API_STATUSES = ("WAITING", "COMPLETED", "TIMED_OUT", "CANCELLED")


def parse_instant(value: str) -> datetime | None:
    """ISO-8601 or epoch milliseconds (the SDK sends Dates as epoch-millisecond strings)."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def refuse_nul(text: str) -> None:
    """PostgreSQL text cannot hold NUL: a filter value with one can never match, so say so
    (a 400) instead of letting the query fail (a 500)."""
    if "\x00" in text:
        raise forms.ValidationError("Null characters (\\u0000) are not allowed.")


# These fields read text (CharField's cleaning) into other types; the stubs type CharField's
# to_python as returning text, hence the override ignores.
class CommaListField(forms.CharField):
    def to_python(self, value: object) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        refuse_nul(text or "")
        return [part.strip() for part in text.split(",") if part.strip()] if text else []


class StatusListField(CommaListField):
    def validate(self, value: list[str]) -> None:
        bad = [v for v in value if v not in API_STATUSES]
        if bad:
            raise forms.ValidationError(
                f"Invalid status values: {', '.join(bad)}. Use {', '.join(API_STATUSES)}."
            )


class TagListField(CommaListField):
    def validate(self, value: list[str]) -> None:
        if len(value) > 100:
            raise forms.ValidationError("At most 100 tags can be given in one filter.")


class InstantField(forms.CharField):
    def to_python(self, value: object) -> datetime | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        parsed = parse_instant(text)
        if parsed is None:
            raise forms.ValidationError(
                f"Invalid date {text!r}: use ISO-8601 or epoch milliseconds."
            )
        return parsed


class PeriodField(forms.CharField):
    def to_python(self, value: object) -> object:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        period = parse_period(text)
        if period is None:
            raise forms.ValidationError(
                f"Invalid period {text!r}: use a duration such as 30m, 24h, 7d, 1w, 1mo or 1y."
            )
        return period


class StatusFilter(django_filters.Filter):
    field_class = StatusListField


class TagFilter(django_filters.Filter):
    field_class = TagListField


class PeriodFilter(django_filters.Filter):
    field_class = PeriodField


class InstantFilter(django_filters.Filter):
    field_class = InstantField


class ApiTokenFilter(django_filters.FilterSet):
    """Filters of ``GET /api/v1/waitpoints/tokens`` (the view maps ``filter[x]`` to ``x``)."""

    status = StatusFilter(method="filter_status")
    tags = TagFilter(method="filter_tags")
    idempotencyKey = django_filters.CharFilter(method="filter_idempotency_key")  # noqa: N815
    period = PeriodFilter(method="filter_period")
    createdFrom = InstantFilter(  # noqa: N815
        field_name="created_at", lookup_expr="gte"
    )
    createdTo = InstantFilter(  # noqa: N815
        field_name="created_at", lookup_expr="lte"
    )

    class Meta:
        model = Token
        fields: list[str] = []

    def __init__(self, *args: object, now: datetime, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.now = now

    def filter_status(self, queryset: QuerySet[Token], name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        q = Q()
        for status in dict.fromkeys(value):
            q |= status_q(status, now=self.now, cancelled_as_timed_out=True)
        return queryset.filter(q)

    def filter_tags(self, queryset: QuerySet[Token], name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(tagged_q(value))

    def filter_idempotency_key(self, queryset: QuerySet[Token], name: str, value: str) -> QuerySet:
        # Matches the original key, so a rotated token and its replacement both show.
        if not value:
            return queryset
        return queryset.filter(idempotency_key_digest=keys.idempotency_digest(value))

    def filter_period(self, queryset: QuerySet[Token], name: str, value: object) -> QuerySet:
        if value is None:
            return queryset
        try:
            since = self.now - value  # type: ignore[operator]
        except OverflowError:
            return queryset
        return queryset.filter(created_at__gte=since)
