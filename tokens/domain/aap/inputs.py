"""Strict parsing of what AAP callers send: protocol objects reject unknown fields and nulls,
durations are ``<positive integer><s|m|h>``, tool arguments and context are any JSON object
within size and depth limits. Every refusal is a 400 naming the field (``param``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tokens.domain.aap.errors import AapError, invalid

# Limits (documented in docs/aap.md). A request body: what a reviewer can still read.
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 32  # nesting of arguments and context
MAX_KEY_BYTES = 64 * 1024  # an Idempotency-Key
MAX_TOOL_LENGTH = 119  # so that the tag "aap-tool:<tool>" fits a tag's 128 characters
MAX_SERVER_LENGTH = 200
MAX_REASONING_LENGTH = 20_000
MAX_NAME_LENGTH = 200
MAX_NOTE_LENGTH = 2000
DURATION = re.compile(r"^([1-9][0-9]{0,6})([smh])$")
_UNIT = {"s": 1, "m": 60, "h": 3600}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body; 400 for anything else (duplicate keys, NaN, depth)."""
    if len(raw) > MAX_BODY_BYTES:
        raise invalid(
            f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.", code="body_too_large"
        )
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_pairs,
            parse_constant=_no_constants,
            parse_float=_float,
        )
    except RecursionError:
        raise invalid("The JSON is nested too deeply.", code="too_deep") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(
            f"The body is not valid JSON: {str(error)[:200]}", code="invalid_json"
        ) from None
    if not isinstance(value, dict):
        raise invalid("The body must be a JSON object.", code="invalid_json")
    return value


def depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def digest(value: Any) -> str:
    """The parsed value's digest: whitespace and key order do not change it."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def clean_key(value: str | None, *, required: bool = True) -> str:
    """An ``Idempotency-Key`` header: required, 1 … 64 KiB, no control characters."""
    if value is None or value == "":
        if required:
            raise invalid(
                "The Idempotency-Key header is required.",
                code="missing_idempotency_key",
                param="Idempotency-Key",
            )
        return ""
    if len(value.encode()) > MAX_KEY_BYTES or _CONTROL.search(value):
        raise invalid(
            "The Idempotency-Key header is too long or has control characters.",
            code="invalid_idempotency_key",
            param="Idempotency-Key",
        )
    return value


def _fields(body: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    for name, value in body.items():
        if name not in allowed:
            raise invalid(f"Unknown field {name[:100]!r}.", code="unknown_field", param=name[:100])
        if value is None:
            raise invalid(f"{name} must not be null.", code="null_field", param=name)
    for name in required:
        if name not in body:
            raise invalid(f"{name} is required.", code="missing_field", param=name)


def _text(body: dict[str, Any], name: str, limit: int, *, single_line: bool = True) -> str:
    value = body[name]
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} must be a non-empty string.", code="invalid_field", param=name)
    if len(value) > limit:
        raise invalid(f"{name} is longer than {limit} characters.", code="too_long", param=name)
    bad = _CONTROL.search(value) if single_line else ("\x00" in value)
    if bad:
        raise invalid(f"{name} has control characters.", code="invalid_field", param=name)
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body[name]
    if not isinstance(value, dict):
        raise invalid(f"{name} must be a JSON object.", code="invalid_field", param=name)
    if depth(value) > MAX_DEPTH:
        raise invalid(f"{name} nests deeper than {MAX_DEPTH} levels.", code="too_deep", param=name)
    return value


def duration(value: Any, *, name: str) -> timedelta:
    """``30s``, ``30m``, ``24h``: a positive whole number with its unit."""
    match = DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(
            f"{name} must be a duration such as 30s, 30m or 24h.",
            code="invalid_duration",
            param=name,
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


@dataclass(frozen=True)
class Submission:
    """A cleaned ``CreateApprovalRequest`` (SDK 0.3.3's form, with ``server``)."""

    tool: str
    arguments: dict[str, Any]
    timeout: str
    window: timedelta
    server: str | None
    agent_reasoning: str | None
    context: dict[str, Any] | None
    digest: str


def clean_submission(body: dict[str, Any]) -> Submission:
    _fields(
        body,
        ("tool", "server", "arguments", "timeout", "agent_reasoning", "context"),
        ("tool", "arguments", "timeout"),
    )
    tool = _text(body, "tool", MAX_TOOL_LENGTH)
    server = _text(body, "server", MAX_SERVER_LENGTH) if "server" in body else None
    reasoning = None
    if "agent_reasoning" in body:
        reasoning = body["agent_reasoning"]
        if not isinstance(reasoning, str) or "\x00" in reasoning:
            raise invalid(
                "agent_reasoning must be a string.", code="invalid_field", param="agent_reasoning"
            )
        if len(reasoning) > MAX_REASONING_LENGTH:
            raise invalid(
                f"agent_reasoning is longer than {MAX_REASONING_LENGTH} characters.",
                code="too_long",
                param="agent_reasoning",
            )
    return Submission(
        tool=tool,
        arguments=_object(body, "arguments"),
        timeout=body["timeout"],
        window=duration(body["timeout"], name="timeout"),
        server=server,
        agent_reasoning=reasoning,
        context=_object(body, "context") if "context" in body else None,
        digest=digest(body),
    )


@dataclass(frozen=True)
class Report:
    status: str
    note: str | None


def clean_outcome(body: dict[str, Any]) -> Report:
    _fields(body, ("status", "note"), ("status",))
    if body["status"] not in ("succeeded", "failed"):
        raise invalid(
            'status must be "succeeded" or "failed".', code="invalid_field", param="status"
        )
    note = _text(body, "note", MAX_NOTE_LENGTH, single_line=False) if "note" in body else None
    return Report(status=body["status"], note=note)


@dataclass(frozen=True)
class Delivery:
    url: str
    registration_id: str
    signing_secret: str


def clean_delivery(value: Any) -> Delivery:
    """A ``WebhookDeliveryInput``; the URL's destination is checked by the caller."""
    if not isinstance(value, dict):
        raise invalid("delivery must be an object.", code="invalid_field", param="delivery")
    for name, item in value.items():
        if name not in ("type", "url", "registration_id", "signing_secret"):
            raise invalid(
                f"Unknown field delivery.{name[:100]}.", code="unknown_field", param="delivery"
            )
        if item is None:
            raise invalid(f"delivery.{name} must not be null.", code="null_field", param="delivery")
    for name in ("type", "url", "registration_id", "signing_secret"):
        if name not in value:
            raise invalid(f"delivery.{name} is required.", code="missing_field", param="delivery")
    if value["type"] != "webhook":
        raise AapError(
            "Only webhook delivery is supported.",
            status=400,
            code="unsupported_delivery_type",
            param="delivery",
        )
    try:
        registration = str(uuid.UUID(str(value["registration_id"])))
    except ValueError:
        registration = ""
    if (
        not isinstance(value["registration_id"], str)
        or registration != value["registration_id"].lower()
    ):
        raise invalid(
            "delivery.registration_id must be a UUID.", code="invalid_field", param="delivery"
        )
    secret = value["signing_secret"]
    if not isinstance(secret, str) or not SECRET.match(secret):
        raise invalid(
            "delivery.signing_secret must be whsec_ followed by 32 bytes in padded base64.",
            code="invalid_field",
            param="delivery",
        )
    url = value["url"]
    if not isinstance(url, str):
        raise AapError(
            "delivery.url must be a string.",
            status=400,
            code="invalid_webhook_url",
            param="delivery",
        )
    return Delivery(url=url, registration_id=value["registration_id"], signing_secret=secret)


def clean_name(body: dict[str, Any]) -> str | None:
    if "instance_name" not in body:
        return None
    return _text(body, "instance_name", MAX_NAME_LENGTH)


def clean_provision(body: dict[str, Any]) -> tuple[str | None, Delivery | None]:
    _fields(body, ("instance_name", "delivery"), ())
    name = clean_name(body)
    return name, clean_delivery(body["delivery"]) if "delivery" in body else None


def clean_update(body: dict[str, Any]) -> tuple[str | None, bool, Delivery | None]:
    """(new name or None, whether delivery is mentioned, the new delivery or None = remove)."""
    for name, value in body.items():
        if name not in ("instance_name", "delivery"):
            raise invalid(f"Unknown field {name[:100]!r}.", code="unknown_field", param=name[:100])
        if value is None and name != "delivery":
            raise invalid(f"{name} must not be null.", code="null_field", param=name)
    if not body:
        raise invalid("Give instance_name, delivery or both.", code="missing_field")
    mentioned = "delivery" in body
    delivery = (
        clean_delivery(body["delivery"]) if mentioned and body["delivery"] is not None else None
    )
    return clean_name(body), mentioned, delivery


def parse_id(value: str) -> uuid.UUID | None:
    """A UUID path parameter, or None (then the caller answers 404, as for an unknown id)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
