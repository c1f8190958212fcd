"""Reading request bodies with upstream's limits, before anything buffers them, and parsing JSON
strictly: every JSON body of the service (API, callback URL, the dashboard's JSON form) goes
through ``loads_strict``, so what PostgreSQL or JavaScript cannot take is refused here, once,
with a 400 that says what and where, instead of failing later as a 500 or an unreadable output.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from django.http import HttpRequest

from tokens.domain.exceptions import BodyTooLarge, InvalidInput, LengthRequired

# Upstream's 10 KiB plus room for our extensions: `approvers`, `context` (64 KiB of JSON), a
# `description` (10,000 characters, up to 4 bytes each in UTF-8), `decision`, and a `proposal`
# (32 KiB) with its `proposalSchema` (16 KiB).
CREATE_BODY_LIMIT = 10 * 1024 + 6 * 1024 + 64 * 1024 + 40 * 1024 + 16 * 1024 + 48 * 1024
COMPLETE_BODY_LIMIT = 3 * 1024 * 1024  # upstream's TASK_PAYLOAD_MAXIMUM_SIZE
# Deeper than any real output, shallow enough that nothing downstream (json.dumps, the SDK's
# superjson, PostgreSQL's jsonb) gets near a recursion limit.
MAX_JSON_DEPTH = 100
# Python refuses to convert integers of more than 4300 digits (a ValueError deep in json); no
# JavaScript number has more than 309.
MAX_INTEGER_DIGITS = 400
EMPTY = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnacceptableJson(InvalidInput):
    """Well-formed enough to parse, but holding something the service cannot store or hand back
    to JavaScript (NaN, an infinite number, NUL, a lone surrogate, excessive nesting).

    Unlike a plain syntax error, which the callback URL reads as ``{}`` as upstream does, this is
    always a 400: turning such a body into ``{}`` would complete the token with the wrong output.
    """


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


def _refuse_constant(name: str) -> NoReturn:
    raise UnacceptableJson(
        f"Invalid JSON: {name} is not a JSON number (JSON.parse cannot read it); "
        "send a finite number, a string or null instead."
    )


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise UnacceptableJson(
            f"Invalid JSON: the number {text[:40]} is too large to be represented "
            "(it would overflow to Infinity)."
        )
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise UnacceptableJson(
            f"Invalid JSON: an integer has more than {MAX_INTEGER_DIGITS} digits."
        )
    return int(text)


_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}")


def _path(parts: list[str | int]) -> str:
    """A JSONPath to show in an error; odd keys are JSON-escaped (ASCII) and shortened, so the
    message never echoes the NUL or surrogate it complains about."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}"
        else:
            short = part if len(part) <= 40 else part[:40] + "…"
            text += f"[{json.dumps(short)}]"
    return text


def _check_string(text: str, parts: list[str | int], what: str) -> None:
    if "\x00" in text:
        raise UnacceptableJson(
            f"Invalid JSON: the {what} at {_path(parts)} contains a NUL character (\\u0000), "
            "which cannot be stored."
        )
    if _SURROGATE.search(text):
        raise UnacceptableJson(
            f"Invalid JSON: the {what} at {_path(parts)} contains a lone UTF-16 surrogate "
            "(such as \\ud800), which is not valid Unicode."
        )


def check_json_value(value: Any) -> None:
    """Refuse NUL, lone surrogates and nesting deeper than MAX_JSON_DEPTH anywhere in a parsed
    JSON value (keys included). Iterative, so a hostile document cannot exhaust the stack."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, parts = stack.pop()
        if isinstance(item, str):
            _check_string(item, parts, "string")
        elif isinstance(item, dict | list):
            if len(parts) >= MAX_JSON_DEPTH:
                raise UnacceptableJson(
                    f"Invalid JSON: nested more than {MAX_JSON_DEPTH} levels deep."
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, [*parts, key], "key")
                    stack.append((child, [*parts, key]))
            else:
                stack.extend((child, [*parts, index]) for index, child in enumerate(item))


def loads_strict(raw: str | bytes) -> Any:
    """A JSON value, or InvalidInput: UnacceptableJson for the refused values above, plain
    InvalidInput("Invalid JSON") for anything that is not JSON at all."""
    try:
        value = json.loads(
            raw,
            parse_constant=_refuse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        # The C scanner gives up around Python's recursion limit (~1000 levels).
        raise UnacceptableJson(
            f"Invalid JSON: nested more than {MAX_JSON_DEPTH} levels deep."
        ) from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("Invalid JSON") from None
    check_json_value(value)
    return value


def parse_json(raw: bytes) -> Any:
    """JSON value of a body; EMPTY for an empty body; InvalidInput for anything else."""
    if not raw.strip():
        return EMPTY
    return loads_strict(raw)


_JS_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def read_json_object(
    request: HttpRequest, *, limit: int, allow_empty: bool = True
) -> dict[str, Any]:
    """The body as a JSON object. An empty body is ``{}``, or with ``allow_empty=False``
    upstream's ``400 Request body is empty`` (create and complete). As upstream's
    ``safeJsonParse``, a falsy JSON value (null, false, 0, "") is "Invalid JSON"; a body that is
    not JSON says which Content-Type it came with and which one the API takes."""
    try:
        value = parse_json(read_body(request, limit=limit))
    except UnacceptableJson:
        raise
    except InvalidInput as error:
        if error.message != "Invalid JSON":
            raise
        raise InvalidInput("Invalid JSON" + _content_type_hint(request)) from None
    if value is EMPTY:
        if not allow_empty:
            raise InvalidInput("Request body is empty")
        return {}
    if value is None or value is False or value == 0 or value == "":
        raise InvalidInput("Invalid JSON")
    if not isinstance(value, dict):
        kind = _JS_KINDS.get(type(value), type(value).__name__)
        raise InvalidInput(f"Invalid body: expected a JSON object, received {kind}")
    return value


def _content_type_hint(request: HttpRequest) -> str:
    media_type = getattr(request, "_request", request).content_type or ""  # DRF wraps Django's
    if media_type == "application/json" or media_type.endswith("+json"):
        return ""
    sent = f"as {media_type}" if media_type else "without a Content-Type"
    return (
        f": the body was sent {sent}, but this API takes a JSON object; "
        "send it with Content-Type: application/json"
    )
