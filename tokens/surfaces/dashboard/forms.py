"""Dashboard forms: the token list's FilterSet (a GET form, so filters live in the URL) and the
action forms. Forms only validate; the views hand the cleaned values to ``tokens.domain.services``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from tokens.domain import keys
from tokens.domain.decisions import MAX_COMMENT_LENGTH
from tokens.domain.exceptions import InvalidInput
from tokens.domain.services import MAX_REASON_LENGTH
from tokens.models import Token
from tokens.persistence.selectors import status_q, tagged_q
from tokens.surfaces.common.body import loads_strict

MAX_FILTER_TAGS = 20
MAX_BULK = 100

PERIODS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}


class MultipleValueInput(forms.TextInput):
    """A text input whose value is every ``name=`` in the query string (``?tag=a&tag=b``)."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        return data.getlist(name) if hasattr(data, "getlist") else list(data.get(name) or [])

    def format_value(self, value: Any) -> str | None:
        return None  # the selected tags render as checkboxes; the input is for adding one


class TagListField(forms.Field):
    widget = MultipleValueInput

    def to_python(self, value: Any) -> list[str]:
        names = [str(v).strip() for v in (value or []) if str(v).strip()]
        return list(dict.fromkeys(names))

    def validate(self, value: list[str]) -> None:
        if len(value) > MAX_FILTER_TAGS:
            raise forms.ValidationError(f"Filter by at most {MAX_FILTER_TAGS} tags at once.")
        if any(len(name) > 128 for name in value):
            raise forms.ValidationError("Tags are at most 128 characters long.")
        if any("\x00" in name for name in value):
            raise forms.ValidationError("Tags cannot contain null characters (\\u0000).")


class TokenIdField(forms.CharField):
    def clean(self, value: Any) -> str | None:
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        internal = keys.parse_token_id(text)
        if internal is None:
            raise forms.ValidationError("Not a token id: use waitpoint_… or the bare id.")
        return internal


class TagsFilter(django_filters.Filter):
    field_class = TagListField


class TokenIdFilter(django_filters.Filter):
    field_class = TokenIdField


class DashboardTokenFilter(django_filters.FilterSet):
    """The dashboard list's filters. Unlike the API, CANCELLED is its own status here."""

    status = django_filters.MultipleChoiceFilter(
        choices=Token.Status.choices,
        method="filter_status",
        widget=forms.CheckboxSelectMultiple,
        label="Status",
    )
    tag = TagsFilter(method="filter_tags", label="Tags (any of)")
    id = TokenIdFilter(method="filter_id", label="Token id")
    key = django_filters.CharFilter(method="filter_key", label="Idempotency key", max_length=2048)
    period = django_filters.ChoiceFilter(
        choices=[(value, label) for value, (label, _delta) in PERIODS.items()],
        method="filter_period",
        label="Created",
        empty_label="Any time",
    )
    created_from = django_filters.DateFilter(
        method="filter_created_from",
        label="Created from",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    created_to = django_filters.DateFilter(
        method="filter_created_to",
        label="Created to",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = Token
        fields: list[str] = []

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now

    def filter_status(self, queryset: QuerySet[Token], name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        q = Q()
        for status in value:
            q |= status_q(status, now=self.now, cancelled_as_timed_out=False)
        return queryset.filter(q)

    def filter_tags(self, queryset: QuerySet[Token], name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(tagged_q(value))

    def filter_id(self, queryset: QuerySet[Token], name: str, value: str | None) -> QuerySet:
        return queryset.filter(pk=value) if value else queryset

    def filter_key(self, queryset: QuerySet[Token], name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(idempotency_key_digest=keys.idempotency_digest(value))

    def filter_period(self, queryset: QuerySet[Token], name: str, value: str) -> QuerySet:
        if value not in PERIODS:
            return queryset
        return queryset.filter(created_at__gte=self.now - PERIODS[value][1])

    def filter_created_from(self, queryset: QuerySet[Token], name: str, value: Any) -> QuerySet:
        return queryset.filter(created_at__gte=datetime.combine(value, time.min, tzinfo=UTC))

    def filter_created_to(self, queryset: QuerySet[Token], name: str, value: Any) -> QuerySet:
        if value == date.max:  # the day after 31 Dec 9999 does not exist: nothing is later
            return queryset
        end = datetime.combine(value, time.min, tzinfo=UTC) + timedelta(days=1)
        return queryset.filter(created_at__lt=end)

    @property
    def selected_tags(self) -> list[str]:
        return self.form.cleaned_data.get("tag") or [] if self.form.is_valid() else []

    @property
    def is_filtered(self) -> bool:
        return bool(self.form.is_valid() and any(self.form.cleaned_data.values()))


class DecisionForm(forms.Form):
    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT_LENGTH, widget=forms.Textarea(attrs={"rows": 2})
    )


class CompleteJsonForm(forms.Form):
    # A declared field, not Form.data: the form metaclass moves it into base_fields.
    data = forms.CharField(  # type: ignore[assignment]
        label="Output (JSON)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        max_length=3 * 1024 * 1024,
    )

    def clean_data(self) -> Any:
        text = self.cleaned_data["data"]
        try:
            json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(
                f"This is not valid JSON: {error}. Strings need double quotes, "
                'e.g. {"status": "approved"}.'
            ) from None
        except RecursionError:
            pass  # loads_strict says it is nested too deeply
        try:
            return loads_strict(text)
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None


class CancelForm(forms.Form):
    reason = forms.CharField(required=False, max_length=MAX_REASON_LENGTH, label="Reason")


class TokenIdListField(forms.MultipleChoiceField):
    """Any well-formed token ids; the view resolves each one through the user's memberships."""

    def valid_value(self, value: Any) -> bool:
        return keys.parse_token_id(str(value)) is not None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if len(value) > MAX_BULK:
            raise forms.ValidationError(f"Select at most {MAX_BULK} tokens at once.")


class BulkDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approved", "Approve"), ("rejected", "Reject")])
    ids = TokenIdListField(error_messages={"required": "Select at least one token."})
    comment = forms.CharField(required=False, max_length=MAX_COMMENT_LENGTH)
