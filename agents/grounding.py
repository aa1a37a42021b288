"""Grounded arguments: hold a small model's tool arguments to what the conversation says.

A 135M model's typical wrong call has the right shape and the wrong values: a restaurant name
or an e-mail address copied from a prompt example, an optional argument filled in with
something the user never said. With ``Agent(ground_arguments=True)`` each turn's grammar is
built from a copy of the tool schemas narrowed to the conversation so far (the task and the
tool results):

- a free string (no enum, pattern or format) becomes one of the spans of up to
  ``MAX_SPAN_WORDS`` words of those texts, with quotes and punctuation trimmed at the edges;
- an integer or number becomes one of the numbers written there (digits, or the words "one"
  to "twelve"), within the schema's bounds; with none there, it stays free;
- an enum keeps the values the texts mention, when they mention any; an optional enum they
  do not mention is left out of the call (so it takes its default).

Tools whose arguments are derived rather than quoted (a calculator's expression) opt out with
``@tool(grounded=False)``. The narrowed schema only steers decoding: calls are still validated
against the tool's own schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_SPANS", "MAX_SPAN_WORDS", "ground_schema", "mentioned", "numbers", "spans"]

MAX_SPAN_WORDS = 8
MAX_SPANS = 400  # beyond this a string stays free: a grammar of thousands of literals slows every token
_EDGE = "\"'`.,;:!?()[]{}<>«»“”‘’"
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_WORD_NUMBERS = {w: i for i, w in enumerate("one two three four five six seven eight nine ten eleven twelve".split(), 1)}
_FREE_STRING_KEYS = {"enum", "const", "pattern", "format"}


def spans(texts: Iterable[str]) -> list[str]:
    """Every run of 1 to ``MAX_SPAN_WORDS`` words of the texts, edges trimmed, first seen first."""
    out: dict[str, None] = {}
    for text in texts:
        words = text.split()
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + MAX_SPAN_WORDS) + 1):
                span = " ".join(words[i:j]).strip(_EDGE)
                if span:
                    out.setdefault(span)
                if len(out) >= MAX_SPANS:
                    return list(out)
    return list(out)


def numbers(texts: Iterable[str]) -> list[int | float]:
    """The numbers written in the texts, as digits or as the words one to twelve, first seen first."""
    out: dict[int | float, None] = {}
    for text in texts:
        for m in _NUMBER.finditer(text):
            token = m.group()
            out.setdefault(float(token) if "." in token else int(token))
        for word in re.findall(r"[a-z]+", text.casefold()):
            if word in _WORD_NUMBERS:
                out.setdefault(_WORD_NUMBERS[word])
    return list(out)


def mentioned(value: Any, texts: Iterable[str]) -> bool:
    """Whether the texts say ``value`` as a whole word or phrase (ignoring case)."""
    if not isinstance(value, str) or not value.strip():
        return False
    pattern = re.compile(r"(?<!\w)" + re.escape(value.casefold()) + r"(?!\w)")
    return any(pattern.search(t.casefold()) for t in texts)


def ground_schema(schema: Mapping[str, Any], texts: Iterable[str]) -> dict[str, Any]:
    """A copy of a tool's ``parameters`` schema narrowed to the texts (see the module docstring)."""
    texts = [t for t in texts if t]
    return _ground(dict(schema), texts, spans(texts), numbers(texts))


def _ground(s: dict[str, Any], texts: list[str], words: list[str], nums: list[int | float]) -> dict[str, Any]:
    if "anyOf" in s:
        return {**s, "anyOf": [_ground(dict(b), texts, words, nums) for b in s["anyOf"]]}
    kind = s.get("type")
    if kind == "object" and "properties" in s:
        return _object(s, texts, words, nums)
    if kind == "array" and isinstance(s.get("items"), dict):
        return {**s, "items": _ground(dict(s["items"]), texts, words, nums)}
    if "enum" in s:
        said = [v for v in s["enum"] if mentioned(v, texts)]
        return {**s, "enum": said} if said else s
    if kind == "string" and not (_FREE_STRING_KEYS & s.keys()):
        lo, hi = s.get("minLength", 0), s.get("maxLength", 10**9)
        fit = [w for w in words if lo <= len(w) <= hi]
        return _literal(s, fit) if fit and len(words) < MAX_SPANS else s
    if kind in ("integer", "number"):
        fit = [n for n in nums if (kind == "number" or isinstance(n, int)) and _within(n, s)]
        return _literal(s, fit) if fit else s
    return s


def _object(s: dict[str, Any], texts: list[str], words: list[str], nums: list[int | float]) -> dict[str, Any]:
    required = set(s.get("required", ()))
    props: dict[str, Any] = {}
    for name, prop in s["properties"].items():
        unsaid_enum = "enum" in prop and not any(mentioned(v, texts) for v in prop["enum"])
        if name not in required and unsaid_enum:
            continue  # an optional choice the user did not make: leave it to its default
        props[name] = _ground(dict(prop), texts, words, nums)
    return {**s, "properties": props}


def _literal(s: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """The values as an enum, keeping only the schema's annotations next to it."""
    keep = {k: s[k] for k in ("type", "description", "title", "default") if k in s}
    return {**keep, "enum": values}


def _within(n: float, s: Mapping[str, Any]) -> bool:
    return not (
        ("minimum" in s and n < s["minimum"]) or ("maximum" in s and n > s["maximum"])
        or ("exclusiveMinimum" in s and n <= s["exclusiveMinimum"]) or ("exclusiveMaximum" in s and n >= s["exclusiveMaximum"])
    )
