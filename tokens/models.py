"""Tenancy (Project → Environment → ApiKey, Membership), tokens, audit trail and outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from tokens.domain import keys


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and ``Z``, as JavaScript's toISOString()."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    # isoformat (truncating to milliseconds, as the strftime this replaced) is several times
    # faster than strftime; a list page formats hundreds of dates.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


_ZERO = timedelta(0)


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Environment(models.Model):
    class Slug(models.TextChoices):
        DEV = "dev", "Development"
        STAGING = "staging", "Staging"
        PROD = "prod", "Production"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    slug = models.CharField(max_length=16, choices=Slug.choices)
    # The JWT "sub" claim: public, stable, not the database id.
    public_id = models.CharField(max_length=40, unique=True)
    # Keys the callback-URL HMAC; independent of API keys so keys rotate without breaking URLs.
    callback_secret = models.CharField(max_length=100)
    # Signs the public access tokens we issue on create (x-trigger-jwt).
    signing_secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    # Whether any DeadlineRule exists (kept by tokens.domain.outcomes): a create reads the
    # rules only then, so the environment loaded with the API key answers for the rest.
    has_deadline_rules = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="environment_unique_slug")
        ]
        ordering = ["project__slug", "slug"]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.slug}"


class ApiKey(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=20, help_text="The first characters, for recognition.")
    digest = models.CharField(max_length=64, unique=True)
    # Encrypted with a key derived from SECRET_KEY: needed to verify JWTs that the official SDK
    # signs locally with the secret key (auth.createPublicToken). A database dump alone reveals
    # no key.
    encrypted_key = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.environment})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        APPROVER = "approver", "Approver"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


def every_field() -> bool:
    """``Token.proposal_editable``'s default: an approver may edit any field."""
    return True


class Token(models.Model):
    class Status(models.TextChoices):
        WAITING = "WAITING", "Waiting"
        COMPLETED = "COMPLETED", "Completed"
        TIMED_OUT = "TIMED_OUT", "Timed out"
        CANCELLED = "CANCELLED", "Cancelled"

    TERMINAL = (Status.COMPLETED, Status.TIMED_OUT, Status.CANCELLED)

    # 25-character, time-ordered id; the API shows it as "waitpoint_<id>".
    id = models.CharField(primary_key=True, max_length=40, default=keys.generate_token_id)
    # No index of its own: every index below starts with environment. Each index is paid for
    # on every resolution (a status change rewrites every index entry of the row).
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="tokens", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    timeout_at = models.DateTimeField(null=True, blank=True)
    # The key the caller gave, kept for display and filtering after it expires.
    idempotency_key = models.CharField(max_length=2048, null=True, blank=True)
    # SHA-256 of the key (keys may be 2048 characters: too long for a btree entry), for
    # filtering; and the same digest while the key still deduplicates creates, NULL once rotated.
    idempotency_key_digest = models.CharField(max_length=64, null=True, blank=True)
    active_key_digest = models.CharField(max_length=64, null=True, blank=True)
    idempotency_key_expires_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    approvers = models.JSONField(default=list, blank=True)
    # What the approvers decide (our extensions to create; see tokens.domain.markup and
    # tokens.domain.decisions).
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")  # Markdown
    # JSON text, not jsonb: jsonb reorders object keys, and the caller's order is the order of
    # the context table's rows and of the decision's input fields.
    context_json = models.TextField(blank=True, default="")
    decision_json = models.TextField(blank=True, default="")  # labels and input fields
    # N of the approvers must approve (tokens.domain.decide); one rejection suffices.
    required_approvals = models.PositiveSmallIntegerField(default=1)
    # Who asked (an e-mail address or a username): never allowed to approve it.
    requested_by = models.CharField(max_length=254, blank=True, default="")
    output = models.TextField(null=True, blank=True)
    output_type = models.CharField(max_length=64, default="application/json")
    output_is_error = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    # When the token left WAITING, whichever way.
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.TextField(blank=True, default="")
    # A person's decision, once one resolved the token ("approved" or "rejected"; "" otherwise),
    # and how long an approval may be acted on (tokens.domain.consumption): the window asked
    # for on create, and the moment it ends, fixed when the approval is recorded.
    decision = models.CharField(max_length=16, blank=True, default="", db_default="")
    decision_valid_for = models.DurationField(null=True, blank=True)
    decision_expires_at = models.DateTimeField(null=True, blank=True)
    # Single use: the first consumption of an approval, and the outcome its consumer reported.
    consumed_at = models.DateTimeField(null=True, blank=True)
    consumed_by = models.CharField(max_length=300, blank=True, default="", db_default="")
    consume_key = models.CharField(max_length=300, blank=True, default="", db_default="")
    outcome_status = models.CharField(max_length=16, blank=True, default="", db_default="")
    outcome_note = models.TextField(blank=True, default="", db_default="")
    outcome_reported_at = models.DateTimeField(null=True, blank=True)
    # What the deadline brings when nobody decides in time (tokens.domain.outcomes): the request's
    # ``onTimeout`` as cleaned (None: the default, time out), what ``timeout_at`` resolves it
    # to ("" times out, "approved" or "rejected" completes it as the deadline rule's decision;
    # an escalation has asked more people before, at its first deadline), and whether the
    # deadline rule did resolve it (the deadline trigger of migration 0002 lets only it commit
    # after the deadline).
    on_timeout = models.JSONField(null=True, blank=True)
    timeout_outcome = models.CharField(max_length=16, blank=True, default="", db_default="")
    decided_by_deadline = models.BooleanField(default=False, db_default=False)
    # The head of the audit trail's hash chain (tokens.domain.chain): how many events the token
    # has and the digest of the latest. Every event write advances it in the same statement (a
    # row lock), which keeps the chain linear under concurrent writers and shows when events
    # were removed from the end.
    # A proposal the approvers may edit before approving (tokens.domain.proposals): the
    # original as created, the JSON Schema it must keep satisfying, what may be edited (true,
    # false or a list of top-level field names), the latest version ("": the original) and its
    # number (1 for the original): a vote binds to the version it approved.
    proposal_json = models.TextField(blank=True, default="", db_default="")
    proposal_schema_json = models.TextField(blank=True, default="", db_default="")
    proposal_editable = models.JSONField(default=every_field, blank=True, db_default=True)
    proposal_current_json = models.TextField(blank=True, default="", db_default="")
    proposal_version = models.PositiveIntegerField(default=1, db_default=1)
    audit_seq = models.PositiveIntegerField(default=0, db_default=0)
    audit_head = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "active_key_digest"],
                name="token_unique_active_idempotency_key",
            ),
            models.CheckConstraint(
                condition=(Q(status="WAITING") & Q(completed_at__isnull=True))
                | (~Q(status="WAITING") & Q(completed_at__isnull=False)),
                name="token_resolved_iff_terminal",
            ),
            models.CheckConstraint(
                condition=Q(status="CANCELLED") | Q(cancelled_at__isnull=True),
                name="token_cancelled_at_only_when_cancelled",
            ),
            models.CheckConstraint(
                condition=Q(consumed_at__isnull=True) | Q(status="COMPLETED", decision="approved"),
                name="token_consumed_only_when_approved",
            ),
        ]
        indexes = [
            # The list endpoint: keyset on id within one environment, optionally by status.
            models.Index(fields=["environment", "-id"], name="token_env_id"),
            models.Index(fields=["environment", "status", "-id"], name="token_env_status_id"),
            models.Index(fields=["environment", "created_at"], name="token_env_created"),
            models.Index(
                fields=["environment", "idempotency_key_digest"], name="token_env_idem_key"
            ),
            # Only waiting rows, in deadline order: the beat sweep's order (resolution.expire_due),
            # and with the id as tie-break the order of "waiting for me" (selectors.
            # token_triage_page), so its page stops after its rows even when thousands of
            # tokens share a deadline or have none.
            models.Index(
                fields=["timeout_at", "id"],
                name="token_waiting_deadline",
                condition=Q(status="WAITING"),
            ),
            # Only waiting rows whose deadline brings a decision (onTimeout): the sweep finds
            # the few due ones (resolution.expire_due) without reading a backlog of timeouts.
            models.Index(
                fields=["timeout_at"],
                name="token_waiting_ruled",
                condition=Q(status="WAITING") & ~Q(timeout_outcome=""),
            ),
        ]

    def __str__(self) -> str:
        return self.friendly_id

    @property
    def friendly_id(self) -> str:
        return keys.friendly_id(self.id)

    # These readings are also a list row's (tokens.persistence.rows.TokenRow): the same functions.
    @property
    def context(self) -> dict[str, Any] | None:
        """The request's context object (None when the caller sent none)."""
        return decoded(self.context_json)

    @property
    def proposal(self) -> dict[str, Any] | None:
        """The proposal's latest version (None when the request carries none)."""
        return decoded(latest_proposal_json(self.proposal_current_json, self.proposal_json))

    @property
    def proposal_original(self) -> dict[str, Any] | None:
        return decoded(self.proposal_json)

    @property
    def proposal_schema(self) -> dict[str, Any] | None:
        return decoded(self.proposal_schema_json)

    @property
    def decision_spec(self) -> dict[str, Any] | None:
        """The decision's labels and input fields (``tokens.domain.decisions.clean_decision``)."""
        return decoded(self.decision_json)


def decoded(text: str) -> Any:
    """A JSON text column's value; None for the empty text that stands for "none"."""
    return json.loads(text) if text else None


def latest_proposal_json(current: str, original: str) -> str:
    """A proposal's latest version: as last edited (domain.proposals), else as proposed."""
    return current or original


class DeadlineRule(models.Model):
    """An environment's default for what happens at a deadline nobody met, for requests that
    do not say (``onTimeout`` on create wins): those tagged ``tag``, or every request of the
    environment when ``tag`` is empty. A request with several matching tags takes the rule of
    its first such tag, in the order it gave its tags (tokens.domain.outcomes)."""

    class Action(models.TextChoices):
        TIMEOUT = "timeout", "Time out"
        REJECT = "reject", "Reject"
        APPROVE = "approve", "Approve"
        ESCALATE = "escalate", "Escalate, with a second deadline"

    class Then(models.TextChoices):
        TIMEOUT = "timeout", "Time out"
        REJECT = "reject", "Reject"
        APPROVE = "approve", "Approve"

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="deadline_rules"
    )
    tag = models.CharField(
        max_length=128, blank=True, default="", help_text="Empty: every request."
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.TIMEOUT)
    escalate_to = models.JSONField(
        default=list, blank=True, help_text="E-mail addresses asked at the first deadline."
    )
    second_timeout = models.DurationField(
        null=True, blank=True, help_text="Escalation: how long the escalated people have."
    )
    then = models.CharField(
        max_length=16,
        choices=Then.choices,
        default=Then.TIMEOUT,
        help_text="Escalation: what happens when the second deadline passes too.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment_id", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "tag"], name="deadlinerule_unique_tag")
        ]

    def __str__(self) -> str:
        return f"{self.tag or 'every request'}: {self.get_action_display().lower()}"


class TokenTag(models.Model):
    """One row per (token, tag): makes "any of these tags" and the tag typeahead index-backed
    on SQLite and PostgreSQL alike. ``Token.tags`` keeps the order the caller gave."""

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="tag_rows")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "name"], name="tokentag_unique_name")
        ]
        indexes = [models.Index(fields=["environment", "name", "token"], name="tokentag_lookup")]

    def __str__(self) -> str:
        return self.name


class TokenEvent(models.Model):
    """The audit trail: every transition and every refused attempt."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        COMPLETED = "completed", "Completed"
        TIMED_OUT = "timed_out", "Timed out"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETE_IGNORED = "complete_ignored", "Completion ignored (already resolved)"
        CANCEL_IGNORED = "cancel_ignored", "Cancel ignored (already resolved)"
        TIMEOUT_IGNORED = "timeout_ignored", "Force timeout ignored (already resolved)"
        DENIED = "denied", "Action denied"
        EMAIL_SENT = "email_sent", "Approval e-mail sent"
        EMAIL_FAILED = "email_failed", "Approval e-mail failed"
        LINK_REVOKED = "link_revoked", "Personal link revoked"
        VOTED = "voted", "Vote recorded"
        REMINDED = "reminded", "Reminder queued"
        ESCALATED = "escalated", "Escalated"
        EXTENDED = "extended", "Deadline extended"
        EXTEND_IGNORED = "extend_ignored", "Extension refused (already resolved)"
        CONSUMED = "consumed", "Approval consumed"
        CONSUME_REFUSED = "consume_refused", "Consumption refused"
        OUTCOME_REPORTED = "outcome_reported", "Outcome reported"
        AUTH_FAILED = "auth_failed", "Refused credential"
        SLACK_POSTED = "slack_posted", "Slack message posted"
        SLACK_FAILED = "slack_failed", "Slack message failed"
        SLACK_NO_ACCOUNT = "slack_no_account", "No Slack account (asked by e-mail only)"
        SNOOZED = "snoozed", "Put aside (not now)"
        UNSNOOZED = "unsnoozed", "Back from aside"
        PROPOSAL_EDITED = "proposal_edited", "Proposal edited"

    class Credential(models.TextChoices):
        """What proved the actor's right to act, beside the channel it came through."""

        SECRET_KEY = "secret_key", "secret key"
        PUBLIC_ACCESS_TOKEN = "public_access_token", "public access token"
        CALLBACK_URL = "callback_url", "callback URL"
        PERSONAL_LINK = "personal_link", "personal link"
        SESSION = "session", "login"
        SLACK_SIGNATURE = "slack_signature", "Slack request signature"
        AAP_CREDENTIAL = "aap_credential", "AAP instance credential"
        SYSTEM = "system", "system"
        # The request's onTimeout (or its environment's deadline rule): never a person.
        DEADLINE_RULE = "deadline_rule", "deadline rule"
        # A rule of the environment's AAP policy (its name in the event's detail, "rule").
        AAP_POLICY = "aap_policy", "AAP policy rule"

    class Channel(models.TextChoices):
        API = "api", "API"
        CALLBACK = "callback", "Callback URL"
        DASHBOARD = "dashboard", "Dashboard"
        ADMIN = "admin", "Admin"
        SLACK = "slack", "Slack"
        AAP = "aap", "Agent Approval Protocol"
        SYSTEM = "system", "System"

    # Indexed by tokenevent_token (token, created_at), which serves the FK as well.
    token = models.ForeignKey(
        Token, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    credential = models.CharField(max_length=32, choices=Credential.choices, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    # The address a personal link was signed for: who decided through it.
    # db_default: the sweep inserts its audit rows in raw SQL (resolution.expire_due).
    email = models.CharField(max_length=254, blank=True, default="", db_default="")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    # Who acted, as the digest covers it ("key:<id>", "user:<id>", both, or ""): the foreign
    # keys above are cleared when a key or user is deleted, this stays.
    actor_ref = models.CharField(max_length=64, blank=True, default="", db_default="")
    # The hash chain (tokens.domain.chain): this event's place in its token's trail (1, 2, …)
    # and the digest of its content and of the previous event's digest.
    seq = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["token", "created_at"], name="tokenevent_token")]
        constraints = [
            models.UniqueConstraint(fields=["token", "seq"], name="tokenevent_unique_seq")
        ]

    def __str__(self) -> str:
        return f"{self.kind} via {self.channel}"

    @property
    def actor_label(self) -> str:
        if self.user_id:
            return str(self.user)
        if self.email:
            return self.email
        key = f"API key {self.api_key.prefix}…" if self.api_key else "API key"
        if self.credential == self.Credential.PUBLIC_ACCESS_TOKEN:
            # Signed by a secret key (the SDK's auth.createPublicToken) or issued on create.
            signer = key if self.api_key_id else "issued on create"
            return f"public access token ({signer})"
        if self.api_key_id:
            return key
        if self.channel == self.Channel.CALLBACK:
            return "callback URL"
        if self.credential == self.Credential.DEADLINE_RULE:
            return "deadline rule"
        if self.credential == self.Credential.AAP_POLICY:
            return f"policy: {self.detail.get('rule', '')}"
        return "system"


class Recipient(models.Model):
    """One e-mailed approver of a token: their personal link is signed for this address
    (``keys.personal_hash``) and names this row, so it can be revoked alone."""

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="recipients")
    email = models.CharField(max_length=254)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["token", "email"], name="recipient_unique_email")
        ]
        # "Waiting for me" finds the requests that e-mailed me by my address, in any case
        # (selectors.token_triage_page; ``email__iexact`` compiles to UPPER() on PostgreSQL).
        indexes = [models.Index(Upper("email"), name="recipient_email")]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Vote(models.Model):
    """One person's approval or rejection of a token that needs several approvals. ``voter`` is
    the person's identity key (a lower-cased e-mail address, or ``user:<username>``), unique per
    token so the same person never counts twice, whichever surface they use."""

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="votes")
    voter = models.CharField(max_length=300)
    label = models.CharField(max_length=254)  # how the output and pages name the person
    decision = models.CharField(max_length=16)  # "approved" | "rejected"
    comment = models.TextField(blank=True, default="")
    fields = models.JSONField(default=dict, blank=True)
    # The proposal version this vote approved (Token.proposal_version): an edit after it
    # makes it stale, and the person is asked again.
    proposal_version = models.PositiveIntegerField(default=1, db_default=1)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["token", "voter"], name="vote_unique_voter")]

    def __str__(self) -> str:
        return f"{self.label}: {self.decision}"


class Snooze(models.Model):
    """One person's "not now" on a request (tokens.domain.snoozes): until ``until`` it leaves
    their "waiting for me" and their reminders, for them alone. Never a decision. ``person``
    is the identity key decisions use (``Vote.voter``: a lower-cased e-mail address, or
    ``user:<username>``), so a request put aside through a personal link is aside on the
    dashboard too."""

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="snoozes")
    person = models.CharField(max_length=300)
    label = models.CharField(max_length=254)
    until = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["until", "id"]
        constraints = [
            models.UniqueConstraint(fields=["token", "person"], name="snooze_unique_person")
        ]
        # A person's requests put aside ("waiting for me" leaves them out, then lists them).
        indexes = [models.Index(fields=["person", "until"], name="snooze_person_until")]

    def __str__(self) -> str:
        return f"{self.label} until {iso(self.until)}"


class OutboxMessage(models.Model):
    """Work for the worker, written in the same transaction as the state change that caused it,
    so nothing is lost when the broker is down; the worker delivers and retries idempotently."""

    class Kind(models.TextChoices):
        APPROVAL_EMAIL = "approval_email", "Approval e-mail"
        WEBHOOK = "webhook", "Webhook"
        # Scheduled (next_attempt_at): at their time they queue approval e-mails, if the token
        # still waits (tokens.delivery.emails).
        REMINDER = "reminder", "Reminder to undecided approvers"
        ESCALATION = "escalation", "Escalation to more approvers"
        # Slack (tokens.delivery.slack.handlers): every Web API call the service makes.
        SLACK_POST = "slack_post", "Slack: post the request"
        SLACK_UPDATE = "slack_update", "Slack: update the message in place"
        SLACK_REPLY = "slack_reply", "Slack: reply in the message's thread"
        SLACK_NOTICE = "slack_notice", "Slack: a note only the clicker sees"
        # The Agent Approval Protocol's signed, ID-only request.resolved event
        # (tokens.delivery.aap), sent to the instance's receiver as configured at send time.
        AAP_EVENT = "aap_event", "AAP: request.resolved event"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="outbox")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    # A worker's claim: it sends with no lock held; if it dies, the claim lapses and another
    # worker takes the message again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Which delivery process holds the claim: it renews its claims while it lives (a short
    # lease), so those of a process that died lapse within seconds.
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    # What shares a concurrency cap and a circuit breaker (delivery.outbox): one webhook
    # endpoint, e-mail, Slack, …; set from the kind and payload when the row is written.
    lane = models.CharField(max_length=120, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Used by delivery.outbox.claim: only undelivered, unfailed rows.
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_pending",
                condition=Q(delivered_at__isnull=True, failed_at__isnull=True),
            ),
            # Used by delivery.outbox.claim and the lease renewal: what is in flight now.
            models.Index(
                fields=["claimed_until"],
                name="outbox_in_flight",
                condition=Q(
                    delivered_at__isnull=True, failed_at__isnull=True, claimed_until__isnull=False
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.token_id}"


WEBHOOK_PREFIX = "webhook_"


class WebhookEndpoint(models.Model):
    """Where an environment wants its resolution events POSTed, signed per Standard Webhooks."""

    class Event(models.TextChoices):
        COMPLETED = "waitpoint.completed", "waitpoint.completed"
        TIMED_OUT = "waitpoint.timed_out", "waitpoint.timed_out"
        CANCELLED = "waitpoint.cancelled", "waitpoint.cancelled"

    # 25-character, time-ordered id (as tokens); the API shows it as "webhook_<id>".
    id = models.CharField(primary_key=True, max_length=40, default=keys.generate_token_id)
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    # "whsec_…", encrypted with a key derived from SECRET_KEY (as API keys): the worker needs the
    # secret itself to sign, and a database dump alone must not reveal it.
    encrypted_secret = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["environment", "-id"], name="webhook_env_id")]

    def __str__(self) -> str:
        return f"{self.url} ({self.environment})"

    @property
    def friendly_id(self) -> str:
        return WEBHOOK_PREFIX + self.id


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to one endpoint: every attempt is kept for support."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The outbox row that carries the event (one per event and endpoint); its retries share it.
    message = models.ForeignKey(
        OutboxMessage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_deliveries",
    )
    webhook_id = models.CharField(max_length=64, help_text="The webhook-id header (stable).")
    event_type = models.CharField(max_length=32)
    token_id = models.CharField(max_length=40)
    attempt = models.PositiveIntegerField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The endpoint's recent deliveries (admin inline, dashboard page).
            models.Index(fields=["endpoint", "-created_at"], name="webhookdelivery_recent")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} (attempt {self.attempt})"


class SlackConnection(models.Model):
    """An environment's Slack app: its bot token and signing secret, encrypted with a key derived
    from SECRET_KEY (as API keys and webhook secrets) and never shown again in full, where
    requests go by default, and the outcome of the latest Web API call (for the admins)."""

    environment = models.OneToOneField(
        Environment, on_delete=models.CASCADE, related_name="slack_connection"
    )
    encrypted_bot_token = models.TextField()
    bot_token_hint = models.CharField(max_length=32, help_text="The token's shape and last four.")
    encrypted_signing_secret = models.TextField()
    signing_secret_hint = models.CharField(max_length=32)
    # A channel id (C0123ABCD) or a public channel's name (#approvals); "" for none.
    default_channel = models.CharField(max_length=80, blank=True, default="")
    # Each approver also gets the request by direct message (their e-mail looked up in Slack).
    direct_messages = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["environment__project__slug", "environment__slug"]

    def __str__(self) -> str:
        return f"Slack for {self.environment}"


class SlackRoute(models.Model):
    """A routing rule: requests tagged ``tag`` go to ``channel`` (unless the request names a
    channel itself); with no rule matching, the connection's default channel."""

    connection = models.ForeignKey(SlackConnection, on_delete=models.CASCADE, related_name="routes")
    tag = models.CharField(max_length=128)
    channel = models.CharField(max_length=80)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["tag", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "tag", "channel"], name="slackroute_unique_rule"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tag} → {self.channel}"


class SlackMessage(models.Model):
    """One message about one token in one place (a channel, or an approver's direct messages).
    Written when the request is created, with ``ts`` empty; the outbox posts it and records
    ``ts`` once, and every later call updates that message in place or replies in its thread."""

    class Target(models.TextChoices):
        CHANNEL = "channel", "Channel"
        DIRECT = "direct", "Direct message"

    # Indexed by slackmessage_unique_target (token first), which also serves the resolving
    # statement's look for messages to update (tokens.persistence.fast_paths.resolve).
    token = models.ForeignKey(
        Token, on_delete=models.CASCADE, related_name="slack_messages", db_index=False
    )
    connection = models.ForeignKey(
        SlackConnection, on_delete=models.CASCADE, related_name="messages"
    )
    target_kind = models.CharField(max_length=16, choices=Target.choices)
    # The channel as configured or requested, or the approver's e-mail address.
    target = models.CharField(max_length=254)
    channel_id = models.CharField(max_length=32, blank=True, default="")  # as Slack answered
    ts = models.CharField(max_length=32, blank=True, default="")  # "" until posted
    # What the message shows now ("WAITING:1" = waiting, one approval), to skip no-op updates.
    rendered = models.CharField(max_length=64, blank=True, default="")
    # Thread replies already posted (reminders, escalations): {their key: their ts}.
    replies = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    posted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["token", "target_kind", "target"], name="slackmessage_unique_target"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_target_kind_display()} {self.target} for {self.token_id}"


class SlackUser(models.Model):
    """The e-mail ↔ Slack user cache of one connection: ``user_id`` "" means Slack has no
    account with this address (looked up again after a while)."""

    connection = models.ForeignKey(SlackConnection, on_delete=models.CASCADE, related_name="users")
    email = models.CharField(max_length=254)  # lower-cased
    user_id = models.CharField(max_length=32, blank=True, default="")
    looked_up_at = models.DateTimeField()

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "email"], name="slackuser_unique_email")
        ]
        indexes = [models.Index(fields=["connection", "user_id"], name="slackuser_by_id")]

    def __str__(self) -> str:
        return f"{self.email} → {self.user_id or 'no account'}"


# ------------------------------------------------------------------------------------------------
# The Agent Approval Protocol (tokens.domain.aap, tokens.surfaces.aap)
# ------------------------------------------------------------------------------------------------


class AapProvisioner(models.Model):
    """An AAP provisioner token: creates, reads, updates and deletes the instances of one
    environment (its scope), never makes approval requests. Shown once, kept as a digest."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="aap_provisioners"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=20, help_text="The first characters, for recognition.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "AAP provisioner token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.environment})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AapInstance(models.Model):
    """One agent (``codex-chris-laptop``) allowed to ask for approvals in one environment, with
    its credential (a digest; revoked when the instance is deleted) and its optional verified
    webhook receiver. A deleted instance keeps its row (``deleted_at``): its requests, their
    idempotency keys and the deletion record outlive it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="aap_instances"
    )
    provisioner = models.ForeignKey(
        AapProvisioner,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instances",
        help_text="Who created it (none: created on the dashboard or in admin).",
    )
    name = models.CharField(max_length=200)
    credential_prefix = models.CharField(max_length=20)
    credential_digest = models.CharField(max_length=64, unique=True)
    credential_revoked_at = models.DateTimeField(null=True, blank=True)
    # Asynchronous delivery, verified before it was saved: "" / None when there is none. The
    # secret ("whsec_…") is encrypted like webhook secrets and never returned.
    delivery_url = models.CharField(max_length=2000, blank=True, default="")
    delivery_registration_id = models.UUIDField(null=True, blank=True)
    encrypted_signing_secret = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "AAP instance"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["environment", "-created_at"], name="aapinstance_env")]
        constraints = [
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=True) | Q(credential_revoked_at__isnull=False),
                name="aapinstance_deleted_revoked",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"

    @property
    def has_delivery(self) -> bool:
        return bool(self.delivery_url)


class AapOperation(models.Model):
    """The idempotency record of one provisioning or instance update: the key (a digest), the
    parsed body's digest, and the original answer (encrypted: a provisioning answer holds the
    credential), so a retry gets exactly the same answer and nothing is applied twice."""

    provisioner = models.ForeignKey(
        AapProvisioner, on_delete=models.CASCADE, related_name="operations"
    )
    # "provision", or "update:<instance id>": the spec scopes keys to provisioner, operation
    # (and, for updates, the instance).
    scope = models.CharField(max_length=64)
    key_digest = models.CharField(max_length=64)
    body_digest = models.CharField(max_length=64)
    instance = models.ForeignKey(AapInstance, on_delete=models.CASCADE, related_name="operations")
    status_code = models.PositiveSmallIntegerField()
    encrypted_response = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "AAP idempotency record"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provisioner", "scope", "key_digest"], name="aapoperation_unique_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} ({self.created_at:%Y-%m-%d %H:%M})"


class AapRequest(models.Model):
    """One AAP approval request: exactly one waitpoint token of the instance's environment
    (tagged ``aap-request:<id>``, ``aap-tool:<tool>``, ``aap-instance:<instance id>``), whose
    state is the request's state (``tokens.domain.aap.status_of``). Only the submitted call is
    stored here, immutable; everything that changes lives on the token."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token = models.OneToOneField(Token, on_delete=models.CASCADE, related_name="aap_request")
    instance = models.ForeignKey(AapInstance, on_delete=models.CASCADE, related_name="requests")
    key_digest = models.CharField(max_length=64)
    body_digest = models.CharField(max_length=64)
    tool = models.CharField(max_length=200)
    server = models.CharField(max_length=200, null=True, blank=True)
    # JSON text, as submitted (key order kept), not jsonb.
    arguments_json = models.TextField()
    timeout = models.CharField(max_length=16)
    agent_reasoning = models.TextField(null=True, blank=True)
    context_json = models.TextField(null=True, blank=True)
    # The request.resolved notification's id, once one was recorded (delivery configured).
    event_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "AAP request"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "key_digest"], name="aaprequest_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.id})"

    @property
    def arguments(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.arguments_json)
        return value

    @property
    def context(self) -> dict[str, Any] | None:
        return json.loads(self.context_json) if self.context_json is not None else None


class AapPolicy(models.Model):
    """An environment's AAP policy (tokens.domain.aap.policies): its rules, tried in order on
    each new request (the first that matches decides or routes it; none: a person decides),
    and how long an approval may be acted on (``expires_at - decided_at``)."""

    environment = models.OneToOneField(
        Environment, on_delete=models.CASCADE, related_name="aap_policy"
    )
    approval_valid_for = models.DurationField(
        null=True,
        blank=True,
        help_text="None: the service's WAITPOINTS_AAP_APPROVAL_VALID_SECONDS (600 s).",
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "AAP policy"
        verbose_name_plural = "AAP policies"
        ordering = ["environment__project__slug", "environment__slug"]

    def __str__(self) -> str:
        return f"AAP policy of {self.environment}"


class AapPolicyRule(models.Model):
    """One rule of an environment's AAP policy: requests whose tool (and MCP server) match the
    globs, from ``instance`` (None: any), are approved or denied by the rule at once, or routed
    to named approvers with a quorum and a deadline. Rules are tried by ``position``."""

    class Action(models.TextChoices):
        ROUTE = "route", "Route to named approvers"
        APPROVE = "approve", "Approve without asking anyone"
        DENY = "deny", "Deny without asking anyone"

    policy = models.ForeignKey(AapPolicy, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    tool_pattern = models.CharField(max_length=119, help_text="A glob: send_*, *, deploy_?")
    server_pattern = models.CharField(
        max_length=200, blank=True, default="", help_text="A glob on the MCP server; empty: any."
    )
    # A rule for one agent goes with it: deleting the instance's row deletes the rule rather
    # than widening it to every instance.
    instance = models.ForeignKey(
        AapInstance,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="policy_rules",
        help_text="Empty: any instance of the environment.",
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.ROUTE)
    approvers = models.JSONField(default=list, blank=True, help_text="Route: e-mail addresses.")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    deadline = models.DurationField(
        null=True, blank=True, help_text="Route: how long the approvers have; empty: the agent's."
    )
    # Route: follow-ups from the request's creation, as token_create's remindAfter,
    # escalateAfter and escalateTo; each left out of a request whose deadline comes first.
    remind_after = models.DurationField(null=True, blank=True)
    escalate_after = models.DurationField(null=True, blank=True)
    escalate_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "AAP policy rule"
        ordering = ["policy_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "name"], name="aappolicyrule_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.tool_pattern} → {self.action}"
