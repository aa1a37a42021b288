"""Strict validation of model-written tool arguments.

Arguments arrive as JSON text or an already parsed dict. They are checked in three steps:

1. as JSON: the text parses, with no NaN/Infinity, no duplicate keys, and within the size
   caps of ``ArgumentLimits`` (text length, nesting depth, string length, list length,
   object size);
2. against the tool's normalized schema (``tools.schema``), with no coercion: ``"1.5"`` is
   not a number, ``true`` is not an integer, ``1.0`` is a number but not an integer, and
   an unexpected key is an error, as is a missing required one;
3. converted to the Python types of the function's signature (``Tool.convert``).

Every failure is a ``ToolCallError`` with a short message meant to go back to the model,
e.g. ``argument "city": expected a string, got 42``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ToolCallError

if TYPE_CHECKING:
    from tools.tool import Tool

__all__ = ["DEFAULT_LIMITS", "ArgumentLimits", "check_arguments", "schema_error", "validate_arguments"]


@dataclass(frozen=True)
class ArgumentLimits:
    """Size caps on one tool call's arguments; going over one is a ``ToolCallError``."""

    max_json_chars: int = 64_000
    """Length of the arguments' JSON text (measured compactly for an already parsed dict)."""
    max_string_chars: int = 16_000
    """Length of any one string, object keys included."""
    max_depth: int = 16
    """Nesting of objects and lists; the arguments object itself is level 1."""
    max_items: int = 1_000
    """Items in any one list."""
    max_keys: int = 256
    """Keys in any one object."""

    def __post_init__(self) -> None:
        for name in ("max_json_chars", "max_string_chars", "max_depth", "max_items", "max_keys"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ArgumentLimits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = ArgumentLimits()

_TYPE_WORDS = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "null": "null", "array": "a list", "object": "an object",
}
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class _Invalid(Exception):
    """One validation failure: where (a dotted path, "" for the arguments object) and what."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def text(self) -> str:
        return f'argument "{self.path}": {self.message}' if self.path else self.message


def validate_arguments(tool: Tool, arguments: str | bytes | Mapping[str, Any], limits: ArgumentLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The keyword arguments to call ``tool`` with, from model-written ``arguments``.

    Raises ``ToolCallError`` (``.tool`` set) with a short message for the model when the
    arguments are not JSON, break a size cap, do not match ``tool.parameters`` or fail the
    signature's own pydantic validators.
    """
    if tool.injected:
        try:
            data = _as_json(arguments, limits)
        except _Invalid as exc:
            raise ToolCallError(exc.text(), tool=tool.name) from None
        for name in tool.injected:
            if name in data:  # the model may not set what the application injects (a user id, a handle)
                raise ToolCallError(f'argument "{name}" is set by the application, not by the model; leave it out', tool=tool.name)
        arguments = data
    data = check_arguments(tool.parameters, arguments, limits, tool_name=tool.name)
    return tool.convert(data)


def check_arguments(
    schema: Mapping[str, Any],
    arguments: str | bytes | Mapping[str, Any],
    limits: ArgumentLimits = DEFAULT_LIMITS,
    *,
    tool_name: str | None = None,
) -> dict[str, Any]:
    """Steps 1 and 2 only: the arguments as a fresh JSON dict that matches ``schema``."""
    try:
        data = _as_json(arguments, limits)
        _check(schema, data, "")
    except _Invalid as exc:
        raise ToolCallError(exc.text(), tool=tool_name) from None
    return data


def schema_error(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why a JSON value does not match a normalized schema, or None when it does."""
    try:
        _check(schema, value, "")
    except _Invalid as exc:
        return exc.text()
    return None


# --- step 1: JSON and size caps ---------------------------------------------------------


def _as_json(arguments: Any, limits: ArgumentLimits) -> dict[str, Any]:
    if isinstance(arguments, (bytes, bytearray)):
        try:
            arguments = bytes(arguments).decode("utf-8")
        except UnicodeDecodeError:
            raise _Invalid("", "arguments are not valid UTF-8") from None
    if isinstance(arguments, str):
        data = _parse(arguments, limits)
    elif isinstance(arguments, Mapping):
        arguments = dict(arguments)
        _walk(arguments, "", 1, limits)
        # A compact dump measures the size and gives a fresh copy the tool may keep or change.
        text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        if len(text) > limits.max_json_chars:
            raise _Invalid("", f"arguments too long ({len(text)} characters; the limit is {limits.max_json_chars})")
        data = json.loads(text)
    else:
        raise _Invalid("", f"arguments must be a JSON object, got {_show(arguments)}")
    if not isinstance(data, dict):
        raise _Invalid("", f"arguments must be a JSON object, got {_show(data)}")
    return data


class _BadToken(ValueError):
    pass


def _no_constants(token: str) -> Any:
    raise _BadToken(f"{token} is not allowed; write a finite number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadToken(f"key {_show(key)} appears twice in one object")
        out[key] = value
    return out


def _parse(text: str, limits: ArgumentLimits) -> Any:
    if len(text) > limits.max_json_chars:
        raise _Invalid("", f"arguments too long ({len(text)} characters; the limit is {limits.max_json_chars})")
    # Measure nesting before parsing, so a deeply nested text never reaches the recursive parser.
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", _STRING_LITERAL.sub("", text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > limits.max_depth:
        raise _Invalid("", f"arguments nested deeper than {limits.max_depth} levels")
    try:
        data = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except _BadToken as exc:
        raise _Invalid("", f"arguments are not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _Invalid("", f"arguments are not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (ValueError, RecursionError):  # e.g. an integer with thousands of digits
        raise _Invalid("", "arguments are not valid JSON (a number is too long)") from None
    _walk(data, "", 1, limits)
    return data


def _walk(value: Any, path: str, depth: int, limits: ArgumentLimits) -> None:
    """Checks that ``value`` is plain JSON within the caps (types, not the schema)."""
    if isinstance(value, str):
        if len(value) > limits.max_string_chars:
            raise _Invalid(path, f"text too long ({len(value)} characters; the limit is {limits.max_string_chars})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Invalid(path, "text holds an invalid unicode escape (a lone surrogate)") from None
    elif value is None or isinstance(value, (bool, int)):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(path, "NaN and Infinity are not allowed; write a finite number")
    elif isinstance(value, (dict, list)):
        if depth > limits.max_depth:
            raise _Invalid(path, f"nested deeper than {limits.max_depth} levels")
        limit = limits.max_keys if isinstance(value, dict) else limits.max_items
        if len(value) > limit:
            kind = "keys" if isinstance(value, dict) else "items"
            raise _Invalid(path, f"too many {kind} ({len(value)}; the limit is {limit})")
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, f"{path}[{i}]", depth + 1, limits)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(path, f"object keys must be strings, got {_show(key)}")
            _walk(key, path, depth, limits)
            _walk(item, _join(path, key), depth + 1, limits)
    else:
        raise _Invalid(path, f"a {type(value).__name__} is not a JSON value")


# --- step 2: the schema -----------------------------------------------------------------


def _check(schema: Mapping[str, Any], value: Any, path: str) -> None:
    if "anyOf" in schema:
        _check_any(schema, value, path)
        return
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        raise _Invalid(path, f"expected {_expect(schema)}, got {_show(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        raise _Invalid(path, f"expected {_expect(schema)}, got {_show(value)}")
    if kind == "string":
        _check_range(len(value), schema, "minLength", "maxLength", "characters", path)
    elif kind in ("integer", "number"):
        _check_bounds(value, schema, path)
    elif kind == "array":
        _check_range(len(value), schema, "minItems", "maxItems", "items", path)
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{i}]")
    elif kind == "object":
        if "properties" in schema:
            _check_record(schema, value, path)
        else:
            for key, item in value.items():
                _check(schema["additionalProperties"], item, _join(path, key))


def _check_any(schema: Mapping[str, Any], value: Any, path: str) -> None:
    failures: list[tuple[Mapping[str, Any], _Invalid]] = []
    for branch in schema["anyOf"]:
        try:
            _check(branch, value, path)
            return
        except _Invalid as exc:
            failures.append((branch, exc))
    # When exactly one branch has the value's type, its (deeper) reason is the useful one.
    typed = [exc for branch, exc in failures if "enum" not in branch and _is_type(value, branch.get("type"))]
    if len(typed) == 1:
        raise typed[0]
    raise _Invalid(path, f"expected {_expect(schema)}, got {_show(value)}")


def _check_record(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> None:
    props, required = schema["properties"], schema["required"]
    unexpected = [k for k in value if k not in props]
    missing = [k for k in required if k not in value]
    if unexpected or missing:
        noun = "key" if path else "argument"
        parts = []
        if unexpected:
            parts.append(f"unexpected {noun}{'s' if len(unexpected) > 1 else ''} {_names(unexpected)}")
        if missing:
            parts.append(f"missing required {noun}{'s' if len(missing) > 1 else ''} {_names(missing)}")
        parts.append(f"the {noun}s are: {', '.join(props)}" if props else f"it takes no {noun}s")
        raise _Invalid(path, "; ".join(parts))
    for key, sub in props.items():
        if key in value:
            _check(sub, value[key], _join(path, key))


def _check_range(size: int, schema: Mapping[str, Any], low: str, high: str, unit: str, path: str) -> None:
    if low in schema and size < schema[low]:
        raise _Invalid(path, f"expected at least {schema[low]} {unit}, got {size}")
    if high in schema and size > schema[high]:
        raise _Invalid(path, f"expected at most {schema[high]} {unit}, got {size}")


def _check_bounds(value: int | float, schema: Mapping[str, Any], path: str) -> None:
    tests = (
        ("minimum", lambda b: value >= b, "at least"),
        ("exclusiveMinimum", lambda b: value > b, "more than"),
        ("maximum", lambda b: value <= b, "at most"),
        ("exclusiveMaximum", lambda b: value < b, "less than"),
    )
    for key, ok, words in tests:
        if key in schema and not ok(schema[key]):
            raise _Invalid(path, f"expected a number {words} {schema[key]}, got {_show(value)}")


def _is_type(value: Any, kind: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality for enum members: true is not 1, and 1.0 is not the integer 1."""
    return type(a) is type(b) and a == b


# --- messages ---------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    key = key if len(key) <= 40 else key[:37] + "..."
    key = json.dumps(key, ensure_ascii=False)[1:-1]  # a map key may hold quotes or control characters
    return f"{path}.{key}" if path else key


def _names(keys: list[str]) -> str:
    shown = ", ".join(_show(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _expect(schema: Mapping[str, Any]) -> str:
    if "anyOf" in schema:
        words: list[str] = []
        for branch in schema["anyOf"]:
            word = _expect(branch)
            if word not in words:
                words.append(word)
        return " or ".join(words)
    if "enum" in schema:
        values = schema["enum"]
        shown = ", ".join(json.dumps(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        return f"one of {shown}" if len(values) > 1 else shown
    return _TYPE_WORDS.get(schema.get("type", ""), "a value")


def _show(value: Any) -> str:
    """A short picture of a model-written value for an error message."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        digits = len(str(abs(value))) if value.bit_length() < 4000 else None
        return str(value) if digits is not None and digits <= 20 else "a very long integer"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "a non-finite number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"
