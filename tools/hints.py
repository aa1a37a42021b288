"""JSON schema from Python type hints, for the arguments of ``@tool`` functions.

Supported hints and what they become (see ``tools.schema`` for the subset):

==============================  ===============================================
``str`` / ``int`` / ``float``   ``string`` / ``integer`` / ``number``
``bool`` / ``None``             ``boolean`` / ``null``
``list[X]``                     ``array`` of X
``dict[str, X]``                ``object`` map with X values
``X | Y``, ``Optional[X]``      ``anyOf``
``Literal[...]``, an ``Enum``   ``enum`` (str, int, bool or None values)
a pydantic ``BaseModel``        ``object`` record (nested models too, not recursive)
a dataclass, a ``TypedDict``    ``object`` record, like a model (a ``TypedDict`` from
                                ``typing_extensions`` on Python < 3.12, as pydantic asks)
``Annotated[X, ...]``           X plus a description (a plain string or ``Field``), bounds
                                (``ge``/``gt``/``le``/``lt``), lengths (``min_length``/
                                ``max_length``); pydantic validators are allowed and run
                                when arguments are converted, as do ``StringConstraints``'
                                conversions (``strip_whitespace``, ``to_lower``, ...);
                                ``conint``/``confloat``/``constr`` are such ``Annotated`` types
==============================  ===============================================

Anything else (``Any``, bare ``list``/``dict``, tuples, sets, ``datetime``,
recursive models, ``pattern``/``multiple_of`` constraints, ...) fails with a
``ToolDefinitionError`` naming the parameter, when the tool is defined.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import annotated_types as at
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator, RootModel, WrapValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from typing_extensions import is_typeddict  # knows both typing.TypedDict and typing_extensions.TypedDict

from orchestrator.errors import ToolDefinitionError
from tools.docstrings import parse_docstring
from tools.schema_match import schema_error

__all__ = ["NO_DEFAULT", "json_default", "schema_for_hint"]

_SCALARS: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_IGNORED_META = (at.Timezone,)  # harmless annotations that add nothing to a schema
_VALIDATORS = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)
NO_DEFAULT: Any = object()
"""What ``json_default`` returns for a default that cannot be shown in a schema."""
_SUPPORTED = "str, int, float, bool, list[X], dict[str, X], X | None, Literal, an Enum, a pydantic model, a dataclass or a TypedDict"
# What StringConstraints and con*() may say beside bounds and lengths: conversions pydantic applies
# when arguments are converted (never a constraint the schema would need to state).
_CONVERSIONS = frozenset({"strip_whitespace", "to_lower", "to_upper", "strict", "allow_inf_nan", "coerce_numbers_to_str"})


def schema_for_hint(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema of values of type ``hint``; ``where`` names it in errors ("parameter 'x'")."""
    return _hint(hint, where, ())


def json_default(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` as JSON for a schema's ``default``, or ``NO_DEFAULT`` when it has no JSON form
    or does not itself match the schema (``x: int = None`` documents no default)."""
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        value = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return NO_DEFAULT
    return NO_DEFAULT if schema_error(schema, value) else value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def _hint(hint: Any, where: str, models: tuple[type, ...]) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _apply_metadata(_hint(args[0], where, models), args[1:], where)
    if any(hint is t for t in _SCALARS):
        return {"type": _SCALARS[hint]}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if origin is Union or origin is types.UnionType:
        return {"anyOf": [_hint(a, where, models) for a in args]}
    if origin is Literal:
        return _enum_schema(list(args), where)
    if origin is list and args:
        return {"type": "array", "items": _hint(args[0], f"{where}[]", models)}
    if origin is dict and args:
        if args[0] is not str:
            raise ToolDefinitionError(f"{where}: dict keys must be str (JSON object keys are strings), not {_name(args[0])}")
        return {"type": "object", "additionalProperties": _hint(args[1], f"{where}{{}}", models)}
    if hint in (list, dict) or origin in (list, dict):
        raise ToolDefinitionError(f"{where}: give the item type, e.g. list[str] or dict[str, int], not bare {_name(hint)}")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_schema([m.value for m in hint], where)
    if isinstance(hint, type) and issubclass(hint, BaseModel) and not issubclass(hint, RootModel):
        return _model_schema(hint, where, models)
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or is_typeddict(hint)):
        return _record_schema(hint, where, models)
    if isinstance(hint, (str, type(None))) or type(hint).__name__ == "ForwardRef":
        raise ToolDefinitionError(f"{where}: the type hint {hint!r} could not be resolved; define the type at module level")
    raise ToolDefinitionError(f"{where}: type {_name(hint)} is not supported; use {_SUPPORTED}")


def _enum_schema(values: list[Any], where: str) -> dict[str, Any]:
    if not values:
        raise ToolDefinitionError(f"{where}: an enum needs at least one value")
    for v in values:
        if not isinstance(v, (str, int, float, bool, type(None))) or (isinstance(v, float) and not math.isfinite(v)):
            raise ToolDefinitionError(f"{where}: enum value {v!r} is not a JSON scalar (str, int, float, bool, None)")
    kinds = {_kind(v) for v in values}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def _kind(value: Any) -> str:
    for t in (bool, int, float, str):  # bool first: it is an int too
        if isinstance(value, t):
            return _SCALARS[t]
    return "null"


def _model_schema(model: type[BaseModel], where: str, models: tuple[type, ...]) -> dict[str, Any]:
    if model in models:
        raise ToolDefinitionError(f"{where}: model {model.__name__} contains itself; recursive models are not supported")
    props: dict[str, Any] = {}
    required: list[str] = []
    for fname, info in model.model_fields.items():
        alias = info.validation_alias if info.validation_alias is not None else info.alias
        if alias is not None and not isinstance(alias, str):
            raise ToolDefinitionError(f"{where}: field {fname!r} of {model.__name__} uses AliasPath/AliasChoices; use a plain alias")
        key = alias or fname
        if key in props:
            raise ToolDefinitionError(f"{where}: two fields of {model.__name__} are both named {key!r} in JSON")
        sub_where = f"{where}.{key}"
        sub = _apply_metadata(_hint(info.annotation, sub_where, (*models, model)), info.metadata, sub_where)
        if info.description:
            sub["description"] = info.description
        if info.is_required():
            required.append(key)
        elif info.default_factory is None:
            default = json_default(info.default, sub)
            if default is not NO_DEFAULT:
                sub["default"] = default
        props[key] = sub
    schema: dict[str, Any] = {"type": "object"}
    description = parse_docstring(model.__doc__).description
    if description:
        schema["description"] = description
    schema.update(properties=props, required=required, additionalProperties=False)
    return schema


def _record_schema(hint: type, where: str, models: tuple[type, ...]) -> dict[str, Any]:
    """A dataclass or a TypedDict as an object record (as pydantic validates them)."""
    if hint in models:
        raise ToolDefinitionError(f"{where}: {hint.__name__} contains itself; recursive types are not supported")
    try:
        hints = get_type_hints(hint, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolDefinitionError(f"{where}: cannot resolve the type hints of {hint.__name__} ({exc})") from None
    docs = parse_docstring(hint.__doc__)
    props: dict[str, Any] = {}
    required: list[str] = []
    if dataclasses.is_dataclass(hint):
        fields = [(f.name, f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f.default)
                  for f in dataclasses.fields(hint) if f.init]
    else:
        # Required[X]/NotRequired[X] read from the resolved hints (with postponed annotations
        # __required_keys__ cannot see them), else the class's totality
        total = getattr(hint, "__total__", True)
        fields = [(k, _marked(h, total), dataclasses.MISSING) for k, h in hints.items()]
        hints = {k: _required_stripped(h) for k, h in hints.items()}
    for key, needed, default in fields:
        sub = _hint(hints[key], f"{where}.{key}", (*models, hint))
        if docs.params.get(key) and "description" not in sub:
            sub["description"] = docs.params[key]
        if needed:
            required.append(key)
        elif default is not dataclasses.MISSING and (value := json_default(default, sub)) is not NO_DEFAULT:
            sub["default"] = value
        props[key] = sub
    schema: dict[str, Any] = {"type": "object"}
    if docs.description and not docs.description.startswith(f"{hint.__name__}("):  # not the dataclass's generated repr
        schema["description"] = docs.description
    schema.update(properties=props, required=required, additionalProperties=False)
    return schema


def _marker(hint: Any) -> str | None:
    origin = get_origin(hint)
    name = getattr(origin, "_name", None) or str(origin)
    return next((m for m in ("NotRequired", "Required") if name.endswith(m)), None)


def _marked(hint: Any, total: bool) -> bool:
    """Whether a TypedDict key is required: its Required/NotRequired marker, else the totality."""
    marker = _marker(hint)
    return total if marker is None else marker == "Required"


def _required_stripped(hint: Any) -> Any:
    """``NotRequired[X]`` / ``Required[X]`` as X."""
    while _marker(hint) is not None:
        hint = get_args(hint)[0]
    return hint


def _flatten(metadata: tuple[Any, ...] | list[Any]) -> list[Any]:
    """Metadata items, with grouped ones (``Interval``, ``Len``, ``StringConstraints``) spread out;
    ``None`` placeholders (``conint()`` leaves them for unset options) dropped."""
    out: list[Any] = []
    for m in metadata:
        if m is None:
            continue
        if isinstance(m, at.GroupedMetadata) and not isinstance(m, FieldInfo):
            out.extend(_flatten(list(m)))
        else:
            out.append(m)
    return out


def _apply_metadata(schema: dict[str, Any], metadata: tuple[Any, ...] | list[Any], where: str) -> dict[str, Any]:
    for m in _flatten(metadata):
        if isinstance(m, str):
            schema["description"] = m
        elif isinstance(m, FieldInfo):
            if m.default is not PydanticUndefined or m.default_factory is not None:
                raise ToolDefinitionError(f"{where}: put the default in the signature, not in Field()")
            if m.alias or m.validation_alias:
                raise ToolDefinitionError(f"{where}: Field aliases are not supported here; rename the parameter")
            if m.description:
                schema["description"] = m.description
            if m.examples:
                schema["examples"] = list(m.examples)
            _apply_metadata(schema, m.metadata, where)
        elif isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt)):
            key, bound = {at.Ge: ("minimum", "ge"), at.Gt: ("exclusiveMinimum", "gt"),
                          at.Le: ("maximum", "le"), at.Lt: ("exclusiveMaximum", "lt")}[type(m)]
            value = getattr(m, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ToolDefinitionError(f"{where}: the bound {bound}={value!r} must be a finite number")
            _constrain(schema, ("integer", "number"), key, value, where)
        elif isinstance(m, (at.MinLen, at.MaxLen)):
            low = isinstance(m, at.MinLen)
            value = m.min_length if low else m.max_length
            target = _constrain(schema, ("string", "array"), "", value, where)
            key = ("minLength" if low else "maxLength") if target["type"] == "string" else ("minItems" if low else "maxItems")
            target[key] = value
        elif isinstance(m, _VALIDATORS) or type(m).__name__ in ("Strict", "AllowInfNan") or isinstance(m, _IGNORED_META):
            continue  # validators run when arguments are converted; we are always strict, never allow NaN
        elif getattr(m, "pattern", None) is not None:
            raise ToolDefinitionError(f"{where}: pattern constraints are not supported; use Literal/Enum or check inside the tool")
        elif type(m).__name__ == "_PydanticGeneralMetadata" and {k for k, v in vars(m).items() if v is not None} <= _CONVERSIONS:
            continue  # strip_whitespace, to_lower, ...: pydantic applies them when arguments are converted
        else:
            raise ToolDefinitionError(f"{where}: Annotated metadata {m!r} is not supported")
    return schema


def _constrain(schema: dict[str, Any], kinds: tuple[str, ...], key: str, value: Any, where: str) -> dict[str, Any]:
    """Puts ``key: value`` on the schema, or on its one non-null branch for ``X | None``."""
    target = schema
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        target = branches[0] if len(branches) == 1 else schema
    if target.get("type") not in kinds:
        raise ToolDefinitionError(f"{where}: this constraint only applies to {' or '.join(kinds)} values")
    if key:
        target[key] = value
    return target
