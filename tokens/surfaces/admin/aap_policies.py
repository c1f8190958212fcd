"""AAP policies for support staff: each environment's execution window and its rules, checked
and saved by ``tokens.domain.aap.policies`` exactly as the dashboard's page saves them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from tokens.domain.aap import policies
from tokens.domain.durations import format_duration
from tokens.models import AapPolicy, AapPolicyRule, Environment


class AapPolicyForm(forms.ModelForm):
    window = forms.CharField(
        required=False,
        help_text="How long an approval may be acted on: 10s to 24h (90s, 10m, 1h); "
        "empty for WAITPOINTS_AAP_APPROVAL_VALID_SECONDS.",
    )

    class Meta:
        model = AapPolicy
        fields = ("environment",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.approval_valid_for:
            self.fields["window"].initial = format_duration(self.instance.approval_valid_for)

    def clean_window(self) -> str:
        value: str = self.cleaned_data.get("window") or ""
        try:
            policies.clean_window(value)
        except policies.PolicyInvalid as invalid:
            raise forms.ValidationError(invalid.field_errors["window"]) from None
        return value


@admin.register(AapPolicy)
class AapPolicyAdmin(admin.ModelAdmin):
    form = AapPolicyForm
    list_display = ("environment", "window_label", "updated_at")
    list_select_related = ("environment__project",)
    search_fields = ("environment__project__slug",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("updated_at",)
        return ("environment", "rules_in_order", "updated_at")

    @admin.display(description="rules, in order")
    def rules_in_order(self, policy: AapPolicy) -> str:
        # Each rule is changed on its own page (AAP policy rules), through the domain.
        rules = policy.rules.all()
        return (
            format_html_join(
                mark_safe("<br>"),  # noqa: S308 - a constant
                '{}. <a href="{}">{}</a>: {} → {}',
                (
                    (
                        rule.position,
                        reverse("admin:tokens_aappolicyrule_change", args=[rule.pk]),
                        rule.name,
                        rule.tool_pattern,
                        rule.get_action_display(),
                    )
                    for rule in rules
                ),
            )
            or "—"
        )

    @admin.display(description="execution window")
    def window_label(self, policy: AapPolicy) -> str:
        window = policy.approval_valid_for
        if window:
            return format_duration(window)
        return f"{format_duration(policies.default_window())} (default)"

    def save_model(self, request: HttpRequest, obj: AapPolicy, form: Any, change: bool) -> None:
        saved = policies.window_set(
            environment=obj.environment, value=form.cleaned_data.get("window") or ""
        )
        obj.pk = saved.pk


class AapPolicyRuleForm(forms.ModelForm):
    """The rule's fields as the dashboard takes them; the domain checks and saves them."""

    environment = forms.ModelChoiceField(queryset=Environment.objects.select_related("project"))
    approvers_text = forms.CharField(
        label="Approvers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Route: e-mail addresses or members' usernames, separated by commas.",
    )
    deadline_text = forms.CharField(
        label="Deadline", required=False, help_text="Route: 30m, 2h, …; empty: the agent's."
    )
    remind_after_text = forms.CharField(label="Remind after", required=False)
    escalate_after_text = forms.CharField(label="Escalate after", required=False)
    escalate_to_text = forms.CharField(label="Escalate to", required=False)

    class Meta:
        model = AapPolicyRule
        fields = (
            "name",
            "tool_pattern",
            "server_pattern",
            "instance",
            "action",
            "required_approvals",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rule = self.instance
        if rule.pk:
            self.fields["environment"].initial = rule.policy.environment_id
            self.fields["environment"].disabled = True
            self.fields["approvers_text"].initial = ", ".join(rule.approvers)
            for name in ("deadline", "remind_after", "escalate_after"):
                value = getattr(rule, name)
                if value:
                    self.fields[f"{name}_text"].initial = format_duration(value)
            self.fields["escalate_to_text"].initial = ", ".join(rule.escalate_to)
        self.fields["instance"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        environment = data.get("environment")
        if environment is None:
            return data
        instance = data.get("instance")
        self.rule_input = policies.RuleInput(
            name=data.get("name") or "",
            tool_pattern=data.get("tool_pattern") or "",
            server_pattern=data.get("server_pattern") or "",
            instance=str(instance.pk) if instance else "",
            action=data.get("action") or "",
            approvers=data.get("approvers_text") or "",
            required_approvals=data.get("required_approvals"),
            deadline=data.get("deadline_text") or "",
            remind_after=data.get("remind_after_text") or "",
            escalate_after=data.get("escalate_after_text") or "",
            escalate_to=data.get("escalate_to_text") or "",
        )
        try:
            policies.clean_rule(
                environment=environment, data=self.rule_input, rule_id=self.instance.pk
            )
        except policies.PolicyInvalid as invalid:
            for name, message in invalid.field_errors.items():
                field = f"{name}_text" if f"{name}_text" in self.fields else name
                self.add_error(field if field in self.fields else None, message)
        return data


@admin.register(AapPolicyRule)
class AapPolicyRuleAdmin(admin.ModelAdmin):
    form = AapPolicyRuleForm
    list_display = ("name", "policy", "position", "tool_pattern", "instance", "action")
    list_filter = ("action",)
    list_select_related = ("policy__environment__project", "instance")
    search_fields = ("name", "tool_pattern", "policy__environment__project__slug")

    def save_model(self, request: HttpRequest, obj: AapPolicyRule, form: Any, change: bool) -> None:
        saved = policies.rule_save(
            environment=form.cleaned_data["environment"],
            data=form.rule_input,
            rule_id=obj.pk if change else None,
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: AapPolicyRule) -> None:
        policies.rule_delete(environment=obj.policy.environment, rule_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AapPolicyRule]) -> None:
        for rule in queryset.select_related("policy__environment"):
            policies.rule_delete(environment=rule.policy.environment, rule_id=rule.pk)
