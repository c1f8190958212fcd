"""Every number that the API schema, the forms and the services share, in one place.

A limit that only one module checks stays beside its check; one that a schema documents, a
form enforces and a service validates lives here, so the three can never disagree.
"""

from __future__ import annotations

from datetime import timedelta

# A token
MAX_TAGS = 10  # upstream's: more is a 422
MAX_TAG_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
MAX_APPROVERS = 20  # also the highest requiredApprovals
MAX_REQUESTED_BY_LENGTH = 254
MAX_DURATION = timedelta(days=365)  # timeout, idempotencyKeyTTL, remindAfter, escalateAfter
MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_CONTEXT_BYTES = 64 * 1024
MAX_PROPOSAL_BYTES = 32 * 1024  # a proposal, as JSON (create and every edited version)
MAX_PROPOSAL_SCHEMA_BYTES = 16 * 1024

# A person's decision
MAX_COMMENT_LENGTH = 2000
MAX_REASON_LENGTH = 1000  # a cancellation's reason

# Reading lists
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_FILTER_TAGS = 100  # tags in one "any of these tags" filter, on the API and the dashboard
MAX_BULK = 100  # tokens decided in one bulk review

# Webhook endpoints
MAX_URL_LENGTH = 2000
MAX_WEBHOOK_DESCRIPTION_LENGTH = 500
MAX_WEBHOOKS_PER_ENVIRONMENT = 20
