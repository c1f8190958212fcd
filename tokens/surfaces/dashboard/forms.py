"""Dashboard forms: the token list's FilterSet (a GET form, so filters live in the URL) and the
action forms. Forms only validate; the views hand the cleaned values to ``tokens.domain``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from tokens.domain import keys
from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_BULK, MAX_COMMENT_LENGTH, MAX_REASON_LENGTH
from tokens.models import Token
from tokens.persistence.filters import TokenFilter, check_tags
from tokens.surfaces.common.body import loads_strict

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
        # Tags are stored as sent, so a selected tag (" a ", "eu,us") is kept exactly; one
        # parameter per tag, so a comma is part of the tag here (unlike the API's filter[tags]).
        names = [str(v) for v in (value or []) if str(v).strip()]
        return list(dict.fromkeys(names))

    def validate(self, value: list[str]) -> None:
        check_tags(value)


class TokenIdField(forms.CharField):
    def clean(self, value: Any) -> str | None:
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        internal = keys.parse_token_id(text)
        if internal is None:
            raise forms.ValidationError("Not a token id: use waitpoint_… or the bare id.")
        return internal


class TokenListForm(forms.Form):
    """The dashboard list's filters, a GET form (bookmarkable). Unlike the API, CANCELLED is
    its own status here."""

    status = forms.MultipleChoiceField(
        choices=Token.Status.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Status",
        required=False,
    )
    tag = TagListField(label="Tags (any of)", required=False)
    id = TokenIdField(label="Token id", required=False)
    key = forms.CharField(label="Idempotency key", max_length=2048, required=False)
    period = forms.ChoiceField(
        choices=[("", "Any time"), *((value, label) for value, (label, _d) in PERIODS.items())],
        label="Created",
        required=False,
    )
    created_from = forms.DateField(
        label="Created from", widget=forms.DateInput(attrs={"type": "date"}), required=False
    )
    created_to = forms.DateField(
        label="Created to", widget=forms.DateInput(attrs={"type": "date"}), required=False
    )


class TokenListFilter:
    """The list page's filter: the form to show, and what it asks for as a ``TokenFilter``."""

    def __init__(self, data: Any) -> None:
        self.form = TokenListForm(data)

    def is_valid(self) -> bool:
        return self.form.is_valid()

    def token_filter(self, *, now: datetime) -> TokenFilter:
        data = self.form.cleaned_data
        created_from = None
        if data.get("created_from"):
            created_from = datetime.combine(data["created_from"], time.min, tzinfo=UTC)
        if data.get("period") in PERIODS:
            since = now - PERIODS[data["period"]][1]
            created_from = max(created_from, since) if created_from else since
        created_before = None
        # The day after 31 Dec 9999 does not exist: nothing is later.
        if data.get("created_to") and data["created_to"] != date.max:
            created_before = datetime.combine(data["created_to"], time.min, tzinfo=UTC) + timedelta(
                days=1
            )
        return TokenFilter(
            statuses=tuple(data.get("status") or ()),
            tags=tuple(data.get("tag") or ()),
            idempotency_key=data.get("key") or "",
            token_id=data.get("id") or "",
            created_from=created_from,
            created_before=created_before,
        )

    @property
    def selected_tags(self) -> list[str]:
        return self.form.cleaned_data.get("tag") or [] if self.form.is_valid() else []

    @property
    def is_filtered(self) -> bool:
        return bool(self.form.is_valid() and any(self.form.cleaned_data.values()))


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


class AuditExportForm(forms.Form):
    """The period of an environment's audit export: whole UTC days, both ends included."""

    since = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The period ends before it starts: check From and To.")
        if since and until and (until - since).days > 366:
            raise forms.ValidationError("Export at most a year at a time.")
        return cleaned

    def period(self) -> tuple[datetime, datetime]:
        since: date = self.cleaned_data["since"]
        until: date = self.cleaned_data["until"]
        return (
            datetime.combine(since, time.min, tzinfo=UTC),
            datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC),
        )
