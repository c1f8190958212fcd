"""Signals the token core sends. Receivers must be quick and must not raise."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the commit of any resolution (complete, cancel, force-timeout, sweep), with
# ``token_ids: list[str]`` (internal ids) and ``statuses: dict[str, str]``.
token_resolved = Signal()
