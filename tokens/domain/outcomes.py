"""What happens at the deadline when nobody decides in time (``onTimeout``).

A request chooses, on create, or its environment's deadline rules choose for it (by tag,
``DeadlineRule``):

* ``"timeout"`` (the default, upstream's behaviour): the token times out;
* ``"reject"`` / ``"approve"``: the deadline rule decides, and the token completes with a
  decision's output, ``{"status": "rejected"|"approved", "by": "deadline rule", …}``, the shape
  every human surface writes, so the SDK's ``wait.forToken`` gets an answer it understands;
* ``{"action": "escalate", "escalateTo": [...], "timeout": "2h", "then": "reject"}``: at the
  deadline the named people are asked too (as ``escalateAfter`` does) and get a second
  deadline, ``timeout`` after the first; when that passes, ``then`` applies (default
  ``"timeout"``). The token's ``timeoutAt`` is the second deadline from the start (when it
  resolves); ``escalatesAt`` says when the first one falls.

Nothing here is a person's decision: it is recorded with the deadline rule as the actor
(``rule_actor``), and it resolves through ``tokens.domain.resolution`` (``expire_due``) like
every exit from WAITING. Until the sweep persists it, readers already see the outcome
(``tokens.domain.deadline.effective``), exactly as they see an overdue token as timed out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, QuerySet
from django.utils.dateparse import parse_datetime

from tokens.domain import inputs
from tokens.domain.actors import Actor
from tokens.domain.durations import TTL_HELP, format_duration, parse_duration
from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_DURATION, MAX_TAG_LENGTH
from tokens.models import DeadlineRule, Environment, TokenEvent

ACTIONS = ("timeout", "reject", "approve", "escalate")
FINAL = ("timeout", "reject", "approve")
# What ``timeout_at`` brings (Token.timeout_outcome): the decision the rule records, or "".
DECISION_OF = {"timeout": "", "reject": "rejected", "approve": "approved"}
RULE_LABEL = "deadline rule"
_HELP = (
    'expected "timeout", "reject", "approve", or {"action": "escalate", "escalateTo": '
    '[e-mail addresses], "timeout": a duration, "then": "timeout"|"reject"|"approve"}'
)


def rule_actor() -> Actor:
    """Who decides at the deadline: the rule, never a person."""
    return Actor(channel=TokenEvent.Channel.SYSTEM, credential=TokenEvent.Credential.DEADLINE_RULE)


def rule_output(decision: str) -> str:
    """The stored output of a decision by the deadline rule (super+json, as the SDK decodes
    it); the same text before the sweep (derived on read) and after it (stored)."""
    verb = "approved" if decision == "approved" else "rejected"
    value = {
        "status": verb,
        "by": RULE_LABEL,
        "decidedBy": "deadline",
        "comment": f"Nobody decided before the deadline; the request's onTimeout rule {verb} it.",
    }
    return json.dumps({"json": value}, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class OnTimeout:
    """A cleaned ``onTimeout``."""

    action: str = "timeout"
    escalate_to: tuple[str, ...] = ()
    second: timedelta | None = None
    then: str = "timeout"
    # Where it came from: "" (the request), or the deadline rule's tag ("*": every request).
    rule: str = field(default="", compare=False)

    @property
    def final(self) -> str:
        """What the (last) deadline brings: timeout, reject or approve."""
        return self.then if self.action == "escalate" else self.action

    def spec(self) -> dict[str, Any] | None:
        """What the token stores and shows as ``onTimeout`` (None: the default)."""
        if self.action == "timeout":
            return None
        data: dict[str, Any] = {"action": self.action}
        if self.action == "escalate":
            assert self.second is not None
            data |= {
                "escalateTo": list(self.escalate_to),
                "timeout": format_duration(self.second),
                "then": self.then,
            }
        if self.rule:
            data["rule"] = self.rule
        return data


def clean(value: Any) -> OnTimeout | None:
    """``onTimeout`` as sent on create (None: not sent)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "escalate":
            raise InvalidInput(
                'Invalid onTimeout: "escalate" needs whom and how long: '
                '{"action": "escalate", "escalateTo": ["…"], "timeout": "2h"}.'
            )
        if value not in FINAL:
            raise InvalidInput(f"Invalid onTimeout: {_HELP}.")
        return OnTimeout(action=value)
    if not isinstance(value, dict) or value.get("action") not in ACTIONS:
        raise InvalidInput(f"Invalid onTimeout: {_HELP}.")
    action = value["action"]
    if action != "escalate":
        if set(value) != {"action"}:
            raise InvalidInput(
                f"Invalid onTimeout: only an escalation takes more than its action; {_HELP}."
            )
        return OnTimeout(action=action)
    unknown = set(value) - {"action", "escalateTo", "timeout", "then"}
    if unknown:
        raise InvalidInput(f"Invalid onTimeout: unknown field {sorted(unknown)[0]!r}; {_HELP}.")
    try:
        addresses = inputs.clean_approvers(value.get("escalateTo"))
    except InvalidInput as invalid:
        raise InvalidInput(invalid.message.replace("approvers", "onTimeout.escalateTo")) from None
    if not addresses:
        raise InvalidInput("Invalid onTimeout.escalateTo: expected at least one e-mail address.")
    raw = value.get("timeout")
    second = parse_duration(raw) if isinstance(raw, str) else None
    if second is None or not timedelta(0) < second <= MAX_DURATION:
        raise InvalidInput(
            f"Invalid onTimeout.timeout: the second deadline, after the first; expected {TTL_HELP}."
        )
    then = value.get("then", "timeout")
    if then not in FINAL:
        raise InvalidInput('Invalid onTimeout.then: expected "timeout", "reject" or "approve".')
    return OnTimeout(action=action, escalate_to=tuple(addresses), second=second, then=then)


def from_rule(rule: DeadlineRule) -> OnTimeout:
    """A rule's outcome, checked as a create's would be (an invalid rule is refused by its
    form; one that became invalid anyway falls back to timing out rather than failing
    creates)."""
    spec: dict[str, Any] = {"action": rule.action}
    if rule.action == "escalate":
        seconds = rule.second_timeout.total_seconds() if rule.second_timeout else 0
        spec |= {
            "escalateTo": list(rule.escalate_to or []),
            "timeout": f"{int(seconds)}s",
            "then": rule.then,
        }
    try:
        cleaned = clean(spec)
    except InvalidInput:
        return OnTimeout(rule=rule.tag or "*")
    assert cleaned is not None
    return OnTimeout(
        action=cleaned.action,
        escalate_to=cleaned.escalate_to,
        second=cleaned.second,
        then=cleaned.then,
        rule=rule.tag or "*",
    )


def check_rule(rule: DeadlineRule) -> None:
    """InvalidInput if ``rule`` would not be accepted as a create's ``onTimeout`` (forms)."""
    if rule.tag and (not rule.tag.strip() or len(rule.tag) > MAX_TAG_LENGTH):
        raise InvalidInput(
            f"Invalid tag: 1-{MAX_TAG_LENGTH} characters, or empty for every request."
        )
    if rule.action != "escalate" and (rule.escalate_to or rule.second_timeout):
        raise InvalidInput("Only an escalation asks people and has a second deadline.")
    if rule.action == "escalate":
        seconds = rule.second_timeout.total_seconds() if rule.second_timeout else 0
        clean(
            {
                "action": "escalate",
                "escalateTo": rule.escalate_to,
                "timeout": f"{int(seconds)}s" if seconds > 0 else "",
                "then": rule.then,
            }
        )


def deadline_rule_save(*, rule: DeadlineRule) -> DeadlineRule:
    """Create or change an environment's deadline rule, checked as a create's ``onTimeout``."""
    check_rule(rule)
    if rule.action == "escalate":
        rule.escalate_to = inputs.clean_approvers(rule.escalate_to)
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        _note_rules(rule.environment_id)
    return rule


def deadline_rules_delete(*, rules: QuerySet[DeadlineRule]) -> int:
    """Delete deadline rules (admin); their environments' requests then time out again."""
    with transaction.atomic():
        environments = set(rules.values_list("environment_id", flat=True))
        deleted, _ = rules.delete()
        for environment_id in environments:
            _note_rules(environment_id)
    return deleted


def deadline_rule_delete(*, rule: DeadlineRule) -> int:
    return deadline_rules_delete(rules=DeadlineRule.objects.filter(pk=rule.pk))


def _note_rules(environment_id: int) -> None:
    Environment.objects.filter(pk=environment_id).update(
        has_deadline_rules=Exists(DeadlineRule.objects.filter(environment_id=environment_id))
    )


def for_environment(environment: Environment, tags: list[str]) -> OnTimeout:
    """The environment's default for a request with these tags: the rule of its first tag
    that has one, else the rule for every request, else time out."""
    if not environment.has_deadline_rules:
        return OnTimeout()
    rules = {rule.tag: rule for rule in DeadlineRule.objects.filter(environment=environment)}
    for tag in [*tags, ""]:
        if tag in rules:
            return from_rule(rules[tag])
    return OnTimeout()


@dataclass(frozen=True)
class Plan:
    """What create stores: the deadline the token resolves at, what it brings, the spec to
    show, and an escalation at the first deadline (when, and whom)."""

    timeout_at: datetime | None
    outcome: str
    spec: dict[str, Any] | None
    escalate_at: datetime | None = None
    escalate_to: tuple[str, ...] = ()


def plan(
    *,
    asked: Any,
    environment: Environment,
    tags: list[str],
    timeout_at: datetime | None,
) -> Plan:
    """The request's ``onTimeout`` (or its environment's rule), applied to its deadline."""
    chosen = clean(asked)
    if chosen is None:
        chosen = for_environment(environment, tags) if timeout_at is not None else OnTimeout()
    if chosen.action != "timeout" and timeout_at is None:
        raise InvalidInput("Invalid onTimeout: the token has no timeout, so no deadline to act on.")
    if chosen.action != "escalate":
        return Plan(timeout_at=timeout_at, outcome=DECISION_OF[chosen.action], spec=chosen.spec())
    assert timeout_at is not None and chosen.second is not None
    # The first deadline is kept with the spec: an extension moves the second one only.
    spec = {**(chosen.spec() or {}), "escalatesAt": timeout_at.isoformat()}
    return Plan(
        timeout_at=timeout_at + chosen.second,
        outcome=DECISION_OF[chosen.then],
        spec=spec,
        escalate_at=timeout_at,
        escalate_to=chosen.escalate_to,
    )


def shown(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """A token's ``onTimeout`` as the API shows it (its first deadline is ``escalatesAt``)."""
    if not spec:
        return None
    return {key: value for key, value in spec.items() if key != "escalatesAt"}


def escalates_at(spec: dict[str, Any] | None) -> datetime | None:
    """When an escalating token's first deadline falls (its ``timeout_at`` is the second)."""
    at = (spec or {}).get("escalatesAt")
    return parse_datetime(at) if isinstance(at, str) else None
