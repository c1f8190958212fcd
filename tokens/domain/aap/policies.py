"""Per-environment AAP policies: rules that decide or route a request when it is created, and
the environment's execution window (how long an approval may be acted on).

A project admin keeps an ordered list of rules per environment (the dashboard's "AAP
policies" page, or Django admin). When an instance asks (``requests.request_create``), the
first rule by position whose tool glob (and MCP server glob, and instance) matches applies:

* ``approve`` / ``deny``: the token is created and resolved at once, through
  ``lifecycle.token_complete`` (the function ``decide`` hands a person's decision to, so
  ``resolution.resolve_one`` is the only exit from WAITING), with the rule as the actor
  (``rule_actor``: channel AAP, credential "AAP policy rule") and its name in the decision's
  ``by``, its comment (the AAP ``decision.note``) and the audit event's detail. Nobody is paged.
* ``route``: the token names the rule's approvers (each gets a personal e-mail link, Slack,
  reminders as any token with approvers), needs its quorum, and its deadline is the rule's,
  the agent's ``timeout`` or ``WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS``, whichever is shortest.
* no rule matches: a project member decides, as without a policy.

An environment without an ``AapPolicy`` row costs one indexed read per request.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from tokens.domain import decisions, lifecycle
from tokens.domain.actors import Actor
from tokens.domain.durations import format_duration, parse_duration
from tokens.domain.exceptions import InvalidInput
from tokens.domain.limits import MAX_APPROVERS
from tokens.models import (
    AapInstance,
    AapPolicy,
    AapPolicyRule,
    Environment,
    Membership,
    Token,
    TokenEvent,
)
from tokens.persistence import aap_paths

Action = AapPolicyRule.Action
MAX_NAME_LENGTH = 100
MAX_TOOL_PATTERN_LENGTH = 119  # as a tool name (inputs.MAX_TOOL_LENGTH)
MAX_SERVER_PATTERN_LENGTH = 200
MIN_DEADLINE = timedelta(seconds=10)
# The execution window an admin may set: long enough to start the call, short enough that an
# approval is not a standing permission.
MIN_WINDOW = timedelta(seconds=10)
MAX_WINDOW = timedelta(hours=24)
# A glob: literal characters (no spaces or control characters), * and ?, and sets such as
# [ab] or [!x] that close.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GLOB = re.compile(r"^(?:[^\[\]\s\x00-\x1f\x7f]|\[!?[^\[\]\s\x00-\x1f\x7f]+\])+$")


class PolicyInvalid(InvalidInput):
    """A rule or setting that cannot be saved: ``field_errors`` names each field's problem."""

    def __init__(self, field_errors: dict[str, str]) -> None:
        super().__init__("Check the highlighted fields. Nothing was saved.")
        self.field_errors = field_errors


# ------------------------------------------------------------------------------------------------
# Evaluation, when a request is created
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the policy says of one request: the rule that matched (None: a person decides)
    and how long an approval may be acted on."""

    rule: AapPolicyRule | None
    window: timedelta

    @property
    def decides(self) -> bool:
        return self.rule is not None and self.rule.action in (Action.APPROVE, Action.DENY)

    @property
    def route(self) -> AapPolicyRule | None:
        return self.rule if self.rule is not None and self.rule.action == Action.ROUTE else None


def default_window() -> timedelta:
    return timedelta(seconds=int(settings.WAITPOINTS_AAP_APPROVAL_VALID_SECONDS))


def max_deadline() -> timedelta:
    return timedelta(seconds=int(settings.WAITPOINTS_AAP_MAX_TIMEOUT_SECONDS))


def matches(rule: AapPolicyRule, *, tool: str, server: str | None, instance_id: Any) -> bool:
    """Whether ``rule`` applies to a call of ``tool`` (on MCP ``server``) by that instance.
    Case-sensitive, as tool names are; a server glob needs a request that names a server."""
    if rule.instance_id is not None and rule.instance_id != instance_id:
        return False
    if not fnmatch.fnmatchcase(tool, rule.tool_pattern):
        return False
    if rule.server_pattern:
        return server is not None and fnmatch.fnmatchcase(server, rule.server_pattern)
    return True


def evaluate(*, instance: AapInstance, tool: str, server: str | None) -> Verdict:
    """The first matching rule of the instance's environment, by position, and its window."""
    policy = aap_paths.policy_of(instance.environment_id)
    if policy is None:
        return Verdict(rule=None, window=default_window())
    window = policy.approval_valid_for or default_window()
    for rule in policy.rules.all():
        if matches(rule, tool=tool, server=server, instance_id=instance.pk):
            return Verdict(rule=rule, window=window)
    return Verdict(rule=None, window=window)


def deadline_for(verdict: Verdict, asked: timedelta) -> timedelta:
    """The request's deadline: the agent's ``timeout``, the service's cap and a routing
    rule's deadline, whichever is shortest (a provider may shorten, never lengthen)."""
    window = min(asked, max_deadline())
    route = verdict.route
    if route is not None and route.deadline is not None:
        window = min(window, route.deadline)
    return window


def follow_ups(verdict: Verdict, deadline: timedelta) -> dict[str, str | list[str] | None]:
    """A routing rule's reminder and escalation as ``token_create`` takes them, leaving out
    those that would not come before this request's deadline (the agent's may be shorter)."""
    route = verdict.route
    out: dict[str, str | list[str] | None] = {}
    if route is None:
        return out
    if route.remind_after is not None and route.remind_after < deadline:
        out["remind_after"] = f"{int(route.remind_after.total_seconds())}s"
    if route.escalate_after is not None and route.escalate_after < deadline and route.escalate_to:
        out["escalate_after"] = f"{int(route.escalate_after.total_seconds())}s"
        out["escalate_to"] = list(route.escalate_to)
    return out


def rule_actor() -> Actor:
    """Who decides by a policy: the rule (its name is in the event), never a person."""
    return Actor(channel=TokenEvent.Channel.AAP, credential=TokenEvent.Credential.AAP_POLICY)


def decide_by_rule(*, rule: AapPolicyRule, token: Token, now: datetime | None = None) -> None:
    """WAITING → approved or denied by ``rule``, through the one completion path of a decision
    (in the caller's transaction: the request is never seen pending)."""
    approved = rule.action == Action.APPROVE
    comment = f'{"Approved" if approved else "Denied"} by the AAP policy rule "{rule.name}".'
    output = decisions.decision_output(
        "approved" if approved else "rejected", comment, by=f"policy: {rule.name}"
    )
    result = lifecycle.token_complete(
        token=token,
        actor=rule_actor(),
        data=output,
        now=now,
        detail={"rule": rule.name, "rule_id": rule.pk, "comment": comment},
    )
    if not result.applied:  # a token created in this transaction: cannot happen
        raise RuntimeError(f"the policy rule could not decide {token.pk}")


# ------------------------------------------------------------------------------------------------
# Reading and changing an environment's policy (dashboard, admin)
# ------------------------------------------------------------------------------------------------


def policy_get(*, environment: Environment) -> AapPolicy | None:
    return AapPolicy.objects.filter(environment=environment).first()


def rule_list(*, environment: Environment) -> list[AapPolicyRule]:
    return list(
        AapPolicyRule.objects.filter(policy__environment=environment).select_related("instance")
    )


def rule_get(*, environment: Environment, rule_id: int) -> AapPolicyRule | None:
    return AapPolicyRule.objects.filter(policy__environment=environment, pk=rule_id).first()


def window_of(environment: Environment) -> timedelta:
    policy = policy_get(environment=environment)
    return (policy.approval_valid_for if policy else None) or default_window()


@dataclass(frozen=True)
class RuleInput:
    """A rule as a form or the admin submits it (strings, or a list of approvers)."""

    name: str = ""
    tool_pattern: str = ""
    server_pattern: str = ""
    instance: str = ""  # an instance id of the environment, or "" for any
    action: str = Action.ROUTE
    approvers: str | list[str] = ""  # e-mail addresses or members' usernames
    required_approvals: str | int | None = None
    deadline: str = ""  # a duration such as 30m (route only); "" for the agent's
    remind_after: str = ""  # route: remind the undecided approvers after this long
    escalate_after: str = ""  # route: then also ask escalate_to
    escalate_to: str | list[str] = ""


def _glob(value: str, field: str, limit: int, errors: dict[str, str]) -> str:
    text = value.strip()
    if len(text) > limit:
        errors[field] = f"At most {limit} characters."
    elif text and not _GLOB.match(text):
        if re.search(r"\s", text) or _CONTROL.search(text):
            errors[field] = "A pattern has no spaces or control characters."
        else:
            errors[field] = (
                "Not a valid pattern: a [ opens a set of characters that must close with ] "
                "(such as deploy_[ab]*); use * for any characters and ? for one."
            )
    return text


def _approvers(
    environment: Environment,
    value: str | list[str],
    errors: dict[str, str],
    field: str = "approvers",
) -> list[str]:
    """E-mail addresses as the token API takes them (team addresses too), or usernames of the
    project's members, which become their addresses."""
    entries = value if isinstance(value, list) else value.replace(",", " ").split()
    addresses: list[str] = []
    for entry in (str(item).strip() for item in entries):
        if not entry:
            continue
        if "@" not in entry:
            user = (
                Membership.objects.filter(project=environment.project, user__username__iexact=entry)
                .select_related("user")
                .first()
            )
            if user is None or not user.user.email:
                why = "has no e-mail address" if user else "is not a member of this project"
                errors[field] = (
                    f"Unknown approver {entry[:100]!r}: it is not an e-mail address and {why}."
                )
                return []
            entry = user.user.email
        try:
            validate_email(entry)
        except ValidationError:
            errors[field] = f"Unknown approver {entry[:100]!r}: not an e-mail address."
            return []
        if entry.lower() not in {address.lower() for address in addresses}:
            addresses.append(entry)
    if len(addresses) > MAX_APPROVERS:
        errors[field] = f"At most {MAX_APPROVERS} addresses."
    return addresses


def _quorum(value: str | int | None, errors: dict[str, str]) -> int:
    if value is None or value == "":
        return 1
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_APPROVERS:
        errors["required_approvals"] = f"A whole number from 1 to {MAX_APPROVERS}."
        return 1
    return number


def _duration(value: str, errors: dict[str, str], field: str, empty: str) -> timedelta | None:
    if not value.strip():
        return None
    duration = parse_duration(value)
    highest = max_deadline()
    if duration is None or not MIN_DEADLINE <= duration <= highest:
        errors[field] = (
            f"A duration from {format_duration(MIN_DEADLINE)} to {format_duration(highest)} "
            f"(such as 30m, 2h or 1d), or empty {empty}."
        )
        return None
    return duration


def _follow_ups(
    environment: Environment, rule: AapPolicyRule, data: RuleInput, errors: dict[str, str]
) -> None:
    """A routing rule's reminder and escalation, each before the rule's deadline."""
    rule.remind_after = _duration(data.remind_after, errors, "remind_after", "for no reminder")
    rule.escalate_after = _duration(
        data.escalate_after, errors, "escalate_after", "for no escalation"
    )
    rule.escalate_to = _approvers(environment, data.escalate_to, errors, "escalate_to")
    if rule.escalate_after is not None and not rule.escalate_to and "escalate_to" not in errors:
        errors["escalate_to"] = "An escalation asks someone: name them here."
    if rule.escalate_to and rule.escalate_after is None and "escalate_after" not in errors:
        errors["escalate_after"] = "Say when to ask them (such as 1h), or leave both empty."
    for field in ("remind_after", "escalate_after"):
        moment = getattr(rule, field)
        if moment is not None and rule.deadline is not None and moment >= rule.deadline:
            errors.setdefault(field, "It must come before the rule's deadline.")


def _instance(environment: Environment, value: str, errors: dict[str, str]) -> AapInstance | None:
    if not value:
        return None
    try:
        pk = uuid.UUID(value)
    except ValueError:
        pk = None
    found = None
    if pk is not None:
        found = AapInstance.objects.filter(
            environment=environment, pk=pk, deleted_at__isnull=True
        ).first()
    if found is None:
        errors["instance"] = "Unknown instance: choose one of this environment's, or any."
    return found


def clean_rule(
    *, environment: Environment, data: RuleInput, rule_id: int | None = None
) -> AapPolicyRule:
    """An unsaved rule from ``data``, or ``PolicyInvalid`` naming every field's problem."""
    errors: dict[str, str] = {}
    name = " ".join(data.name.split())
    if not name:
        errors["name"] = "Give the rule a name: the audit trail records it as the reason."
    elif len(name) > MAX_NAME_LENGTH:
        errors["name"] = f"At most {MAX_NAME_LENGTH} characters."
    elif _CONTROL.search(name):
        errors["name"] = "A name has no control characters."
    elif (
        AapPolicyRule.objects.filter(policy__environment=environment, name=name)
        .exclude(pk=rule_id or 0)
        .exists()
    ):
        errors["name"] = "Another rule of this environment has this name."
    tool = _glob(data.tool_pattern, "tool_pattern", MAX_TOOL_PATTERN_LENGTH, errors)
    if not tool and "tool_pattern" not in errors:
        errors["tool_pattern"] = "Give a tool pattern, such as send_* (or * for every tool)."
    server = _glob(data.server_pattern, "server_pattern", MAX_SERVER_PATTERN_LENGTH, errors)
    instance = _instance(environment, data.instance, errors)
    if data.action not in Action.values:
        errors["action"] = "Choose route, approve or deny."
    rule = AapPolicyRule(
        name=name, tool_pattern=tool, server_pattern=server, instance=instance, action=data.action
    )
    if data.action == Action.ROUTE:
        rule.approvers = _approvers(environment, data.approvers, errors)
        rule.required_approvals = _quorum(data.required_approvals, errors)
        rule.deadline = _duration(data.deadline, errors, "deadline", "for the agent's own timeout")
        _follow_ups(environment, rule, data, errors)
        if not rule.approvers and "approvers" not in errors:
            errors["approvers"] = "A route names at least one approver."
        counted = "approvers" not in errors and "required_approvals" not in errors
        if counted and rule.required_approvals > len(rule.approvers):
            errors["required_approvals"] = (
                f"{rule.required_approvals} approvals cannot come from "
                f"{len(rule.approvers)} approver{'s' if len(rule.approvers) != 1 else ''}."
            )
    if errors:
        raise PolicyInvalid(errors)
    return rule


def _policy_locked(environment: Environment, now: datetime) -> AapPolicy:
    """The environment's policy row, created if needed and locked: every change to its rules
    runs one at a time, so positions stay 1 … n."""
    policy, _created = AapPolicy.objects.get_or_create(
        environment=environment, defaults={"updated_at": now}
    )
    return AapPolicy.objects.select_for_update().get(pk=policy.pk)


def _renumber(policy: AapPolicy, ordered: list[AapPolicyRule]) -> None:
    for position, rule in enumerate(ordered, start=1):
        if rule.position != position:
            rule.position = position
            AapPolicyRule.objects.filter(pk=rule.pk).update(position=position)


def rule_save(
    *,
    environment: Environment,
    data: RuleInput,
    rule_id: int | None = None,
    now: datetime | None = None,
) -> AapPolicyRule:
    """A new rule (last in order) or a change to one; ``PolicyInvalid`` and nothing saved."""
    moment = now or timezone.now()
    with transaction.atomic():
        policy = _policy_locked(environment, moment)
        existing = None
        if rule_id is not None:
            existing = AapPolicyRule.objects.filter(policy=policy, pk=rule_id).first()
            if existing is None:
                raise PolicyInvalid({"name": "This rule no longer exists."})
        rule = clean_rule(environment=environment, data=data, rule_id=rule_id)
        rule.policy = policy
        rule.updated_at = moment
        if existing is not None:
            rule.pk, rule.position, rule.created_at = (
                existing.pk,
                existing.position,
                existing.created_at,
            )
        else:
            rule.position = policy.rules.count() + 1
            rule.created_at = moment
        rule.save()
        return rule


def rule_delete(*, environment: Environment, rule_id: int, now: datetime | None = None) -> bool:
    with transaction.atomic():
        policy = _policy_locked(environment, now or timezone.now())
        deleted, _ = AapPolicyRule.objects.filter(policy=policy, pk=rule_id).delete()
        _renumber(policy, list(policy.rules.all()))
    return bool(deleted)


def rule_move(
    *, environment: Environment, rule_id: int, offset: int, now: datetime | None = None
) -> bool:
    """Move a rule up (-1) or down (+1); False when it is already first or last (or gone)."""
    with transaction.atomic():
        policy = _policy_locked(environment, now or timezone.now())
        ordered = list(policy.rules.all())
        index = next((i for i, rule in enumerate(ordered) if rule.pk == rule_id), None)
        if index is None or not 0 <= index + offset < len(ordered):
            return False
        ordered[index], ordered[index + offset] = ordered[index + offset], ordered[index]
        _renumber(policy, ordered)
    return True


def clean_window(value: str) -> timedelta | None:
    """An execution window from a form: empty for the service's default, else 10s … 24h."""
    if not value.strip():
        return None
    duration = parse_duration(value)
    if duration is None or not MIN_WINDOW <= duration <= MAX_WINDOW:
        raise PolicyInvalid(
            {
                "window": f"A duration from {format_duration(MIN_WINDOW)} to "
                f"{format_duration(MAX_WINDOW)} (such as 90s, 10m or 1h), or empty for the "
                f"default ({format_duration(default_window())})."
            }
        )
    return duration


def window_set(*, environment: Environment, value: str, now: datetime | None = None) -> AapPolicy:
    """Set how long this environment's approvals may be acted on (new approvals only: one
    already given keeps its ``expires_at``)."""
    window = clean_window(value)
    moment = now or timezone.now()
    with transaction.atomic():
        policy = _policy_locked(environment, moment)
        policy.approval_valid_for = window
        policy.updated_at = moment
        AapPolicy.objects.filter(pk=policy.pk).update(approval_valid_for=window, updated_at=moment)
    return policy
