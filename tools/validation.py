"""Strict validation of model-written tool arguments.

Arguments arrive as JSON text or an already parsed dict. They are checked in three steps:

1. as JSON: the text parses, with no NaN/Infinity, no duplicate keys, and within the size
   caps of ``ArgumentLimits`` (text length, nesting depth, string length, list length,
   object size);
2. against the tool's normalized schema (``tools.schema``) by ``tools.schema_match``, with
   no coercion: ``"1.5"`` is not a number, ``true`` is not an integer, ``1.0`` is a number
   but not an integer, and an unexpected key is an error, as is a missing required one;
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
from tools.schema_match import _check, _Invalid, _join, _show  # step 2 and the shared message parts

if TYPE_CHECKING:
    from tools.tool import Tool

__all__ = ["DEFAULT_LIMITS", "ArgumentLimits", "check_arguments", "validate_arguments"]


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

_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


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
