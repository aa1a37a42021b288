"""Matching a JSON value against a normalized tool schema (``tools.schema``), with reasons.

Pure and strict, with no coercion: ``"1.5"`` is not a number, ``true`` is not an integer,
``1.0`` is a number but not an integer, and an unexpected key is an error, as is a missing
required one. A failure names where (a dotted path) and what, in a short message meant to go
back to the model, e.g. ``argument "city": expected a string, got 42``.

``schema_error`` is the public entry (``tools.hints`` checks defaults with it);
``tools.validation`` builds the checker of tool calls on the private parts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["schema_error"]

_TYPE_WORDS = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "null": "null", "array": "a list", "object": "an object",
}


class _Invalid(Exception):
    """One validation failure: where (a dotted path, "" for the arguments object) and what."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def text(self) -> str:
        return f'argument "{self.path}": {self.message}' if self.path else self.message


def schema_error(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why a JSON value does not match a normalized schema, or None when it does."""
    try:
        _check(schema, value, "")
    except _Invalid as exc:
        return exc.text()
    return None


# --- the match -------------------------------------------------------------------------


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
