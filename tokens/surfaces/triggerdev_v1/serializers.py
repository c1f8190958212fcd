"""Output shapes of the v1 API live in the core (``tokens.domain.representation``), because webhook
deliveries render tokens exactly as retrieve does; this module keeps the API's import path."""

from __future__ import annotations

from tokens.domain.representation import TokenOutputSerializer, transition_body, v1_status

__all__ = ["TokenOutputSerializer", "transition_body", "v1_status"]
