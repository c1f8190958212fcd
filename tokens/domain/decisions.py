"""Approve / Reject: the output a person's decision stores, and how a stored output reads back.

Shared by every surface where people decide (``tokens.domain.decide`` validates with it), so
both write the same shape and both recognise it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokens.domain.exceptions import InvalidInput

DECISIONS = ("approved", "rejected")


def decision_output(
    decision: str,
    comment: str,
    *,
    by: str | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"status": "approved"|"rejected", "comment": …, "by": …, "fields": {…}}``; empty
    parts left out. ``fields`` holds what the approver entered in the request's input fields."""
    output: dict[str, Any] = {"status": decision}
    if comment:
        output["comment"] = comment
    if by:
        output["by"] = by
    if fields:
        output["fields"] = fields
    return output


def decision_of(output: str | None, output_type: str) -> dict[str, Any]:
    """The JSON object a completion stored ({"status": "approved", …}), or {} for anything else
    (text, arrays, timeouts): callers read ``.get("status")`` without further checks."""
    if output is None or output_type != "application/super+json":
        return {}
    try:
        value = json.loads(output).get("json")
    except (ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------------------------------------
# The request's ``decision``: custom labels and the input fields an approver fills in
# ------------------------------------------------------------------------------------------------

MAX_LABEL_LENGTH = 40
MAX_FIELDS = 20
MAX_ENUM = 50
MAX_FIELD_TEXT = 10_000  # the longest string a field may ask for (its maxLength)
FIELD_TYPES = ("string", "number", "integer", "boolean")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FORM_PREFIX = "field_"  # form inputs are named field_<name>, clear of comment and decision
DEFAULT_LABELS = {"approve": "Approve", "reject": "Reject"}


@dataclass(frozen=True)
class FieldSpec:
    """One input field, from a small subset of JSON Schema (documented in the README)."""

    name: str
    type: str
    title: str
    description: str = ""
    enum: tuple[Any, ...] | None = None
    max_length: int | None = None
    required: bool = False

    @property
    def input_name(self) -> str:
        return FORM_PREFIX + self.name

    @property
    def multiline(self) -> bool:
        return self.type == "string" and not self.enum and (self.max_length or 10_000) > 200


def _bad(path: str, expected: str) -> InvalidInput:
    return InvalidInput(f"Invalid decision.{path}: {expected}")


def _label(value: Any, name: str) -> str:
    if value is None:
        return DEFAULT_LABELS[name]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL_LENGTH:
        raise _bad(name, f"expected a non-empty string of at most {MAX_LABEL_LENGTH} characters.")
    return " ".join(value.split())


def _clean_property(name: str, schema: Any) -> dict[str, Any]:
    path = f"fields.properties.{name}"
    if not FIELD_NAME.match(name):
        raise _bad(path, "field names are letters, digits and _ (at most 64, not starting "
                   "with a digit).")  # fmt: skip
    if not isinstance(schema, dict):
        raise _bad(path, "expected an object (a JSON Schema).")
    unknown = set(schema) - {"type", "title", "description", "enum", "maxLength"}
    if unknown:
        raise _bad(f"{path}.{sorted(unknown)[0]}", "not supported (use type, title, "
                   "description, enum, maxLength).")  # fmt: skip
    clean: dict[str, Any] = {}
    kind = schema.get("type", "string" if "enum" in schema else None)
    if kind not in FIELD_TYPES:
        raise _bad(f"{path}.type", f"expected one of {', '.join(FIELD_TYPES)}.")
    clean["type"] = kind
    for text in ("title", "description"):
        if text in schema:
            if not isinstance(schema[text], str) or len(schema[text]) > 500:
                raise _bad(f"{path}.{text}", "expected a string of at most 500 characters.")
            clean[text] = schema[text]
    if "enum" in schema:
        options = schema["enum"]
        if kind == "boolean" or not isinstance(options, list) or not 1 <= len(options) <= MAX_ENUM:
            raise _bad(f"{path}.enum", f"expected 1 to {MAX_ENUM} {kind} values.")
        for option in options:
            if not _is_type(option, kind):
                raise _bad(f"{path}.enum", f"every option must be a {kind}, got {option!r}.")
        clean["enum"] = list(dict.fromkeys(options))
    if "maxLength" in schema:
        limit = schema["maxLength"]
        if kind != "string" or not _is_int(limit) or not 1 <= limit <= MAX_FIELD_TEXT:
            raise _bad(f"{path}.maxLength", f"expected an integer from 1 to {MAX_FIELD_TEXT} "
                       "on a string field.")  # fmt: skip
        clean["maxLength"] = limit
    return clean


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return _is_int(value)
    if kind == "number":
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    return isinstance(value, bool)


def clean_decision(value: Any) -> dict[str, Any] | None:
    """Validate a create's ``decision``; the normalised spec, or None when it is absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("Invalid decision: expected an object with approve, reject, fields.")
    unknown = set(value) - {"approve", "reject", "fields"}
    if unknown:
        raise _bad(sorted(unknown)[0], "not supported (use approve, reject, fields).")
    spec: dict[str, Any] = {
        "approve": _label(value.get("approve"), "approve"),
        "reject": _label(value.get("reject"), "reject"),
    }
    fields = value.get("fields")
    if fields is not None:
        if not isinstance(fields, dict) or not isinstance(fields.get("properties"), dict):
            raise _bad("fields", 'expected a JSON Schema object: {"properties": {…}}.')
        if fields.get("type", "object") != "object":
            raise _bad("fields.type", 'expected "object".')
        unknown = set(fields) - {"type", "properties", "required"}
        if unknown:
            raise _bad(f"fields.{sorted(unknown)[0]}", "not supported.")
        properties = fields["properties"]
        if len(properties) > MAX_FIELDS:
            raise _bad("fields.properties", f"at most {MAX_FIELDS} fields.")
        clean = {name: _clean_property(name, schema) for name, schema in properties.items()}
        required = fields.get("required", [])
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise _bad("fields.required", "expected an array of field names.")
        for name in required:
            if name not in clean:
                raise _bad("fields.required", f"{name!r} is not one of the properties.")
        if clean:
            spec["fields"] = {
                "type": "object",
                "properties": clean,
                "required": list(dict.fromkeys(required)),
            }
    return spec


def labels(spec: dict[str, Any] | None) -> dict[str, str]:
    """``{"approved": "Refund", "rejected": "Decline"}`` (Approve / Reject by default)."""
    spec = spec or {}
    return {
        "approved": spec.get("approve") or DEFAULT_LABELS["approve"],
        "rejected": spec.get("reject") or DEFAULT_LABELS["reject"],
    }


def field_specs(spec: dict[str, Any] | None) -> list[FieldSpec]:
    fields = (spec or {}).get("fields") or {}
    required = set(fields.get("required") or [])
    return [
        FieldSpec(
            name=name,
            type=schema["type"],
            title=schema.get("title") or name.replace("_", " ").capitalize(),
            description=schema.get("description", ""),
            enum=tuple(schema["enum"]) if "enum" in schema else None,
            max_length=schema.get("maxLength"),
            required=name in required,
        )
        for name, schema in (fields.get("properties") or {}).items()
    ]


def has_required_fields(spec: dict[str, Any] | None) -> bool:
    return any(field.required for field in field_specs(spec))


def form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The input fields of an HTML form (inputs named ``field_<name>``), by field name."""
    return {
        name.removeprefix(FORM_PREFIX): value
        for name, value in form.items()
        if name.startswith(FORM_PREFIX)
    }


def clean_field_values(
    spec: dict[str, Any] | None, given: Mapping[str, Any], *, decision: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values an approver entered, by field name (strings from a form, or JSON values), as
    typed JSON, and the errors by field name. ``required`` applies to approving; a rejection
    may leave fields empty (what is given is still checked and kept)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in field_specs(spec):
        raw = given.get(field.name, "")
        raw = raw.strip() if isinstance(raw, str) else raw
        if field.type == "boolean":
            values[field.name] = raw in ("on", "true", "1", True)
            continue
        if raw in ("", None):
            if field.required and decision == "approved":
                errors[field.name] = f"{field.title} is required."
            continue
        try:
            value = _parse(field, raw)
        except ValueError as error:
            errors[field.name] = f"{field.title}: {error}"
            continue
        values[field.name] = value
    return values, errors


def _parse(field: FieldSpec, raw: Any) -> Any:
    if field.enum is not None:
        for option in field.enum:
            if raw == option or str(option) == str(raw):
                return option
        raise ValueError("choose one of the options.")
    if field.type == "string":
        text = str(raw)
        if field.max_length is not None and len(text) > field.max_length:
            raise ValueError(f"at most {field.max_length} characters.")
        return text
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ValueError("enter a number.") from None
    if not math.isfinite(number):
        raise ValueError("enter a number.")
    if field.type == "integer":
        if not number.is_integer():
            raise ValueError("enter a whole number.")
        return int(number)
    return int(number) if number.is_integer() and "." not in str(raw) else number
