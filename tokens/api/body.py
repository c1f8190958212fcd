"""Reading request bodies with upstream's limits, before anything buffers them."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest

from tokens.exceptions import BodyTooLarge, InvalidInput, LengthRequired

# Upstream's 10 KiB plus room for our extensions: `approvers`, `context` (64 KiB of JSON), a
# `description` (10,000 characters, up to 4 bytes each in UTF-8) and `decision`.
CREATE_BODY_LIMIT = 10 * 1024 + 6 * 1024 + 64 * 1024 + 40 * 1024 + 16 * 1024
COMPLETE_BODY_LIMIT = 3 * 1024 * 1024  # upstream's TASK_PAYLOAD_MAXIMUM_SIZE
EMPTY = object()


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The raw body, after checking Content-Length: 411 when a body comes without one (chunked),
    413 when it announces more than ``limit``."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length:
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            raise LengthRequired()
        return b""
    try:
        size = int(length)
    except ValueError:
        raise InvalidInput("Invalid Content-Length header") from None
    if size > limit:
        raise BodyTooLarge()
    return request.body


def parse_json(raw: bytes) -> Any:
    """JSON value of a body; EMPTY for an empty body; InvalidInput for anything else."""
    if not raw.strip():
        return EMPTY
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("Invalid JSON") from None


def read_json_object(request: HttpRequest, *, limit: int) -> dict[str, Any]:
    value = parse_json(read_body(request, limit=limit))
    if value is EMPTY:
        return {}
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise InvalidInput(f"Invalid body: expected a JSON object, received {kind}")
    return value
