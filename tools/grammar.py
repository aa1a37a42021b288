"""Tool JSON schemas turned into llama.cpp GBNF, so a small model's tool call always parses and validates.

``schema_to_gbnf(schema)`` writes a grammar for one JSON value of a schema; ``tool_call_grammar(tools)``
one for a single call ``{"name": "<tool>", "arguments": {...}}`` in which each tool name is followed
only by its own arguments; ``parse_tool_call(text)`` reads such a call back.

It fails closed: a schema it cannot enforce exactly raises ``ToolDefinitionError`` (when the tool is
defined), never a fallback to unconstrained JSON. It writes a subset of what the schema allows:

- objects: required properties, then each optional one present or not, in ``properties`` order;
  no other key (``additionalProperties`` absent or false; objects listing no properties are refused);
  maps, ``additionalProperties`` a schema and no ``properties``: up to ``max_items`` keys (a key
  written twice is left to the validator, which refuses it);
- strings: ``minLength``/``maxLength`` (default cap ``DEFAULT_MAX_STRING_LENGTH``), no raw control
  characters, escapes ``\\" \\\\ \\/ \\n \\r \\t`` only (raw UTF-8 instead of ``\\u``: no lone surrogates);
- integers: no leading zeros, at most 15 digits; ``minimum``/``maximum`` and exclusive bounds exactly;
- numbers: no exponent, NaN or Infinity, at most 15 digits each side of the point; whole-number
  ``minimum``/``maximum`` exactly (fractional or exclusive bounds are refused);
- arrays: ``items``, ``minItems``/``maxItems`` (default cap ``DEFAULT_MAX_ITEMS``);
- ``enum``/``const`` as JSON literals; ``anyOf``; ``oneOf`` whose branches are provably disjoint
  (by type, literal values or a required tag property); type lists such as ``["string", "null"]``;
  local ``$ref`` without recursion; a single-schema ``allOf``; annotations are ignored;
- whitespace: at most one space, or a newline and up to 12 spaces, between tokens.

Everything else is refused: ``pattern``, ``format``, ``multipleOf``, ``uniqueItems``, ``prefixItems``,
``patternProperties``, ``additionalProperties`` true or a schema, recursive or remote ``$ref``, schemas
that do not say what kind of value they want, any unknown keyword.

The work is bounded before and while it is done, since schemas are untrusted input: at most
``MAX_PROPERTIES`` object properties, ``MAX_ENUM_VALUES`` enum/const values and ``MAX_BRANCHES``
branches per ``anyOf``/``oneOf`` in one grammar, schemas nested at most ``MAX_DEPTH`` levels, and
a grammar of at most ``MAX_GRAMMAR_CHARS`` characters (``GrammarError`` as soon as the text being
built passes it). The grammar grows linearly with the schema: each optional property's rule refers
to the rule of the properties after it, instead of spelling out every combination.

Every value is finite, so constrained decoding always ends; but the default caps are generous: give
strings ``maxLength`` and arrays ``maxItems`` (or lower the ``max_*`` arguments) so that the longest
call fits the request's ``max_tokens``, since a call cut by the token limit is not JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import GrammarError, ToolCallError, ToolDefinitionError
from tools.gbnf_numbers import group, int_bounds, int_range, number_bounds, repeat
from tools.nesting import nesting_problem

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_STRING_LENGTH",
    "MAX_BRANCHES",
    "MAX_DEPTH",
    "MAX_ENUM_VALUES",
    "MAX_GRAMMAR_CHARS",
    "MAX_PROPERTIES",
    "parse_tool_call",
    "schema_to_gbnf",
    "tool_call_grammar",
]

DEFAULT_MAX_STRING_LENGTH = 200
DEFAULT_MAX_ITEMS = 16
MAX_GRAMMAR_CHARS = 1_000_000
"""Longest grammar text built (the same cap as ``GenerationRequest.grammar``)."""
MAX_PROPERTIES = 5_000
"""Most object properties in one grammar, all schemas together."""
MAX_ENUM_VALUES = 5_000
"""Most enum/const values in one grammar, all schemas together."""
MAX_BRANCHES = 64
"""Most branches of one ``anyOf``/``oneOf`` (``oneOf`` compares every pair)."""
MAX_DEPTH = 32
"""Deepest nesting of schemas inside schemas."""
_MAX_JSON_DEPTH = 4 * MAX_DEPTH  # raw JSON nesting, checked before any recursive walk

_ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
                "writeOnly", "$schema", "$defs", "definitions", "discriminator"}
_BY_TYPE = {
    "object": {"properties", "required", "additionalProperties", "unevaluatedProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"minLength", "maxLength"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum"},
    "boolean": set(), "null": set(),
}
_KNOWN = _ANNOTATIONS | {"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"} | set().union(*_BY_TYPE.values())

_COMMON_RULES = {
    "ws": r'| " " | "\n" " "{0,12}',
    "char": r'[^"\\\x00-\x1F\x7F] | "\\" ["\\/nrt]',
}
_LIT_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", **{c: f"\\x{c:02X}" for c in [*range(0x20), 0x7F]}}


def _lit(text: str) -> str:
    """A GBNF literal matching ``text`` exactly."""
    return '"' + text.translate(_LIT_ESCAPES) + '"'


def _json_lit(value: Any) -> str:
    try:
        return _lit(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"enum/const value {value!r} is not JSON: {exc}") from None


def _type_of(value: Any) -> str:
    """A value's JSON Schema type (1.0 is an integer there too)."""
    if isinstance(value, float) and value.is_integer():
        return "integer"
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, dict) else "?")


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if t is None:  # say nothing about the type, but only one kind of value has these keywords
        inferred = [k for k in ("object", "array", "string") if _BY_TYPE[k] & schema.keys()]
        if len(inferred) == 1:
            return inferred
        raise ToolDefinitionError(f"schema {json.dumps(schema, default=str)[:80]} does not say what type it wants")
    types = [t] if isinstance(t, str) else list(t) if isinstance(t, list) else []
    if not types or any(x not in _BY_TYPE for x in types):
        raise ToolDefinitionError(f"unknown type {t!r}")
    return list(dict.fromkeys(types))


class _Builder:
    """Collects named rules; each schema becomes a rule whose name is returned."""

    def __init__(self, max_string_length: int, max_items: int) -> None:
        if max_string_length < 0 or max_items < 0:
            raise ToolDefinitionError("max_string_length and max_items must not be negative")
        self.max_string, self.max_items = max_string_length, max_items
        self.rules: dict[str, str] = {}
        self._names: dict[str, str] = {}  # body -> name, so equal rules are written once
        self._suffix: dict[str, int] = {}  # base name -> last number tried, so naming stays linear
        self._refs: dict[tuple[int, str], str] = {}
        self._active: list[tuple[int, str]] = []
        self._chars = 0  # grammar text so far
        self._depth = 0
        self._properties = 0
        self._enum_values = 0

    def rule(self, hint: str, body: str) -> str:
        if body in self._names:
            return self._names[body]
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-")[:40] or "value"
        name, i = base, self._suffix.get(base, 1)
        if i > 1:
            name = f"{base}-{i}"
        while name in self.rules or name in _COMMON_RULES or name == "root":
            i += 1
            name = f"{base}-{i}"
        self._suffix[base] = i
        self.grow(len(name) + len(body) + 5)
        self.rules[name], self._names[body] = body, name
        return name

    def grow(self, chars: int) -> None:
        """Counts grammar text as it is written; past ``MAX_GRAMMAR_CHARS`` the build stops."""
        self._chars += chars
        if self._chars > MAX_GRAMMAR_CHARS:
            raise GrammarError(f"the tool schemas need a grammar longer than {MAX_GRAMMAR_CHARS} characters; simplify them")

    def count(self, what: str, n: int) -> None:
        """Counts properties or enum values before they are turned into grammar text."""
        if what == "properties":
            self._properties += n
            total, cap = self._properties, MAX_PROPERTIES
        else:
            self._enum_values += n
            total, cap = self._enum_values, MAX_ENUM_VALUES
        if total > cap:
            raise ToolDefinitionError(f"the tool schemas hold more than {cap} {what} in all; a grammar is built for at most that many")

    def grammar(self, root: str) -> str:
        used = {k: v for k, v in _COMMON_RULES.items() if re.search(rf"\b{k}\b", root + " ".join(self.rules.values()))}
        return "\n".join(f"{n} ::= {b}" for n, b in {"root": root, **self.rules, **used}.items()) + "\n"

    # -- schemas -------------------------------------------------------------------------------

    def value(self, schema: Any, doc: dict, hint: str) -> str:
        if self._depth >= MAX_DEPTH:
            raise ToolDefinitionError(f"{hint}: schemas nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return self._value(schema, doc, hint)
        finally:
            self._depth -= 1

    def _value(self, schema: Any, doc: dict, hint: str) -> str:
        if schema is True or schema == {}:
            raise ToolDefinitionError(f"{hint}: a schema that allows any value cannot be constrained; give it a type")
        if not isinstance(schema, dict):
            raise ToolDefinitionError(f"{hint}: a schema must be an object, not {json.dumps(schema, default=str)[:80]}")
        unknown = sorted(schema.keys() - _KNOWN)
        if unknown:
            raise ToolDefinitionError(f"{hint}: unsupported schema keyword(s) {', '.join(unknown)}")
        extra = sorted(schema.keys() - _ANNOTATIONS - {"$ref", "anyOf", "oneOf", "allOf"})
        for key in ("$ref", "anyOf", "oneOf", "allOf"):
            if key in schema and (extra or len(schema.keys() & {"$ref", "anyOf", "oneOf", "allOf"}) > 1):
                raise ToolDefinitionError(f"{hint}: {key} next to other constraints is not supported")
        if "$ref" in schema:
            return self._ref(schema["$ref"], doc, hint)
        if "allOf" in schema:
            if not isinstance(schema["allOf"], list) or len(schema["allOf"]) != 1:
                raise ToolDefinitionError(f"{hint}: allOf is supported only with a single schema")
            return self.value(schema["allOf"][0], doc, hint)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not isinstance(branches, list) or not branches:
                    raise ToolDefinitionError(f"{hint}: {key} needs a non-empty list of schemas")
                if len(branches) > MAX_BRANCHES:
                    raise ToolDefinitionError(f"{hint}: {key} has more than {MAX_BRANCHES} branches")
                shapes = [_shape(_deref(b, doc)) for b in branches] if key == "oneOf" else []
                if not all(_apart(a, b) for i, a in enumerate(shapes) for b in shapes[i + 1:]):
                    raise ToolDefinitionError(f"{hint}: oneOf branches may overlap (a value could match two)")
                return self.rule(hint, " | ".join(self.value(b, doc, f"{hint}-{i}") for i, b in enumerate(branches, 1)))
        if "enum" in schema or "const" in schema:
            return self.rule(hint, self._literals(schema, hint))
        body = " | ".join(self._typed(t, schema, doc, hint) for t in _types(schema))
        return body if re.fullmatch(r"[a-zA-Z0-9-]+", body) else self.rule(hint, body)

    def _ref(self, ref: Any, doc: dict, hint: str) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ToolDefinitionError(f"{hint}: only local $ref ('#/$defs/...') is supported, not {ref!r}")
        key = (id(doc), ref)
        if key in self._active:
            raise ToolDefinitionError(f"{hint}: recursive $ref {ref!r} cannot become a finite grammar")
        if key not in self._refs:
            self._active.append(key)
            try:
                self._refs[key] = self.value(_resolve(doc, ref), doc, ref.rsplit("/", 1)[-1] or hint)
            finally:
                self._active.pop()
        return self._refs[key]

    def _literals(self, schema: dict, hint: str) -> str:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        if not isinstance(values, list) or not values:
            raise ToolDefinitionError(f"{hint}: enum must be a non-empty list")
        self.count("enum values", len(values))
        if "const" in schema and "enum" in schema and schema["const"] not in schema["enum"]:
            raise ToolDefinitionError(f"{hint}: const is not one of the enum values")
        rest = schema.keys() - _ANNOTATIONS - {"enum", "const", "type"}
        if rest:
            raise ToolDefinitionError(f"{hint}: enum/const next to {', '.join(sorted(rest))} is not supported")
        types = _types(schema) if "type" in schema else None
        types = types and types + (["integer"] if "number" in types else [])
        ok = [v for v in values if types is None or _type_of(v) in types]
        if not ok:
            raise ToolDefinitionError(f"{hint}: no enum/const value has the schema's type")
        return " | ".join(dict.fromkeys(_json_lit(v) for v in ok))

    def _typed(self, t: str, s: dict, doc: dict, hint: str) -> str:
        if t in ("boolean", "null"):
            return '"true" | "false"' if t == "boolean" else '"null"'
        if t == "string":
            lo, hi = _count(s, "minLength", 0), _count(s, "maxLength", max(self.max_string, _count(s, "minLength", 0)))
            if lo > hi:
                raise ToolDefinitionError(f"{hint}: minLength is above maxLength")
            return f'"\\"" {repeat("char", lo, hi)} "\\""'.replace('  ', ' ')
        if t == "integer":
            return self.rule(hint + "-int", int_range(*int_bounds(s, hint)))
        if t == "number":
            return self.rule(hint + "-num", number_bounds(s, hint))
        if t == "array":
            return self._array(s, doc, hint)
        return self._object(s, doc, hint)

    def _array(self, s: dict, doc: dict, hint: str) -> str:
        if "items" not in s:
            raise ToolDefinitionError(f"{hint}: an array needs an items schema")
        lo = _count(s, "minItems", 0)
        hi = _count(s, "maxItems", max(self.max_items, lo))
        if lo > hi:
            raise ToolDefinitionError(f"{hint}: minItems is above maxItems")
        if hi == 0:
            return '"[" ws "]"'
        item = self.value(s["items"], doc, hint + "-item")
        more = repeat(f'(ws "," ws {item})', max(lo - 1, 0), hi - 1)
        body = f"{item} {more}".strip()
        return f'"[" ws {body if lo else f"({body})?"} ws "]"'

    def _object(self, s: dict, doc: dict, hint: str) -> str:
        if isinstance(s.get("additionalProperties"), dict) and "properties" not in s and "required" not in s:
            return self._map(s, doc, hint)
        if s.get("additionalProperties", False) is not False or s.get("unevaluatedProperties", False) is not False:
            raise ToolDefinitionError(f"{hint}: only additionalProperties/unevaluatedProperties false are supported")
        if "properties" not in s and "additionalProperties" not in s:
            raise ToolDefinitionError(f"{hint}: an object with any keys cannot be constrained; list its properties")
        props, required = s.get("properties", {}), s.get("required", [])
        if not isinstance(props, dict) or not isinstance(required, list):
            raise ToolDefinitionError(f"{hint}: properties must be an object and required a list")
        self.count("properties", len(props))
        missing = [r for r in required if not isinstance(r, str) or r not in props]
        if missing:
            raise ToolDefinitionError(f"{hint}: required {missing} not among the properties")
        required_set = set(required)  # a set: looking names up in the list would be quadratic
        pairs = {k: f'{_json_lit(k)} ws ":" ws {self.value(v, doc, k)}' for k, v in props.items()}
        req = [pairs[k] for k in props if k in required_set]
        opt = [pairs[k] for k in props if k not in required_set]
        sep = 'ws "," ws'
        if req:  # the required ones in order, then each optional one, in order, present or not
            body = f" {sep} ".join(req) + "".join(f" ({sep} {o})?" for o in opt)
        elif opt:  # which optional property comes first decides where the commas go
            tails = self._tails(opt, hint + "-kv-tail")
            firsts = [f"{o} {tail}".strip() for o, tail in zip(opt, tails, strict=True)]
            body = "(" + " | ".join(firsts) + ")?"
        else:
            return '"{" ws "}"'
        return f'"{{" ws {self.rule(hint + "-kv", body)} ws "}}"'

    def _tails(self, opt: list[str], hint: str) -> list[str]:
        """For each optional property, the rule matching the properties after it, each present or
        not: ``tail-i ::= ("," opt[i+1])? tail-(i+1)``, the last one empty. One rule per property
        refers to the next, so the grammar stays linear in the number of properties (spelling out
        every suffix after every possible first property would be quadratic)."""
        tails = [""] * len(opt)
        for i in range(len(opt) - 2, -1, -1):
            tails[i] = self.rule(hint, f'(ws "," ws {opt[i + 1]})? {tails[i + 1]}'.strip())
        return tails

    def _map(self, s: dict, doc: dict, hint: str) -> str:
        """A map ``{"type": "object", "additionalProperties": {schema}}``: up to ``max_items``
        string keys (up to 64 characters), each with a value of the schema."""
        value = self.value(s["additionalProperties"], doc, hint + "-value")
        pair = self.rule(hint + "-pair", f'"\\"" {repeat("char", 1, 64)} "\\"" ws ":" ws {value}')
        more = repeat(f'(ws "," ws {pair})', 0, self.max_items - 1)
        return f'"{{" ws ({pair} {more})? ws "}}"'.replace("  ", " ")


def _count(s: dict, key: str, default: int) -> int:
    v = s.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ToolDefinitionError(f"{key} must be a non-negative integer, not {v!r}")
    return v


def _resolve(doc: dict, ref: str) -> Any:
    node: Any = doc
    for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise ToolDefinitionError(f"$ref {ref!r} does not resolve")
        node = node[part]
    return node


def _deref(schema: Any, doc: dict, depth: int = 0) -> Any:
    while isinstance(schema, dict) and "$ref" in schema and depth < 32:
        schema, depth = _resolve(doc, schema["$ref"]), depth + 1
    return schema


def _shape(s: Any) -> tuple[set[str], set[str] | None, dict[str, set[str]]] | None:
    """What a oneOf branch may match: JSON types, literal values (or None: any of those types),
    and for objects the literal values of required properties; None when that is not clear."""
    if not isinstance(s, dict) or s.keys() & {"anyOf", "oneOf", "allOf", "$ref"}:
        return None
    if "enum" in s or "const" in s:
        values = [s["const"]] if "const" in s else s["enum"]
        return {_type_of(v) for v in values}, {_canon(v) for v in values}, {}
    types = set(_types(s))
    types |= {"integer"} if "number" in types else set()
    required, props = s.get("required", []), s.get("properties", {})
    tags = {k: shape[1] for k in required if (shape := _shape(props.get(k))) and shape[1] is not None}
    return types, None, tags


def _apart(a: Any, b: Any) -> bool:
    """No value can match both shapes."""
    if a is None or b is None:
        return False
    (ta, va, da), (tb, vb, db) = a, b
    if va is not None and vb is not None:
        return not va & vb
    common = ta & tb
    if common == {"object"} and va is None and vb is None:  # told apart by a tag property
        return any(k in db and not da[k] & db[k] for k in da)
    return not common


def _canon(v: Any) -> str:
    """JSON text of a value, with 1 and 1.0 written alike (JSON Schema counts them equal)."""
    if _type_of(v) in ("integer", "number"):
        return json.dumps(float(v))
    return json.dumps(v, sort_keys=True, default=str)


def schema_to_gbnf(schema: dict, *, max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
                   max_items: int = DEFAULT_MAX_ITEMS) -> str:
    """GBNF text whose ``root`` matches one JSON value of ``schema`` (see the module docstring for
    what is supported); raises ``ToolDefinitionError`` for what it cannot enforce."""
    _check_nesting(schema, "the schema")
    b = _Builder(max_string_length, max_items)
    return b.grammar(b.value(schema, schema, "value"))


def _check_nesting(schema: Any, where: str) -> None:
    """Refuses a schema nested too deeply for the recursive walks below, before any of them runs."""
    problem = nesting_problem(schema, max_depth=_MAX_JSON_DEPTH)
    if problem is not None:
        raise ToolDefinitionError(f"{where} is {problem}")


def tool_call_grammar(tools: Sequence[tuple[str, dict]], *, allow_text: bool = False, trigger: str = "<tool_call>",
                      max_string_length: int = DEFAULT_MAX_STRING_LENGTH, max_items: int = DEFAULT_MAX_ITEMS) -> str:
    """GBNF for exactly one call ``{"name": "<tool>", "arguments": {...}}`` of one of ``tools``
    (``(name, arguments schema)`` pairs); each name is followed only by its own tool's arguments.

    With ``allow_text`` the model may instead write free text, or free text then ``trigger`` then the
    call. The free text cannot contain the trigger's first character: once the model writes it, it
    is committed to the trigger and a valid call (otherwise the text branch could swallow a broken
    call). llama-cpp-python 0.3.36 also exposes lazy grammars (``llama_sampler_init_grammar_lazy``,
    ``llama_sampler_init_grammar_lazy_patterns``) that leave text unconstrained until a trigger;
    this plain grammar works with every sampler and needs no engine support.
    """
    if not tools:
        raise ToolDefinitionError("a tool call grammar needs at least one tool")
    names = [n for n, _ in tools]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ToolDefinitionError(f"tool names must be distinct non-empty strings: {names}")
    b = _Builder(max_string_length, max_items)
    calls = []
    for name, schema in tools:
        _check_nesting(schema, f"tool {name!r}: its arguments schema")
        try:
            is_object = isinstance(schema, dict) and _types(_deref(schema, schema)) == ["object"]
        except ToolDefinitionError:
            is_object = False
        if not is_object:
            raise ToolDefinitionError(f"tool {name!r}: its arguments schema must describe an object")
        if "properties" not in schema and "$ref" not in schema:  # a tool without arguments
            schema = {**schema, "properties": {}}
        args = b.value(schema, schema, f"{name}-args")
        calls.append(b.rule(f"{name}-call", f'{_json_lit(name)} ws "," ws "\\"arguments\\"" ws ":" ws {args}'))
    call = b.rule("call", f'"{{" ws "\\"name\\"" ws ":" ws ({" | ".join(calls)}) ws "}}"')
    if not allow_text:
        return b.grammar(call)
    if not trigger:
        raise ToolDefinitionError("allow_text needs a non-empty trigger")
    first = trigger[0]
    cls = f"\\x{ord(first):02X}" if ord(first) < 0x80 else first
    text = b.rule("free-text", f"[^{cls}]*")
    return b.grammar(f"{text} ({_lit(trigger)} ws {call})?")


def parse_tool_call(text: str, *, trigger: str | None = "<tool_call>") -> tuple[str, dict]:
    """``(name, arguments)`` from a call in ``tool_call_grammar``'s format; text before ``trigger``
    (when present) is skipped. Raises ``ToolCallError`` with a short reason fit for the model."""
    if trigger and trigger in text:
        text = text[text.index(trigger) + len(trigger):]
    text = text.strip()
    if not text.startswith("{"):
        raise ToolCallError("no tool call found: expected a JSON object")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ToolCallError("duplicate key in the tool call")
        return dict(pairs)

    try:
        decoder = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=no_duplicates)
        call, end = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"the tool call is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if text[end:].strip():
        raise ToolCallError("unexpected text after the tool call")
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        raise ToolCallError('a tool call must be {"name": ..., "arguments": {...}} with nothing else')
    name, args = call["name"], call["arguments"]
    if not isinstance(name, str) or not name:
        raise ToolCallError("the tool name must be a non-empty string")
    if not isinstance(args, dict):
        raise ToolCallError("arguments must be a JSON object", tool=name)
    return name, args


def _no_constant(word: str) -> Any:
    raise ToolCallError(f"{word} is not a JSON number")
