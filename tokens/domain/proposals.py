"""Approve with edits: a request's proposal (a JSON object, e.g. the arguments of the call that
waits), the JSON Schema it must satisfy, and which of its fields an approver may change.

On create ``clean`` checks what the requester sent (a 400 naming the problem: not an object,
too large, a schema that is not one, a proposal that fails its own schema, a bad
``proposalEditable``). When a person approves, ``domain.decide`` asks ``check_edit`` what their
edit changes: refused when it touches a field the requester did not allow (``DecisionRefused``),
invalid when the result fails the schema (``DecisionInvalid`` with a message per field). The
change is kept as a JSON Patch (RFC 6902) from the version it was made on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch
from jsonschema import exceptions as schema_exceptions
from jsonschema import validators

from tokens.domain.exceptions import DecisionInvalid, DecisionRefused, InvalidInput
from tokens.domain.limits import MAX_PROPOSAL_BYTES, MAX_PROPOSAL_SCHEMA_BYTES
from tokens.models import Token

FORM_PREFIX = "proposal."  # the form's inputs: proposal.<field>, and proposal_json (raw)
RAW_FIELD = "proposal_json"
SIMPLE_TYPES = ("string", "number", "integer", "boolean")


@dataclass(frozen=True)
class Proposal:
    """What create stores: the proposal, its schema (None: any object) and what may change."""

    value: dict[str, Any]
    schema: dict[str, Any] | None
    editable: bool | list[str]


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _size(value: Any) -> int:
    return len(_text(value).encode())


def clean(proposal: Any, schema: Any, editable: Any) -> Proposal | None:
    """The proposal a create asks for, or None; ``InvalidInput`` (400) saying what is wrong."""
    if proposal is None:
        if schema is not None or editable is not None:
            raise InvalidInput(
                "Invalid proposalSchema/proposalEditable: they describe a proposal; "
                "send proposal too."
            )
        return None
    if not isinstance(proposal, dict):
        raise InvalidInput("Invalid proposal: must be a JSON object, e.g. the call's arguments.")
    if _size(proposal) > MAX_PROPOSAL_BYTES:
        raise InvalidInput(
            f"Invalid proposal: too large (at most {MAX_PROPOSAL_BYTES // 1024} KiB as JSON)."
        )
    if schema is not None:
        _check_schema(schema)
    problems = errors(proposal, schema)
    if problems:
        listed = "; ".join(f"{where}: {message}" for where, message in problems.items())
        raise InvalidInput(f"Invalid proposal: it does not satisfy proposalSchema ({listed}).")
    return Proposal(value=proposal, schema=schema, editable=_clean_editable(editable, proposal))


def _check_schema(schema: Any) -> None:
    if not isinstance(schema, dict):
        raise InvalidInput("Invalid proposalSchema: must be a JSON Schema object.")
    if _size(schema) > MAX_PROPOSAL_SCHEMA_BYTES:
        raise InvalidInput(
            "Invalid proposalSchema: too large "
            f"(at most {MAX_PROPOSAL_SCHEMA_BYTES // 1024} KiB as JSON)."
        )
    if schema.get("type", "object") != "object":
        raise InvalidInput('Invalid proposalSchema: its "type" must be "object".')
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "the root"
        raise InvalidInput(
            f"Invalid proposalSchema: not a valid JSON Schema at {where}: {error.message}"
        ) from None


def _clean_editable(editable: Any, proposal: dict[str, Any]) -> bool | list[str]:
    if editable is None or isinstance(editable, bool):
        return True if editable is None else editable
    if not isinstance(editable, list) or not all(
        isinstance(name, str) and name for name in editable
    ):
        raise InvalidInput(
            "Invalid proposalEditable: true, false, or a list of the proposal's field names."
        )
    return list(dict.fromkeys(editable))


def errors(proposal: Any, schema: dict[str, Any] | None) -> dict[str, str]:
    """Schema violations by top-level field name ("(proposal)" for the object itself)."""
    if schema is None:
        return {}
    validator = validators.validator_for(schema)(schema)
    found: dict[str, str] = {}
    for error in sorted(validator.iter_errors(proposal), key=lambda e: list(e.absolute_path)):
        path = [str(part) for part in error.absolute_path]
        where = path[0] if path else "(proposal)"
        message = error.message if len(path) <= 1 else f"{'.'.join(path[1:])}: {error.message}"
        found.setdefault(where, message)
    return found


@dataclass(frozen=True)
class Edit:
    """What an approver's edit changes: the new version and the patch from the one before."""

    final: dict[str, Any]
    patch: list[dict[str, Any]]


def _changed_fields(patch: list[dict[str, Any]]) -> list[str]:
    names = []
    for operation in patch:
        for key in ("path", "from"):
            if key in operation:
                parts = operation[key].split("/")
                if len(parts) > 1:
                    names.append(parts[1].replace("~1", "/").replace("~0", "~"))
    return list(dict.fromkeys(names))


def check_edit(token: Token, edited: Any, *, base: dict[str, Any] | None = None) -> Edit | None:
    """What approving with ``edited`` as the proposal changes (None: nothing). ``base``: the
    version the edit applies to (the token's latest by default)."""
    current = token.proposal if base is None else base
    if edited is None or current is None:
        if edited is not None:
            raise DecisionInvalid(
                "This request has no proposal to edit.", problem="proposal_absent"
            )
        return None
    if not isinstance(edited, dict):
        raise DecisionInvalid("The proposal must be a JSON object.", problem="proposal_json")
    if edited == current:
        return None
    if _size(edited) > MAX_PROPOSAL_BYTES:
        raise DecisionInvalid(
            f"The proposal is too large (at most {MAX_PROPOSAL_BYTES // 1024} KiB as JSON).",
            problem="proposal_too_large",
        )
    patch = jsonpatch.make_patch(current, edited).patch
    allowed = token.proposal_editable
    if allowed is False or isinstance(allowed, list):
        forbidden = [
            name for name in _changed_fields(patch) if allowed is False or name not in allowed
        ]
        if forbidden:
            what = (
                "This request's proposal cannot be edited"
                if allowed is False
                else f"Only {', '.join(allowed) or 'no fields'} may be edited, not "
                f"{', '.join(forbidden)}"
            )
            raise DecisionRefused(
                f"{what}. Nothing was changed.",
                problem="proposal_forbidden",
                audit_action=f"edit {', '.join(forbidden) or 'the proposal'}",
            )
    problems = errors(edited, token.proposal_schema)
    if problems:
        raise DecisionInvalid(
            "The edited proposal does not satisfy the request's schema; nothing was changed.",
            problem="proposal",
            field_errors={FORM_PREFIX + name: message for name, message in problems.items()},
        )
    return Edit(final=edited, patch=patch)


def patch_from_original(token: Token, final: dict[str, Any]) -> list[dict[str, Any]]:
    return jsonpatch.make_patch(token.proposal_original or {}, final).patch


# ------------------------------------------------------------------------------------------------
# The form generated from the schema (simple types), with the raw JSON beside it
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    name: str
    type: str  # string | number | integer | boolean
    title: str
    description: str
    value: Any
    enum: tuple[Any, ...] | None
    editable: bool
    required: bool


def form_fields(token: Token) -> tuple[list[FormField], list[str]]:
    """Inputs for the proposal's simple top-level fields, and the names of the others (only
    the raw JSON edits those)."""
    proposal = token.proposal or {}
    schema = token.proposal_schema or {}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    allowed = token.proposal_editable
    simple: list[FormField] = []
    other: list[str] = []
    for name in [*proposal, *(n for n in properties if n not in proposal)]:
        found = properties.get(name)
        spec: dict[str, Any] = found if isinstance(found, dict) else {}
        kind = spec.get("type") if isinstance(spec.get("type"), str) else None
        kind = kind or _type_of(proposal.get(name))
        if kind not in SIMPLE_TYPES or (name in proposal and not _fits(kind, proposal[name])):
            other.append(name)
            continue
        simple.append(
            FormField(
                name=name,
                type=kind,
                title=spec.get("title") or name.replace("_", " ").capitalize(),
                description=spec.get("description", ""),
                value=proposal.get(name),
                enum=tuple(spec["enum"]) if isinstance(spec.get("enum"), list) else None,
                editable=allowed is True or (isinstance(allowed, list) and name in allowed),
                required=name in required,
            )
        )
    return simple, other


def _fits(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return {
        "string": isinstance(value, str),
        "integer": isinstance(value, int),
        "number": isinstance(value, int | float),
    }.get(kind, False)


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other" if value is not None else "string"


def from_form(token: Token, form: Mapping[str, Any]) -> dict[str, Any] | None:
    """The proposal a person's form sends (None: the form carries none, or changes nothing).

    The raw JSON (``proposal_json``) wins when it differs from the proposal shown; otherwise
    the generated inputs (``proposal.<field>``), typed by the schema; a value that cannot be
    read as its type is a ``DecisionInvalid`` naming the field."""
    current = token.proposal
    if current is None or not any(k == RAW_FIELD or k.startswith(FORM_PREFIX) for k in form):
        return None
    raw = str(form.get(RAW_FIELD, "") or "").strip()
    if raw:
        try:
            parsed = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            raise DecisionInvalid(
                f"The proposal's JSON is not valid JSON ({error.msg}, line {error.lineno}).",
                problem="proposal_json",
                field_errors={RAW_FIELD: f"Not valid JSON: {error.msg} (line {error.lineno})."},
            ) from None
        if not isinstance(parsed, dict):
            raise DecisionInvalid(
                "The proposal must be a JSON object.",
                problem="proposal_json",
                field_errors={RAW_FIELD: "Must be a JSON object ({…})."},
            )
        if parsed != current:  # compared as JSON: browsers send the text back re-wrapped
            return parsed
    simple, _other = form_fields(token)
    edited = dict(current)
    problems: dict[str, str] = {}
    for field in simple:
        key = FORM_PREFIX + field.name
        if field.type == "boolean":
            if not field.editable and key not in form:
                continue
            value: Any = form.get(key) in ("on", "true", "1")
        elif key not in form:
            continue
        else:
            text = str(form.get(key, "")).strip()
            try:
                value = _typed(field, text)
            except ValueError as error:
                problems[key] = str(error)
                continue
        if value is _OMIT:
            edited.pop(field.name, None)
        else:
            edited[field.name] = value
    if problems:
        raise DecisionInvalid(
            "Check the highlighted fields of the proposal; nothing was changed.",
            problem="proposal",
            field_errors=problems,
        )
    return edited


_OMIT = object()


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (and PostgreSQL's jsonb refuses them).
    raise json.JSONDecodeError(f"{name} is not allowed", name, 0)


def _typed(field: FormField, text: str) -> Any:
    if text == "" and field.type != "string":
        if field.value is None:
            return _OMIT
        raise ValueError(f"Enter a {'whole number' if field.type == 'integer' else 'number'}.")
    if field.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if field.type == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("Enter a number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("Enter a finite number.")
        return int(number) if number.is_integer() and "." not in text else number
    if field.type == "string" and text == "" and field.value is None:
        return _OMIT
    return text


def display_json(value: Any) -> str:
    """How the raw-JSON editor shows a proposal (and recognises it unchanged)."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def version_of(form: Mapping[str, Any]) -> int | None:
    """The proposal version a person's form was showing (None: it showed none)."""
    raw = str(form.get("proposal_version", "") or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise DecisionInvalid(
            "Reload the page: the proposal's version is garbled.", problem="proposal_stale"
        )
    return int(raw)


def form_context(token: Token, posted: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a page needs to show the proposal's form (empty when the token has none)."""
    if token.proposal is None:
        return {}
    simple, other = form_fields(token)
    posted = posted or {}
    values = {
        field.name: posted.get(FORM_PREFIX + field.name, field.value) if posted else field.value
        for field in simple
    }
    if posted:  # an unchecked box is absent from the form
        values.update(
            {
                f.name: posted.get(FORM_PREFIX + f.name) == "on"
                for f in simple
                if f.type == "boolean"
            }
        )
    allowed = token.proposal_editable
    return {
        "proposal_fields": simple,
        "proposal_other": other,
        "proposal_values": values,
        "proposal_raw": str(posted.get(RAW_FIELD) or display_json(token.proposal)),
        "proposal_can_edit": allowed is True or (isinstance(allowed, list) and bool(allowed)),
        "proposal_edited": bool(token.proposal_current_json)
        and token.proposal != token.proposal_original,
    }
