"""The JSON schema subset of tool arguments: built from type hints, or checked when given raw.

Every ``Tool.parameters`` is a *normalized* schema in this subset, whichever way it was
made, so that the validator can check arguments strictly and the grammar builder can turn
the schema into a grammar without guessing. A normalized node is one of:

- ``{"type": T, ...}`` with T one of ``string`` (``minLength``, ``maxLength``),
  ``integer`` / ``number`` (``minimum``, ``maximum``, ``exclusiveMinimum``,
  ``exclusiveMaximum``), ``boolean``, ``null``, ``array`` (``items`` required,
  ``minItems``, ``maxItems``) or ``object``;
- an object is either a record, ``{"type": "object", "properties": {...}, "required": [...],
  "additionalProperties": false}`` (all three always present), or a map with string keys,
  ``{"type": "object", "additionalProperties": {schema}}`` (no ``properties``);
- ``{"enum": [scalars]}`` (strings, integers, finite numbers, booleans, null), with a
  ``type`` as well when every value has that type; ``const`` becomes a one-value ``enum``;
- ``{"anyOf": [nodes]}`` with no validation keyword beside it (``X | None`` is
  ``anyOf: [X, {"type": "null"}]``; a ``type`` list becomes an ``anyOf``).

Any node may carry ``description``, ``default`` and ``examples``, which change nothing in
validation or grammar. ``title``, ``$comment``, ``$schema`` and ``$id`` are dropped. Local
``$ref`` (``#/$defs/...`` or ``#/definitions/...``) are inlined; a ``$ref`` cycle, any other
keyword (``pattern``, ``oneOf``, ``allOf``, ``not``, ``if``, ``prefixItems``,
``uniqueItems``, ...), ``additionalProperties: true`` or a schema that accepts anything
is refused with a ``ToolDefinitionError`` saying where.

What real APIs write and cannot be enforced is kept as what it is, a description:
``format`` (``"date"``, ``"email"``, ...) is appended to the node's ``description`` as
``(format: date)``. ``optional`` (``true``/``"true"`` on a property, or a list of names on
an object: written by some API descriptions) takes those properties out of ``required``.
A free-form object, ``{"type": "object"}`` with neither ``properties`` nor
``additionalProperties``, becomes a map of JSON values (``FREE_VALUE``: scalars, and lists or
maps of scalars); its description says so, so nothing is narrowed without a word.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from orchestrator.errors import ToolDefinitionError
from tools.nesting import nesting_problem

__all__ = ["FREE_VALUE", "JSON_TYPES", "MAX_SCHEMA_CONTAINERS", "MAX_SCHEMA_DEPTH", "MAX_SCHEMA_JSON_DEPTH", "MAX_SCHEMA_NODES",
           "check_schema_size", "normalize_schema"]

JSON_TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")
MAX_SCHEMA_DEPTH = 32
"""Deepest nesting of schema nodes accepted (a grammar needs a finite, modest schema)."""
MAX_SCHEMA_NODES = 5_000
"""Most schema nodes accepted once every ``$ref`` is inlined (inlining can multiply them)."""
MAX_SCHEMA_JSON_DEPTH = 64
"""Deepest JSON nesting of a raw schema, checked before anything walks it recursively. The
metaschema check takes up to ~9 Python frames per JSON level (measured), so 64 levels stay well
inside the recursion limit (a schema nested 400 levels deep used to raise ``RecursionError``).
A schema level takes one JSON level (``items``) or two (``properties``, ``anyOf``)."""
MAX_SCHEMA_CONTAINERS = 1_000
"""Most JSON objects and lists in a raw schema, checked before the metaschema check, whose cost
grows with them (about 0.6 ms each measured on a busy 2-core machine: 1,000 stay under a second)."""

_ANNOTATIONS = ("description", "default", "examples")
_DROPPED = frozenset({"title", "$comment", "$schema", "$id"})
_BY_TYPE = {
    "string": ("minLength", "maxLength"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "array": ("items", "minItems", "maxItems"),
    "object": ("properties", "required", "additionalProperties"),
    "boolean": (),
    "null": (),
}
_TYPED = frozenset(k for keys in _BY_TYPE.values() for k in keys)
_NOTES = frozenset({"format", "optional"})  # read, then folded into description / required
_KNOWN = _TYPED | _NOTES | {"type", "enum", "const", "anyOf", "$ref", *_ANNOTATIONS}
_SCALARS = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
FREE_VALUE: dict[str, Any] = {"anyOf": [*_SCALARS, {"type": "array", "items": {"anyOf": _SCALARS}},
                                       {"type": "object", "additionalProperties": {"anyOf": _SCALARS}}]}
"""What a free-form object's values may be once normalized: a scalar, or a list or map of scalars."""
_FREE_NOTE = "(free-form: any keys; values are scalars, or lists or maps of scalars)"


def normalize_schema(schema: Mapping[str, Any], *, where: str = "the schema") -> dict[str, Any]:
    """Checks a raw JSON schema for tool arguments and returns its normalized form.

    The schema must be valid Draft 2020-12 (checked against the metaschema), be an object
    at the top, and stay inside the subset described in this module's docstring. The
    result is a new dict; normalizing it again returns an equal dict.
    """
    if not isinstance(schema, Mapping):
        raise ToolDefinitionError(f"{where} must be a dict, got {type(schema).__name__}")
    check_schema_size(schema, where=where)
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.path) or "the top level"
        raise ToolDefinitionError(f"{where} is not a valid JSON schema (at {at}): {exc.message}") from None
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    out = _Normalizer(defs, where).node(schema, "", (), 0)
    if out.get("type") != "object" or "properties" not in out:
        raise ToolDefinitionError(f'{where}: the top level must be {{"type": "object"}} with properties')
    return out


def check_schema_size(schema: Any, *, where: str = "the schema") -> None:
    """Refuses a raw schema nested deeper than ``MAX_SCHEMA_JSON_DEPTH`` JSON levels or made of
    more than ``MAX_SCHEMA_CONTAINERS`` objects and lists, with a ``ToolDefinitionError``. It does
    not recurse and stops at the first limit passed: call it before any other walk of a schema."""
    problem = nesting_problem(schema, max_depth=MAX_SCHEMA_JSON_DEPTH, max_containers=MAX_SCHEMA_CONTAINERS)
    if problem is not None:
        raise ToolDefinitionError(f"{where} is {problem}")


class _Normalizer:
    """One pass over a raw schema: inline refs, check keywords, rewrite into the subset."""

    def __init__(self, defs: Mapping[str, Any], where: str) -> None:
        self.defs = defs
        self.where = where
        self.nodes = 0

    def fail(self, path: str, message: str) -> ToolDefinitionError:
        return ToolDefinitionError(f"{self.where} at {path or 'the top level'}: {message}")

    def node(self, raw: Any, path: str, refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_NODES:
            raise self.fail(path, f"more than {MAX_SCHEMA_NODES} schema nodes once $refs are inlined")
        if depth > MAX_SCHEMA_DEPTH:
            raise self.fail(path, f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
        if not isinstance(raw, Mapping):
            raise self.fail(path, "boolean schemas are not supported; give a typed schema")
        keys = set(raw) - _DROPPED - ({"$defs", "definitions"} if not path else set())
        unknown = sorted(keys - _KNOWN)
        if unknown:
            raise self.fail(path, f"unsupported keyword '{unknown[0]}'")
        if "$ref" in raw:
            return self._ref(raw, keys, path, refs, depth)
        notes = {k: copy.deepcopy(raw[k]) for k in _ANNOTATIONS if k in raw}
        if isinstance(raw.get("format"), str):  # not enforced: said in the description instead
            notes["description"] = f"{notes.get('description', '')} (format: {raw['format']})".strip()
        keys -= _NOTES
        if "anyOf" in raw:
            extra = sorted(keys - {"anyOf", *_ANNOTATIONS})
            if extra:
                raise self.fail(path, f"'{extra[0]}' next to anyOf is not supported; put it inside the branches")
            branches = [self.node(b, f"{path}/anyOf/{i}", refs, depth + 1) for i, b in enumerate(raw["anyOf"])]
            return {"anyOf": branches, **notes}
        types = raw.get("type")
        if isinstance(types, list):
            if len(types) == 1:
                types = types[0]
            else:
                # {"type": [A, B], ...} is anyOf [{"type": A, ...A's keywords}, {"type": B, ...}].
                stray = sorted((keys & _TYPED) - {k for t in types for k in _BY_TYPE[t]})
                if stray:
                    raise self.fail(path, f"'{stray[0]}' does not apply to any of the types {types}")
                # An enum beside the list goes to each branch, cut down to the values of its type.
                enum = [raw["const"]] if "const" in raw else raw.get("enum")
                branches = []
                for t in types:
                    sub = {k: v for k, v in raw.items() if k in _BY_TYPE[t]}
                    if enum is not None:
                        sub["enum"] = [v for v in enum if _json_type(v) in (t, "integer" if t == "number" else t)]
                        if not sub["enum"]:
                            continue
                    branches.append(self.node({"type": t, **sub}, f"{path}/type/{t}", refs, depth + 1))
                if not branches:
                    raise self.fail(path, "no enum value has one of the listed types")
                return {"anyOf": branches, **notes}
        if "const" in raw and "enum" in raw:
            raise self.fail(path, "give enum or const, not both")
        enum = [raw["const"]] if "const" in raw else raw.get("enum")
        if types is None and enum is None:
            raise self.fail(path, "the schema accepts anything; give a type, an enum or anyOf")
        out: dict[str, Any] = {}
        if types is not None:
            out["type"] = types
            misplaced = sorted((keys & _TYPED) - set(_BY_TYPE[types]))
            if misplaced:
                raise self.fail(path, f"'{misplaced[0]}' does not apply to type {types}")
        else:
            misplaced = sorted(keys & _TYPED)
            if misplaced:
                raise self.fail(path, f"'{misplaced[0]}' needs a type beside it")
        if enum is not None:
            out["enum"] = self._enum(enum, types, path)
        if types == "object":
            out.update(self._object(raw, path, refs, depth))
            if path and "properties" not in raw and "additionalProperties" not in raw:
                notes["description"] = f"{notes.get('description', '')} {_FREE_NOTE}".strip()
        elif types == "array":
            if "items" not in raw:
                raise self.fail(path, "an array needs 'items'")
            out["items"] = self.node(raw["items"], f"{path}/items", refs, depth + 1)
        for key in _BY_TYPE.get(types, ()):
            if key in raw and key not in ("items", "properties", "required", "additionalProperties"):
                out[key] = raw[key]
        self._check_ranges(out, path)
        # Key order for people reading prompts: type, description, the rest, default/examples.
        head = {k: out.pop(k) for k in ("type",) if k in out}
        head.update({k: notes.pop(k) for k in ("description",) if k in notes})
        return {**head, **out, **notes}

    def _ref(self, raw: Mapping[str, Any], keys: set[str], path: str, refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        ref = raw["$ref"]
        extra = sorted(keys - {"$ref", *_ANNOTATIONS})
        if extra:
            raise self.fail(path, f"'{extra[0]}' next to $ref is not supported")
        name = None
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                name = ref[len(prefix):]
        if name is None or name not in self.defs:
            raise self.fail(path, f"$ref '{ref}' is not a local #/$defs/ reference that exists")
        if name in refs:
            raise self.fail(path, f"$ref cycle through '{name}' (recursive schemas are not supported)")
        out = self.node(self.defs[name], path, (*refs, name), depth)
        # Annotations written next to the $ref win over the definition's own.
        out.update({k: copy.deepcopy(raw[k]) for k in _ANNOTATIONS if k in raw})
        return out

    def _object(self, raw: Mapping[str, Any], path: str, refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        extra = raw.get("additionalProperties", False)
        if extra is True:
            raise self.fail(path, "additionalProperties: true is not supported; arguments are checked strictly")
        if isinstance(extra, Mapping):
            if "properties" in raw or "required" in raw:
                raise self.fail(path, "an object with properties cannot also take additionalProperties")
            return {"additionalProperties": self.node(extra, f"{path}/additionalProperties", refs, depth + 1)}
        if path and "properties" not in raw and "additionalProperties" not in raw:
            # A free-form object: any keys. Not narrowed to {} (what an empty record would accept).
            return {"additionalProperties": copy.deepcopy(FREE_VALUE)}
        props = {
            name: self.node(sub, f"{path}/properties/{name}", refs, depth + 1)
            for name, sub in raw.get("properties", {}).items()
        }
        optional = set(raw["optional"]) if isinstance(raw.get("optional"), list) else set()
        optional |= {name for name, sub in raw.get("properties", {}).items() if isinstance(sub, Mapping) and _said_yes(sub.get("optional"))}
        required = [r for r in raw.get("required", []) if r not in optional]
        missing = [r for r in required if r not in props]
        if missing:
            raise self.fail(path, f"required names '{missing[0]}', which is not in properties")
        return {"properties": props, "required": required, "additionalProperties": False}

    def _enum(self, values: list[Any], types: str | None, path: str) -> list[Any]:
        for v in values:
            if isinstance(v, float) and not math.isfinite(v) or not isinstance(v, (str, int, float, bool, type(None))):
                raise self.fail(path, f"enum value {v!r} is not a JSON scalar (string, number, boolean, null)")
            if types is not None and _json_type(v) not in (types, "integer" if types == "number" else types):
                raise self.fail(path, f"enum value {v!r} is not of type {types}")
        if not values:
            raise self.fail(path, "enum is empty")
        return list(values)

    def _check_ranges(self, out: Mapping[str, Any], path: str) -> None:
        for low, high in (("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")):
            if low in out and high in out and out[low] > out[high]:
                raise self.fail(path, f"{low} {out[low]} is above {high} {out[high]}")


def _said_yes(value: Any) -> bool:
    """``optional: true`` as APIs write it: a boolean, or the words true / yes."""
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes"))


def _json_type(value: Any) -> str:
    """The JSON type name of a Python value (booleans are not integers; floats are numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
