"""Announcements other parts of the service subscribe to. Not for business logic: what must
happen when a token resolves is enqueued in ``resolution.on_resolved``, in the same transaction;
these signals are for in-process listeners that only need to know (long-poll waiters)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the resolving transaction commits, once per resolution call (one token, or one
# sweep batch). Keyword arguments: ``token_ids`` (internal ids) and ``statuses`` (id → status).
token_resolved = Signal()
