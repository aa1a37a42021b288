"""tools/: schemas from signatures and raw schemas, strict validation, the registry, built-ins.

No ``from __future__ import annotations`` here on purpose: tools defined inside tests use
types defined inside tests, which only resolve when annotations are evaluated at once.
"""

import asyncio
import builtins
import enum
import json
import math
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, List, Literal, Optional, Union

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, AliasChoices, BaseModel, Field, TypeAdapter

from orchestrator.errors import ToolCallError, ToolDefinitionError
from tools import (
    ArgumentLimits,
    Tool,
    ToolRegistry,
    calculator,
    check_arguments,
    current_time,
    normalize_schema,
    read_file_tool,
    tool,
    validate_arguments,
)
from tools.docstrings import parse_docstring

pytestmark = pytest.mark.timeout(60)


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Stop(BaseModel):
    """A place on the way."""

    name: str = Field(description="Place name")
    minutes: Annotated[int, Field(ge=0, le=600)] = 30


class Trip(BaseModel):
    """A trip plan.

    More text that is not the description.
    """

    title: str
    stops: list[Stop]
    color: Color = Color.RED
    note: Optional[str] = None


def _props(t: Tool) -> dict[str, Any]:
    return t.parameters["properties"]


def _assert_well_formed(t: Tool) -> None:
    jsonschema.Draft202012Validator.check_schema(t.parameters)
    assert normalize_schema(t.parameters) == t.parameters  # normalized is a fixed point
    assert t.parameters["type"] == "object" and t.parameters["additionalProperties"] is False


# --- schemas from signatures --------------------------------------------------------------


def test_scalars_defaults_and_order():
    @tool
    def f(s: str, i: int, x: float, b: bool, opt: int = 3, color: Color = Color.GREEN, none_default: int = None) -> str:  # type: ignore[assignment]
        """Does f."""
        return ""

    _assert_well_formed(f)
    p = _props(f)
    assert [p[k]["type"] for k in ("s", "i", "x", "b")] == ["string", "integer", "number", "boolean"]
    assert f.parameters["required"] == ["s", "i", "x", "b"]
    assert p["opt"]["default"] == 3 and p["color"]["default"] == "green"
    assert "default" not in p["none_default"]  # None does not match "integer": not shown as a default
    assert f.description == "Does f." and f.name == "f" and not f.is_async


def test_optional_union_lists_dicts_literals_enums():
    @tool
    def f(
        a: Optional[int],
        b: Union[int, str],
        c: str | None = None,
        d: list[int] = [],  # noqa: B006
        e: List[list[str]] = [],  # noqa: B006
        g: dict[str, float] = {},  # noqa: B006
        h: Literal["x", "y"] = "x",
        i: Literal[1, 2] = 1,
        j: Literal["a", 1, None] = None,
        k: Color = Color.RED,
        m: Level = Level.LOW,
    ) -> None:
        """F."""

    _assert_well_formed(f)
    p = _props(f)
    assert p["a"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]} and "a" in f.parameters["required"]
    assert p["b"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert p["c"]["default"] is None and p["c"]["anyOf"][1] == {"type": "null"}
    assert p["d"]["items"] == {"type": "integer"} and p["e"]["items"]["items"] == {"type": "string"}
    assert p["g"] == {"type": "object", "additionalProperties": {"type": "number"}, "default": {}}
    assert (p["h"]["type"], p["h"]["enum"]) == ("string", ["x", "y"])
    assert (p["i"]["type"], p["i"]["enum"]) == ("integer", [1, 2])
    assert "type" not in p["j"] and p["j"]["enum"] == ["a", 1, None]
    assert (p["k"]["type"], p["k"]["enum"]) == ("string", ["red", "green"])
    assert (p["m"]["type"], p["m"]["enum"]) == ("integer", [1, 2])


def test_nested_models_and_annotated_constraints():
    @tool
    def plan(
        trip: Trip,
        count: Annotated[int, Field(ge=1, lt=10, description="How many")],
        name: Annotated[str, "A name", Field(min_length=2, max_length=5)],
        tags: Annotated[list[str], Field(max_length=3)],
        ratio: Annotated[Optional[float], Field(gt=0)] = None,
    ) -> None:
        """Plans."""

    _assert_well_formed(plan)
    p = _props(plan)
    trip = p["trip"]
    assert trip["description"] == "A trip plan." and trip["required"] == ["title", "stops"]
    assert trip["additionalProperties"] is False
    stop = trip["properties"]["stops"]["items"]
    assert stop["properties"]["name"]["description"] == "Place name"
    assert stop["properties"]["minutes"] == {"type": "integer", "minimum": 0, "maximum": 600, "default": 30}
    assert trip["properties"]["color"]["default"] == "red"
    assert p["count"] == {"type": "integer", "description": "How many", "minimum": 1, "exclusiveMaximum": 10}
    assert p["name"]["minLength"] == 2 and p["name"]["maxLength"] == 5 and p["name"]["description"] == "A name"
    assert p["tags"]["maxItems"] == 3
    assert p["ratio"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0}


def test_model_alias_is_the_json_name():
    class Aliased(BaseModel):
        real_name: str = Field(alias="realName")

    @tool
    def f(a: Aliased) -> None:
        pass

    assert list(_props(f)["a"]["properties"]) == ["realName"]
    _, kwargs = ToolRegistry([f]).parse_call("f", {"a": {"realName": "x"}})
    assert kwargs["a"].real_name == "x"


GOOGLE = '''Get the weather.

    Longer text.

    Args:
        city: The city,
            for example Paris.
        unit (str): The unit.

    Returns:
        A report.
    '''
NUMPY = '''Get the weather.

    Parameters
    ----------
    city : str
        The city,
        for example Paris.
    unit
        The unit.

    Returns
    -------
    str
    '''
REST = '''Get the weather.

    :param city: The city,
        for example Paris.
    :param str unit: The unit.
    :returns: A report.
    '''


@pytest.mark.parametrize("doc", [GOOGLE, NUMPY, REST], ids=["google", "numpy", "rest"])
def test_docstring_styles(doc):
    def weather(city: str, unit: str = "C") -> str:
        return ""

    weather.__doc__ = doc
    t = tool(weather)
    assert t.description == "Get the weather."
    assert _props(t)["city"]["description"] == "The city, for example Paris."
    assert _props(t)["unit"]["description"] == "The unit."


def test_docstring_edge_cases():
    assert parse_docstring(None).description == ""
    assert parse_docstring("Args:\n    x: X.").description == ""
    assert parse_docstring("One\ntwo.\n\nThree.").description == "One two."

    @tool
    def f(x: Annotated[int, Field(description="from Field")]) -> None:
        """F.

        Args:
            x: from the docstring
        """

    assert _props(f)["x"]["description"] == "from Field"


def test_decorator_options_async_and_direct_call():
    @tool(name="renamed", description="Custom.", idempotent=False, needs_approval=True, timeout_s=2.5)
    async def f(x: int) -> int:
        return x + 1

    assert (f.name, f.description, f.idempotent, f.needs_approval, f.timeout_s) == ("renamed", "Custom.", False, True, 2.5)
    assert f.is_async and asyncio.run(f(x=1)) == 2
    assert f.as_openai_tool()["function"]["name"] == "renamed"

    class Callable_:
        async def __call__(self, y: int) -> int:
            return y

    assert tool(Callable_(), name="obj").is_async

    async def raw(**kw: Any) -> None:
        pass

    schema = {"type": "object", "properties": {}}
    assert Tool("raw", "", schema, raw).is_async and not Tool("raw", "", schema, lambda: None).is_async


def _fn_no_annotation(x):  # type: ignore[no-untyped-def]
    pass


def _fn_args(*args: int):
    pass


def _fn_kwargs(**kw: int):
    pass


def _fn_posonly(x: int, /):
    pass


def _fn_any(x: Any):
    pass


def _fn_bare_list(x: list):  # type: ignore[type-arg]
    pass


def _fn_bare_dict(x: dict):  # type: ignore[type-arg]
    pass


def _fn_int_keys(x: dict[int, str]):
    pass


def _fn_tuple(x: tuple[int, int]):
    pass


def _fn_set(x: set[int]):
    pass


def _fn_datetime(x: datetime):
    pass


class _Node(BaseModel):
    child: Optional["_Node"] = None


def _fn_recursive(x: _Node):
    pass


def _fn_pattern(x: Annotated[str, Field(pattern="^a$")]):
    pass


def _fn_multiple_of(x: Annotated[int, Field(multiple_of=2)]):
    pass


def _fn_field_default(x: Annotated[int, Field(default=3)]):
    pass


def _fn_bound_on_bool(x: Annotated[bool, Field(ge=0)]):
    pass


def _fn_bytes_literal(x: Literal[b"x"]):
    pass


def _fn_stale_doc(x: int):
    """F.

    Args:
        x: X.
        y: no such parameter.
    """


def _fn_generator(x: int):
    yield x


def _fn_unresolved(x: "NoSuchType"):  # type: ignore[name-defined]  # noqa: F821
    pass


class _Choices(BaseModel):
    a: int = Field(validation_alias=AliasChoices("a", "b"))


def _fn_alias_choices(x: _Choices):
    pass


class _Clash(BaseModel):
    a: int = Field(alias="b")
    b: int


def _fn_clash(x: _Clash):
    pass


@pytest.mark.parametrize(
    ("fn", "fragment"),
    [
        (_fn_no_annotation, "no type annotation"),
        (_fn_args, "*args and **kwargs"),
        (_fn_kwargs, "*args and **kwargs"),
        (_fn_posonly, "positional-only"),
        (_fn_any, "type Any is not supported"),
        (_fn_bare_list, "give the item type"),
        (_fn_bare_dict, "give the item type"),
        (_fn_int_keys, "dict keys must be str"),
        (_fn_tuple, "not supported"),
        (_fn_set, "not supported"),
        (_fn_datetime, "type datetime is not supported"),
        (_fn_recursive, "recursive models"),
        (_fn_pattern, "pattern"),
        (_fn_multiple_of, "not supported"),
        (_fn_field_default, "default in the signature"),
        (_fn_bound_on_bool, "only applies to integer or number"),
        (_fn_bytes_literal, "not a JSON scalar"),
        (_fn_stale_doc, "describes 'y'"),
        (_fn_generator, "generator"),
        (_fn_unresolved, "cannot resolve"),
        (_fn_alias_choices, "AliasChoices"),
        (_fn_clash, "both named 'b'"),
        (lambda x: x, "tool name"),
    ],
)
def test_bad_signatures_fail_at_definition(fn, fragment):
    with pytest.raises(ToolDefinitionError) as info:
        tool(fn)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"timeout_s": -1}, "timeout_s"), ({"timeout_s": math.inf}, "timeout_s"), ({"name": "has space"}, "tool name")],
)
def test_bad_options_fail_at_definition(kwargs, fragment):
    def f(x: int) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=fragment):
        tool(**kwargs)(f)


def test_tool_rejects_non_functions():
    with pytest.raises(ToolDefinitionError, match="name=..."):
        tool("named")  # type: ignore[call-overload]
    with pytest.raises(ToolDefinitionError, match="needs a function"):
        tool(int)
    with pytest.raises(ToolDefinitionError, match="already a Tool"):
        tool(calculator)


# --- raw schemas ----------------------------------------------------------------------------


def _raw(schema: Any, fn: Any = None) -> Tool:
    return Tool.from_schema("raw", "A raw tool.", schema, fn or (lambda **kw: kw))


def test_raw_schema_is_normalized():
    t = _raw(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                "city": {"type": "string", "title": "City", "description": "The city"},
                "when": {"$ref": "#/$defs/When", "description": "overrides"},
                "tag": {"type": ["string", "null"], "maxLength": 5},
                "mode": {"const": "fast"},
                "level": {"type": ["integer", "string"], "enum": [1, "high"]},
            },
            "required": ["city"],
            "$defs": {"When": {"type": "object", "properties": {"day": {"type": "integer", "minimum": 1}}}},
        }
    )
    p = t.parameters
    assert p["additionalProperties"] is False and p["required"] == ["city"] and "title" not in p and "$defs" not in p
    assert p["properties"]["city"] == {"type": "string", "description": "The city"}
    when = p["properties"]["when"]
    assert when["description"] == "overrides" and when["additionalProperties"] is False and when["required"] == []
    assert p["properties"]["tag"] == {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}
    assert p["properties"]["mode"] == {"enum": ["fast"]}
    assert p["properties"]["level"]["anyOf"] == [{"type": "integer", "enum": [1]}, {"type": "string", "enum": ["high"]}]
    assert normalize_schema(p) == p
    assert t.adapters is None and not t.is_async


def test_raw_schema_arguments_are_validated_but_not_converted():
    seen = {}

    def fn(city: str, days: int = 1) -> str:
        seen.update(city=city, days=days)
        return city

    t = Tool.from_schema(
        "forecast", "Forecast.", {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}, fn
    )
    kwargs = validate_arguments(t, '{"city": "Oslo", "days": 3}')
    assert kwargs == {"city": "Oslo", "days": 3} and t(**kwargs) == "Oslo" and seen["days"] == 3
    with pytest.raises(ToolCallError, match='argument "days": expected an integer, got "3"'):
        validate_arguments(t, {"city": "Oslo", "days": "3"})


def test_deep_or_wide_raw_schemas_are_refused_before_the_metaschema_check():
    """A schema nested 400 levels deep raised RecursionError inside the metaschema check (a 500 in
    the server); one of 4,999 properties took seconds there before any limit was looked at."""
    import time

    deep: dict[str, Any] = {"type": "boolean"}
    for _ in range(400):
        deep = {"type": "object", "properties": {"a": deep}, "required": ["a"]}
    with pytest.raises(ToolDefinitionError, match="nested deeper than 64 levels"):
        Tool.from_schema("deep", "", deep, lambda **kw: None)
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4999)}}
    start = time.monotonic()
    with pytest.raises(ToolDefinitionError, match="more than 1000 objects and lists"):
        Tool.from_schema("wide", "", wide, lambda **kw: None)
    assert time.monotonic() - start < 2  # the count stops at the limit: milliseconds, not seconds
    fine: dict[str, Any] = {"type": "boolean"}
    for _ in range(30):  # 30 levels of objects: 61 JSON levels, under both limits
        fine = {"type": "object", "properties": {"a": fine}, "required": ["a"]}
    assert Tool.from_schema("fine", "", fine, lambda a: None).parameters["required"] == ["a"]


def _doubling_defs(levels: int) -> dict[str, Any]:
    defs = {"D0": {"type": "integer"}}
    for i in range(1, levels):
        defs[f"D{i}"] = {"type": "object", "properties": {"a": {"$ref": f"#/$defs/D{i - 1}"}, "b": {"$ref": f"#/$defs/D{i - 1}"}}}
    return {"type": "object", "properties": {"x": {"$ref": f"#/$defs/D{levels - 1}"}}, "$defs": defs}


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "strnig"}, "not a valid JSON schema"),
        ({"type": "object", "properties": {"a": {"type": "string", "minLength": -1}}}, "not a valid JSON schema"),
        ({"type": "array", "items": {"type": "string"}}, "top level must be"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "top level must be"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/A"}}}}}, "$ref cycle"),
        ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "not a local"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "not a local"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "not a local"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"}}}, "unsupported keyword 'pattern'"),
        ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}}, "unsupported keyword 'oneOf'"),
        ({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}, "unsupported keyword 'uniqueItems'"),
        ({"type": "object", "properties": {}, "additionalProperties": True}, "additionalProperties: true"),
        ({"type": "object", "properties": {"a": True}}, "boolean schemas"),
        ({"type": "object", "properties": {"a": {}}}, "accepts anything"),
        ({"type": "object", "properties": {"a": {"description": "no type"}}}, "accepts anything"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "needs 'items'"),
        ({"type": "object", "properties": {}, "required": ["a"]}, "not in properties"),
        ({"type": "object", "properties": {"a": {"type": "integer", "minLength": 1}}}, "does not apply to type integer"),
        ({"type": "object", "properties": {"a": {"type": ["integer", "null"], "minLength": 1}}}, "does not apply to any"),
        ({"type": "object", "properties": {"a": {"type": "string", "minLength": 5, "maxLength": 2}}}, "above maxLength"),
        ({"type": "object", "properties": {"a": {"type": "integer", "enum": ["x"]}}}, "not of type integer"),
        ({"type": "object", "properties": {"a": {"enum": [[1]]}}}, "not a JSON scalar"),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}], "minLength": 1}}}, "next to anyOf"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A", "minimum": 1}}, "$defs": {"A": {"type": "integer"}}}, "next to $ref"),
        (_doubling_defs(14), "schema nodes"),
        ("not a dict", "must be a dict"),
    ],
)
def test_bad_raw_schemas_fail_at_definition(schema, fragment):
    with pytest.raises(ToolDefinitionError) as info:
        _raw(schema)
    assert fragment in str(info.value)


def test_enum_members_compare_with_their_json_type():
    t = _raw({"type": "object", "properties": {"v": {"enum": [1, "x", None, 2.5]}}})
    assert validate_arguments(t, '{"v": 1}') == {"v": 1} and validate_arguments(t, '{"v": null}') == {"v": None}
    for bad in ("true", "1.0", '"1"', "2", "false"):
        with pytest.raises(ToolCallError, match='argument "v": expected one of 1, "x", null, 2.5, got'):
            validate_arguments(t, '{"v": %s}' % bad)


def test_raw_schema_must_fit_the_function():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}

    def needs_b(a: str = "", *, b: int) -> None:
        pass

    def takes_a(a: str = "") -> None:
        pass

    def positional(a: str = "", /) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="'b' has no default"):
        Tool.from_schema("t", "", schema, needs_b)
    with pytest.raises(ToolDefinitionError, match="'z' is not a parameter"):
        Tool.from_schema("t", "", {**schema, "properties": {"a": {"type": "string"}, "z": {"type": "string"}}}, takes_a)
    with pytest.raises(ToolDefinitionError, match="cannot be passed by keyword"):
        Tool.from_schema("t", "", schema, positional)
    with pytest.raises(ToolDefinitionError, match="has no default but the schema does not require it"):
        Tool.from_schema("t", "", schema, lambda a: None)
    assert Tool.from_schema("t", "", schema, lambda **kw: kw).name == "t"


# --- validation -----------------------------------------------------------------------------


def _not_thirteen(x: float) -> float:
    if x == 13:
        raise ValueError("13 is unlucky")
    return x


@tool
def book(
    city: str,
    nights: Annotated[int, Field(ge=1, le=30)],
    price: float = 100.0,
    pets: bool = False,
    tags: list[str] = [],  # noqa: B006
    scores: dict[str, float] = {},  # noqa: B006
    color: Color = Color.RED,
    level: Literal[1, 2] = 1,
    trip: Optional[Trip] = None,
    lucky: Annotated[float, AfterValidator(_not_thirteen)] = 0.0,
    code: Annotated[str, Field(min_length=2, max_length=4)] = "ab",
) -> str:
    """Book a stay."""
    return f"{city} x{nights}"


def _call(**extra: Any) -> dict[str, Any]:
    return {"city": "Oslo", "nights": 2, **extra}


BAD_CALLS = [
    ('{"city": 42, "nights": 1}', 'argument "city": expected a string, got 42'),
    (_call(nights="2"), 'argument "nights": expected an integer, got "2"'),
    (_call(nights=True), 'argument "nights": expected an integer, got true'),
    (_call(nights=1.5), 'argument "nights": expected an integer, got 1.5'),
    (_call(nights=2.0), 'argument "nights": expected an integer, got 2.0'),
    (_call(price="1.5"), 'argument "price": expected a number, got "1.5"'),
    (_call(price=False), 'argument "price": expected a number, got false'),
    (_call(nights=0), 'argument "nights": expected a number at least 1, got 0'),
    (_call(nights=31), 'argument "nights": expected a number at most 30, got 31'),
    (_call(pets="true"), 'argument "pets": expected true or false, got "true"'),
    (_call(pets=1), 'argument "pets": expected true or false, got 1'),
    (_call(tags="a"), 'argument "tags": expected a list, got "a"'),
    (_call(tags=["a", 1]), 'argument "tags[1]": expected a string, got 1'),
    (_call(scores={"a": "1"}), 'argument "scores.a": expected a number, got "1"'),
    (_call(color="blue"), 'argument "color": expected one of "red", "green", got "blue"'),
    (_call(level=True), 'argument "level": expected one of 1, 2, got true'),
    (_call(level=1.0), 'argument "level": expected one of 1, 2, got 1.0'),
    (_call(trip="x"), 'argument "trip": expected an object or null, got "x"'),
    (_call(trip={"title": "t", "stops": [{"name": 3}]}), 'argument "trip.stops[0].name": expected a string, got 3'),
    (_call(trip={"title": "t", "stops": [{"name": "a", "minutes": -1}]}), 'argument "trip.stops[0].minutes": expected a number at least 0, got -1'),
    (_call(trip={"title": "t", "stops": [], "x": 1}), 'argument "trip": unexpected key "x"; the keys are: title, stops, color, note'),
    (_call(trip={"stops": []}), 'argument "trip": missing required key "title"; the keys are: title, stops, color, note'),
    (_call(lucky=13), 'argument "lucky": Value error, 13 is unlucky'),
    (_call(code="a"), 'argument "code": expected at least 2 characters, got 1'),
    (_call(code="abcde"), 'argument "code": expected at most 4 characters, got 5'),
    (_call(foo=1), 'unexpected argument "foo"; the arguments are: city, nights, price, pets, tags, scores, color, level, trip, lucky, code'),
    ({}, 'missing required arguments "city", "nights"; the arguments are: city, nights'),
    ({"town": "Oslo", "nights": 1}, 'unexpected argument "town"; missing required argument "city"'),
    ('{"city": "a", "nights": NaN}', "arguments are not valid JSON: NaN is not allowed"),
    ('{"city": "a", "nights": Infinity}', "arguments are not valid JSON: Infinity is not allowed"),
    ('{"city": "a", "nights": -Infinity}', "arguments are not valid JSON: -Infinity is not allowed"),
    ('{"city": "a", "nights": 1, "price": 1e999}', 'argument "price": NaN and Infinity are not allowed'),
    (_call(price=float("nan")), 'argument "price": NaN and Infinity are not allowed'),
    ('{"city": "a",', "arguments are not valid JSON (Expecting property name"),
    ("", "arguments are not valid JSON (Expecting value at character 0)"),
    ("```json\n{}\n```", "arguments are not valid JSON"),
    ("[]", "arguments must be a JSON object, got a list"),
    ("null", "arguments must be a JSON object, got null"),
    ('"x"', 'arguments must be a JSON object, got "x"'),
    ('{"city": "a", "city": "b", "nights": 1}', 'arguments are not valid JSON: key "city" appears twice'),
    ('{"city": "a", "nights": ' + "1" * 5000 + "}", "arguments are not valid JSON (a number is too long)"),
    (_call(tags=("a",)), 'argument "tags": a tuple is not a JSON value'),
    ({1: "a"}, "object keys must be strings, got 1"),
    (_call(trip=Trip(title="t", stops=[])), 'argument "trip": a Trip is not a JSON value'),
    (42, "arguments must be a JSON object, got 42"),
    (b"\xff", "arguments are not valid UTF-8"),
    ('{"city": "\\ud800", "nights": 1}', 'argument "city": text holds an invalid unicode escape'),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_CALLS)
def test_bad_arguments_are_refused_with_a_short_message(arguments, message):
    with pytest.raises(ToolCallError) as info:
        validate_arguments(book, arguments)
    assert str(info.value).startswith(message), str(info.value)
    assert len(str(info.value)) < 200 and info.value.tool == "book"


def test_good_arguments_are_converted_to_the_signature_types():
    given_args = _call(
        price=120, tags=["a"], scores={"x": 1}, color="green", level=2, code="abc",
        trip={"title": "t", "stops": [{"name": "a"}, {"name": "b", "minutes": 5}], "color": "green"},
    )
    kwargs = validate_arguments(book, json.dumps(given_args))
    assert kwargs["price"] == 120.0 and type(kwargs["price"]) is float
    assert kwargs["scores"] == {"x": 1.0} and type(kwargs["scores"]["x"]) is float
    assert kwargs["color"] is Color.GREEN and kwargs["level"] == 2
    trip = kwargs["trip"]
    assert isinstance(trip, Trip) and trip.color is Color.GREEN and trip.stops[0] == Stop(name="a", minutes=30)
    assert "pets" not in kwargs  # absent optional arguments take the function's own default
    assert book(**kwargs) == "Oslo x2"
    assert validate_arguments(book, _call(trip=None))["trip"] is None
    assert validate_arguments(book, _call(price=2.5))["price"] == 2.5


def test_any_mapping_is_accepted_at_the_top_but_only_json_inside():
    from types import MappingProxyType

    assert validate_arguments(book, MappingProxyType(_call()))["city"] == "Oslo"
    with pytest.raises(ToolCallError, match='argument "scores": a mappingproxy is not a JSON value'):
        validate_arguments(book, _call(scores=MappingProxyType({"a": 1.0})))


def test_parsed_dict_arguments_are_copied():
    given_args = _call(tags=["a"])
    kwargs = validate_arguments(book, given_args)
    kwargs["tags"].append("b")
    assert given_args["tags"] == ["a"]


LIMITS = ArgumentLimits(max_json_chars=200, max_string_chars=10, max_depth=3, max_items=3, max_keys=4)
_cycle: dict[str, Any] = {}
_cycle["city"] = _cycle


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (json.dumps(_call(tags=["x" * 9] * 3, code="abcd", price=1.25, scores={"a": 1}, color="green")) + " " * 100, "arguments too long ("),
        (_call(city="x" * 11), 'argument "city": text too long (11 characters; the limit is 10)'),
        (_call(scores={"k" * 11: 1}), 'argument "scores": text too long (11 characters'),
        (_call(tags=["a"] * 4), 'argument "tags": too many items (4; the limit is 3)'),
        (_call(scores={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}), 'argument "scores": too many keys (5; the limit is 4)'),
        (json.dumps(_call(trip={"title": "t", "stops": [{"name": "a"}]})), "arguments nested deeper than 3 levels"),
        (_call(trip={"title": "t", "stops": [{"name": "a"}]}), 'argument "trip.stops[0]": nested deeper than 3 levels'),
        ("[" * 50 + "]" * 50, "arguments nested deeper than 3 levels"),
        (_cycle, 'argument "city.city.city": nested deeper than 3 levels'),
    ],
)
def test_size_caps(arguments, message):
    with pytest.raises(ToolCallError) as info:
        validate_arguments(book, arguments, LIMITS)
    assert str(info.value).startswith(message), str(info.value)


def test_limits_are_checked_and_default_limits_allow_normal_calls():
    with pytest.raises(ValueError, match="max_depth"):
        ArgumentLimits(max_depth=0)
    with pytest.raises(ToolCallError, match=r"^arguments too long \(42 characters; the limit is 40\)"):
        validate_arguments(book, _call(city="x" * 20), ArgumentLimits(max_json_chars=40))  # a dict is measured too
    # brackets inside strings do not count as nesting
    assert validate_arguments(book, '{"city": "[[[[[[", "nights": 1}', LIMITS)["city"] == "[[[[[["
    assert check_arguments(book.parameters, _call(city="x" * 10_000))["city"] == "x" * 10_000


# --- the registry ---------------------------------------------------------------------------


def _ping() -> str:
    """Ping."""
    return "pong"


def test_registry_parse_call_and_unknown_names_fail_closed():
    reg = ToolRegistry([book, calculator, _ping])
    assert reg.names == ("book", "calculator", "_ping") and len(reg) == 3 and "book" in reg and reg["book"] is book
    found, kwargs = reg.parse_call("calculator", '{"expression": "1 + 2"}')
    assert found is calculator and found(**kwargs) == 3
    assert reg.parse_call("_ping", "{}")[1] == {}
    with pytest.raises(ToolCallError) as info:
        reg.parse_call("weather", "{}")
    assert str(info.value) == "unknown tool 'weather'; the tools are: book, calculator, _ping"
    with pytest.raises(ToolCallError, match=r"\(did you mean 'calculator'\?\)"):
        reg.parse_call("calculater", "{}")
    for name in (None, 42, "x" * 10_000):
        with pytest.raises(ToolCallError) as info:
            reg.parse_call(name, "{}")
        assert len(str(info.value)) < 200
    with pytest.raises(ToolCallError, match="takes no arguments"):
        reg.parse_call("_ping", '{"x": 1}')


def test_registry_allow_list_and_duplicates():
    reg = ToolRegistry([book, calculator])
    only = reg.allow(["calculator"])
    assert only.names == ("calculator",) and only.limits is reg.limits
    with pytest.raises(ToolCallError, match="unknown tool 'book'; the tools are: calculator"):
        only.parse_call("book", _call())
    with pytest.raises(ToolDefinitionError, match="unknown tool 'calc'"):
        reg.allow(["calc"])
    with pytest.raises(ToolDefinitionError, match="two tools are named 'book'"):
        ToolRegistry([book, book])
    assert ToolRegistry().allow([]).names == ()


# --- property: any JSON either validates into the right types or is a ToolCallError ---------

_HINTS = {name: p.annotation for name, p in __import__("inspect").signature(book.fn).parameters.items()}
_scalars = st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats() | st.text(max_size=12)
_json = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=12)
_keys = st.sampled_from([*_HINTS, "title", "stops", "name"]) | st.text(max_size=6)
_stop = st.fixed_dictionaries({"name": st.text(max_size=10)}, optional={"minutes": st.integers(0, 600)})
_trip = st.fixed_dictionaries(
    {"title": st.text(max_size=10), "stops": st.lists(_stop, max_size=3)},
    optional={"color": st.sampled_from(["red", "green"]), "note": st.none() | st.text(max_size=10)},
)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_valid = st.fixed_dictionaries(
    {"city": st.text(max_size=30), "nights": st.integers(1, 30)},
    optional={
        "price": _finite | st.integers(-(10**15), 10**15), "pets": st.booleans(), "tags": st.lists(st.text(max_size=8), max_size=4),
        "scores": st.dictionaries(st.text(max_size=5), _finite, max_size=3), "color": st.sampled_from(["red", "green"]),
        "level": st.sampled_from([1, 2]), "trip": st.none() | _trip, "lucky": _finite.filter(lambda x: x != 13),
        "code": st.text(min_size=2, max_size=4),
    },
)
# Mostly-valid calls with one argument replaced by random JSON, and fully random objects.
_mutated = st.tuples(_valid, _keys, _json).map(lambda t: {**t[0], t[1]: t[2]})
_any_call = _mutated | st.dictionaries(_keys, _json, max_size=6) | _valid


def _assert_kwargs_match_signature(source: dict[str, Any], kwargs: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(book.parameters).validate(source)  # what we accept, jsonschema accepts
    assert set(kwargs) <= set(_HINTS) and {"city", "nights"} <= set(kwargs)
    for name, value in kwargs.items():
        TypeAdapter(_HINTS[name]).validate_python(value, strict=True)
    assert book(**kwargs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=_any_call, as_text=st.booleans())
def test_fuzz_validation_returns_typed_kwargs_or_a_tool_call_error(call, as_text):
    try:
        payload = json.dumps(call) if as_text else call  # json.dumps writes NaN/Infinity tokens too
    except ValueError:  # integers past Python's str-conversion limit
        return
    try:
        kwargs = validate_arguments(book, payload)
    except ToolCallError as exc:
        assert 0 < len(str(exc)) < 300 and exc.tool == "book"
        return
    _assert_kwargs_match_signature(call, kwargs)


@settings(max_examples=300, deadline=None)
@given(call=_valid)
def test_fuzz_valid_calls_are_always_accepted(call):
    _assert_kwargs_match_signature(call, validate_arguments(book, json.dumps(call)))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.from_regex(r'\{"city": ?"[a-z]*", ?"nights": ?-?[0-9.eE+]{1,6}[,}\]]?', fullmatch=True))
def test_fuzz_random_text_is_only_ever_a_tool_call_error(text):
    try:
        kwargs = validate_arguments(book, text)
    except ToolCallError:
        return
    assert isinstance(kwargs["nights"], int) and 1 <= kwargs["nights"] <= 30


# --- built-ins ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 * (3 + 4) ** 2", 98), ("7 // 2", 3), ("-7 % 3", 2), ("1 / 4", 0.25), ("2 ** -1", 0.5),
        ("sqrt(16)", 4.0), ("max(1, 5, 3) - min(2, 4)", 3), ("round(2.567, 2)", 2.57), ("abs(-3)", 3),
        ("floor(pi)", 3), ("log(8, 2)", 3.0), ("1_000 + 0x10", 1016), ("+-+1", -1), ("9**9", 387420489),
        ("2 ** 399", 2**399),
    ],
)
def test_calculator_computes(expression, value):
    assert calculator(expression) == value
    assert ToolRegistry([calculator]).parse_call("calculator", {"expression": expression})[1] == {"expression": expression}


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("9**9**9", "too large"),
        ("2 ** 401", "a power of more than 400 bits"),
        ("(3 ** 250) ** 9000", "a power of more than 400 bits"),  # refused before it is computed
        ("2 ** 200 * 2 ** 201", "result too large (more than 400 bits)"),
        ("10 ** 100000", "exponent too large"),
        ("10.0 ** 400", "result too large"),
        ("1e308 * 10", "result too large"),
        ("9" * 200, "result too large"),
        ("__import__('os')", "not allowed"),
        ("__import__('os').system('true')", "not allowed"),
        ("().__class__.__bases__", "not allowed"),
        ("open('/etc/passwd')", "not allowed"),
        ("math.sqrt(4)", "not allowed"),
        ("x + 1", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("[1] * 10", "not allowed"),
        ("1 if 1 else 2", "not allowed"),
        ("1 < 2", "not allowed"),
        ("1 << 10000", "not allowed"),
        ("'a' * 10", "only numbers"),
        ("True + 1", "only numbers"),
        ("1j", "only numbers"),
        ("f'{1}'", "not allowed"),
        ("sqrt(x=4)", "not allowed"),
        ("min(1)", "takes 2 to 20 arguments"),
        ("sqrt(*[4])", "not allowed"),
        ("sqrt(1, 2)", "sqrt() takes 1 argument"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("log(0)", "math domain error"),
        ("(-8) ** (1/3)", "not a real number"),
        ("sqrt(2 ** 399 * 2 ** 399)", "result too large"),
        ("1 +", "not an arithmetic expression"),
        ("1; import os", "not an arithmetic expression"),
        ("", "not an arithmetic expression"),
        ("1" + "+1" * 150, "too complex"),
        ("(" * 240 + "1" + ")" * 240, "not an arithmetic expression"),
        ("1" * 600, "expression too long"),
    ],
)
def test_calculator_refuses_hostile_input_without_eval(monkeypatch, expression, fragment):
    def no_eval(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)
    with pytest.raises(ToolCallError) as info:
        calculator(expression)
    assert fragment in str(info.value) and info.value.tool == "calculator" and len(str(info.value)) < 300


def test_calculator_schema_caps_the_expression():
    with pytest.raises(ToolCallError, match="expected at most 500 characters"):
        ToolRegistry([calculator]).parse_call("calculator", {"expression": "1" * 501})


def test_current_time():
    before = datetime.now(timezone.utc)
    stamp, rest = current_time().split(" (", 1)
    when = datetime.fromisoformat(stamp)
    assert when.utcoffset() == timedelta(0) and abs(when - before) < timedelta(seconds=5) and rest.endswith(", UTC)")
    paris = datetime.fromisoformat(current_time(timezone="Europe/Paris").split(" (")[0])
    assert paris.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert current_time.parameters["properties"]["timezone"]["default"] == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe", "UTC\x00", "", "zone.tab"])
def test_current_time_refuses_unknown_zones(zone):
    with pytest.raises(ToolCallError, match="unknown time zone") as info:
        current_time(zone)
    assert info.value.tool == "current_time"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("hello\n", encoding="utf-8")
    (root / "sub" / "deep.md").write_text("# deep é\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    return root


def test_read_file_reads_text_inside_the_folder(folder):
    read = read_file_tool(folder)
    assert read.name == "read_file" and read.parameters["required"] == ["path"]
    assert read(path="notes.txt") == "hello\n"
    assert read(path="sub/deep.md") == "# deep é\n"
    assert read(path="sub/../notes.txt") == "hello\n"
    _, kwargs = ToolRegistry([read]).parse_call("read_file", '{"path": "notes.txt"}')
    assert read(**kwargs) == "hello\n"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
def test_read_file_refuses_everything_else(folder, tmp_path):
    (folder / "link_out.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "link_in.txt").symlink_to(folder / "notes.txt")
    (folder / "dir_out").symlink_to(tmp_path)
    (folder / "dir_in").symlink_to(folder / "sub")
    (folder / "loop").symlink_to(folder / "loop")
    os.mkfifo(folder / "pipe")
    (folder / "big.txt").write_text("x" * 101, encoding="utf-8")
    (folder / "nul.bin").write_bytes(b"ab\x00cd")
    (folder / "latin1.txt").write_bytes("café".encode("latin-1"))
    read = read_file_tool(folder, max_bytes=100, name="files")
    cases = {
        "../secret.txt": "outside the allowed folder",
        "sub/../../secret.txt": "outside the allowed folder",
        str(tmp_path / "secret.txt"): "relative to the allowed folder",
        str(folder / "notes.txt"): "relative to the allowed folder",
        "~/x": "relative to the allowed folder",
        "link_out.txt": "symlinks are not followed",
        "link_in.txt": "symlinks are not followed",  # even one that stays inside
        "dir_out/secret.txt": "symlinks are not followed",
        "dir_in/deep.md": "symlinks are not followed",  # a symlinked subfolder
        "notes.txt/x": "'notes.txt' is not a folder",
        "loop": "symlinks are not followed",
        "pipe": "not a regular file",
        "sub": "a folder",
        ".": "a folder",
        "missing.txt": "no such file",
        "big.txt": "file too large (101 bytes; the limit is 100)",
        "nul.bin": "binary file",
        "latin1.txt": "not UTF-8 text",
        "a\x00b": "NUL",
    }
    for path, fragment in cases.items():
        with pytest.raises(ToolCallError) as info:
            read(path=path)
        message = str(info.value)
        assert fragment in message and info.value.tool == "files", (path, message)
        assert str(tmp_path) not in message.replace(repr(path)[1:-1], ""), message  # never shows where the folder is


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
@pytest.mark.timeout(60)
def test_read_file_never_escapes_while_a_folder_is_swapped_for_a_symlink(tmp_path):
    # Regression: the old reader resolved the path, then opened it; O_NOFOLLOW guarded only the
    # last component, so a folder swapped for a symlink in between led it out of the folder.
    root, outside = tmp_path / "allowed", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "passwd").write_text("inside", encoding="utf-8")
    (outside / "passwd").write_text("OUTSIDE", encoding="utf-8")
    read = read_file_tool(root)
    stop, swaps = threading.Event(), [0]

    def swap() -> None:  # sub: a real folder, then a symlink to outside, then the folder again
        sub, held, link = root / "sub", tmp_path / "held", tmp_path / "link"
        link.symlink_to(outside)
        while not stop.is_set():
            os.rename(sub, held)
            os.rename(link, sub)
            time.sleep(0)
            os.rename(sub, link)
            os.rename(held, sub)
            time.sleep(0)
            swaps[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so reads land inside a swap
    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    seen: dict[str, int] = {}
    try:
        for _ in range(3000):
            try:
                text = read(path="sub/passwd")
            except ToolCallError as exc:
                text = str(exc).split(": ", 1)[1]
            seen[text] = seen.get(text, 0) + 1
    finally:
        stop.set()
        swapper.join(10)
        sys.setswitchinterval(interval)
    assert swaps[0] > 0 and seen.get("inside", 0) > 0, seen
    assert "OUTSIDE" not in seen, seen


def test_read_file_tool_checks_its_folder(tmp_path):
    with pytest.raises(ToolDefinitionError, match="does not exist"):
        read_file_tool(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ToolDefinitionError, match="not a folder"):
        read_file_tool(tmp_path / "f")
    with pytest.raises(ToolDefinitionError, match="max_bytes"):
        read_file_tool(tmp_path, max_bytes=0)
