"""Small helpers shared by the API tests."""

from __future__ import annotations

import re
from typing import Any

from tokens.models import Token

TOKENS = "/api/v1/waitpoints/tokens"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DATE_KEYS = {
    "completedAt",
    "completedAfter",
    "timeoutAt",
    "idempotencyKeyExpiresAt",
    "createdAt",
    "cancelledAt",
    "decisionExpiresAt",
    "consumedAt",
    "escalatesAt",
}


def nulls(value: Any, path: str = "$") -> list[str]:
    """Paths of every null anywhere in a JSON document."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in nulls(item, f"{path}[{index}]")]
    return []


def bad_dates(value: Any) -> list[str]:
    """Date fields anywhere in a document that are not ISO-8601 UTC with Z."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in DATE_KEYS and not (isinstance(item, str) and ISO_Z.match(item)):
                found.append(f"{key}={item!r}")
            found += bad_dates(item)
    elif isinstance(value, list):
        for item in value:
            found += bad_dates(item)
    return found


def url_of(token: Token | str, suffix: str = "") -> str:
    token_id = token if isinstance(token, str) else token.friendly_id
    return f"{TOKENS}/{token_id}{suffix}"


def post_raw(client, path: str, body: bytes, **extra):
    return client.generic("POST", path, body, content_type="application/json", **extra)


def assert_error(response, status: int, message: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    if message is not None:
        assert body["error"] == message
    return body
