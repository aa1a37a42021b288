"""Tool schemas as real APIs write them: dotted names, ``format``, ``optional``, free-form objects.

Each case here was refused (or, for the free-form object, silently narrowed to ``{}``) before:
the regression checks fail on the old code by construction (the old code raised
``ToolDefinitionError`` for each of these schemas, or accepted only ``{}``).
"""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import ToolCallError, ToolDefinitionError
from tools.grammar import schema_to_gbnf
from tools.tool import Tool
from tools.validation import validate_arguments

pytestmark = pytest.mark.timeout(60)


def _raw(schema, name="raw"):
    return Tool.from_schema(name, "A raw tool.", schema, lambda **kw: kw)


def test_dotted_names_are_accepted_and_still_checked():
    t = _raw({"type": "object", "properties": {"number": {"type": "integer"}}, "required": ["number"]}, name="math.factorial")
    assert t.name == "math.factorial"
    for bad in (".hidden", "a b", "x" * 65, ""):
        with pytest.raises(ToolDefinitionError, match="must be 1-64"):
            _raw({"type": "object", "properties": {}}, name=bad)


def test_format_becomes_part_of_the_description():
    t = _raw({"type": "object", "properties": {"day": {"type": "string", "description": "The day.", "format": "date"}}, "required": ["day"]})
    prop = t.parameters["properties"]["day"]
    assert "format" not in prop and prop["description"] == "The day. (format: date)"
    assert validate_arguments(t, {"day": "2024-02-14"}) == {"day": "2024-02-14"}
    schema_to_gbnf(t.parameters)  # the grammar takes it (it refuses a bare "format")


@pytest.mark.parametrize("flag", [True, "true", "True", "yes"])
def test_optional_on_a_property_takes_it_out_of_required(flag):
    t = _raw({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "optional": flag}}, "required": ["a", "b"]})
    assert t.parameters["required"] == ["a"]
    assert validate_arguments(t, {"a": 1}) == {"a": 1}


def test_optional_list_on_an_object():
    t = _raw({"type": "object", "properties": {"w": {"type": "number"}, "h": {"type": "number"}}, "required": ["w", "h"], "optional": ["w"]})
    assert t.parameters["required"] == ["h"]
    assert "optional" not in t.parameters


def test_free_form_object_takes_any_keys_and_says_so():
    t = _raw({"type": "object", "properties": {"grades": {"type": "object", "description": "Subject to score."}}, "required": ["grades"]})
    grades = t.parameters["properties"]["grades"]
    assert "free-form" in grades["description"] and "properties" not in grades
    args = {"grades": {"math": 90, "art": "A", "tags": ["x", 1], "extra": {"k": None}}}
    assert validate_arguments(t, args) == args  # the old normalisation accepted only {}
    with pytest.raises(ToolCallError):
        validate_arguments(t, {"grades": {"deep": {"k": {"too": "deep"}}}})


def test_a_map_becomes_a_grammar():
    t = _raw({"type": "object", "properties": {"scores": {"type": "object", "additionalProperties": {"type": "integer"}}}, "required": ["scores"]})
    grammar = schema_to_gbnf(t.parameters, max_items=3)  # refused before: "only additionalProperties false"
    assert "scores-pair" in grammar and "{0,2}" in grammar


def test_free_form_object_works_in_an_agent_grammar():
    from agents.agent import Agent

    t = _raw({"type": "object", "properties": {"cards": {"type": "object"}}, "required": ["cards"]}, name="poker.winner")
    agent = Agent("a", "Play.", tools=(t,))
    assert json.dumps(agent.decision_schema)  # built, and its grammar made (Agent checks that when defined)


# Python signatures as people write them (each was refused before: "Annotated metadata None",
# "pattern constraints", "type Point is not supported").

from dataclasses import dataclass  # noqa: E402
from typing import Annotated  # noqa: E402

from pydantic import StringConstraints, conint  # noqa: E402
from typing_extensions import NotRequired, TypedDict  # noqa: E402

from tools.tool import tool  # noqa: E402


@dataclass
class Point:
    """A point on the map.

    Args:
        lat: Latitude.
    """

    lat: float
    lon: float = 0.0


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


def test_conint_and_string_constraints():
    @tool
    def f(n: conint(ge=1), name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10)]) -> str:  # type: ignore[valid-type]
        """F."""
        return name * n

    assert f.parameters["properties"] == {"n": {"type": "integer", "minimum": 1}, "name": {"type": "string", "maxLength": 10}}
    assert validate_arguments(f, {"n": 2, "name": "  ab "}) == {"n": 2, "name": "ab"}  # stripped by pydantic when converted
    with pytest.raises(ToolCallError):
        validate_arguments(f, {"n": 0, "name": "x"})


def test_a_pattern_is_still_refused_clearly():
    with pytest.raises(ToolDefinitionError, match="pattern constraints"):
        @tool
        def f(code: Annotated[str, StringConstraints(pattern="^[A-Z]{3}$")]) -> str:
            """F."""
            return code


def test_dataclass_and_typeddict_parameters():
    @tool
    def f(where: Point, movie: Movie) -> str:
        """F."""
        return f"{where.lat} {movie['title']}"

    props = f.parameters["properties"]
    assert props["where"]["required"] == ["lat"] and props["where"]["properties"]["lon"]["default"] == 0.0
    assert props["where"]["properties"]["lat"]["description"] == "Latitude." and props["where"]["description"] == "A point on the map."
    assert props["movie"]["required"] == ["title"] and props["movie"]["properties"]["year"] == {"type": "integer"}
    kwargs = validate_arguments(f, {"where": {"lat": 1.5}, "movie": {"title": "Alien", "year": 1979}})
    assert kwargs["where"] == Point(1.5, 0.0) and kwargs["movie"] == {"title": "Alien", "year": 1979}
    with pytest.raises(ToolCallError):
        validate_arguments(f, {"where": {"lon": 1.0}, "movie": {"title": "x"}})
