"""Deadline rules: an environment's default ``onTimeout`` by tag (tokens.domain.outcomes)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tokens.domain import outcomes
from tokens.domain.exceptions import InvalidInput
from tokens.models import DeadlineRule


class DeadlineRuleForm(forms.ModelForm):
    class Meta:
        model = DeadlineRule
        fields = ("environment", "tag", "action", "escalate_to", "second_timeout", "then")
        help_texts = {
            "escalate_to": 'A JSON list of e-mail addresses, e.g. ["lead@example.com"].',
            "second_timeout": "Escalation: e.g. 2:00:00 for two hours.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        candidate = DeadlineRule(
            tag=data.get("tag") or "",
            action=data.get("action") or DeadlineRule.Action.TIMEOUT,
            escalate_to=data.get("escalate_to") or [],
            second_timeout=data.get("second_timeout"),
            then=data.get("then") or DeadlineRule.Then.TIMEOUT,
        )
        try:
            outcomes.check_rule(candidate)
        except InvalidInput as invalid:
            raise forms.ValidationError(invalid.message) from None
        return data


@admin.register(DeadlineRule)
class DeadlineRuleAdmin(admin.ModelAdmin):
    form = DeadlineRuleForm
    list_display = ("environment", "tag_label", "action", "then", "second_timeout")
    list_filter = ("action", "environment__project")
    search_fields = ("tag", "environment__project__slug")

    @admin.display(description="tag", ordering="tag")
    def tag_label(self, rule: DeadlineRule) -> str:
        return rule.tag or "(every request)"

    def save_model(self, request: HttpRequest, obj: DeadlineRule, form: Any, change: bool) -> None:
        outcomes.deadline_rule_save(rule=obj)

    def delete_model(self, request: HttpRequest, obj: DeadlineRule) -> None:
        outcomes.deadline_rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DeadlineRule]) -> None:
        outcomes.deadline_rules_delete(rules=queryset)
