"""Grounded arguments (agents/grounding.py) and injected parameters (@tool(injected=...))."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import Field

from agents.agent import Agent
from agents.grounding import ground_schema, mentioned, numbers, spans
from agents.loop import decision_grammars
from orchestrator.backends.local import engine_request
from orchestrator.agent_runner import run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import ConfigError, ToolCallError, ToolDefinitionError
from tools.builtin import calculator
from tools.tool import tool
from tools.validation import validate_arguments


@tool
def book(restaurant: Annotated[str, Field(max_length=40)], people: Annotated[int, Field(ge=1, le=20)],
         seating: Literal["inside", "terrace"] = "inside", note: str | None = None) -> str:
    """Book a table."""
    return f"booked {restaurant} for {people}"


@tool(injected=("user_id",))
def orders(status: Literal["open", "closed"], user_id: str) -> str:
    """The user's orders.

    Args:
        status: Which orders.
        user_id: Whose orders (set by the app).
    """
    return f"{status} orders of {user_id}"


def test_spans_and_numbers_come_from_the_text() -> None:
    got = spans(['Book "Chez Marie" for two at 19:30.'])
    assert {"Chez Marie", "Book", "19:30", "two at 19:30", 'Chez Marie" for two'} <= set(got)
    assert all(s == s.strip("\"'.,;:!?") and s for s in got) and len(got) == len(set(got))
    assert numbers(["Set 19.5 degrees for 3 people, and two more at 7"]) == [19.5, 3, 7, 2]
    assert mentioned("terrace", ["On the Terrace, please"]) and not mentioned("terrace", ["terraced house"])


def test_free_strings_become_spans_numbers_are_held_and_unsaid_optional_choices_dropped() -> None:
    schema = ground_schema(book.parameters, ["A table at Luigi's for 4 people"])
    props = schema["properties"]
    assert "Luigi's" in props["restaurant"]["enum"] and all(len(s) <= 40 for s in props["restaurant"]["enum"])
    assert props["people"]["enum"] == [4]
    assert "seating" not in props  # optional, and the user did not say: it keeps its default
    note = props["note"]["anyOf"]
    assert {"type": "null"} in note and any("enum" in b for b in note)
    # said: the choice is held to what was said
    said = ground_schema(book.parameters, ["Luigi's, 2 people, on the terrace"])["properties"]
    assert said["seating"]["enum"] == ["terrace"]
    # a number out of bounds is not offered; with none left the number stays free
    assert "enum" not in ground_schema(book.parameters, ["Luigi's for 99"])["properties"]["people"]


def test_the_grounded_grammar_only_lets_through_what_was_said() -> None:
    agent = Agent("a", "Be brief.", tools=(book, calculator), ground_arguments=True)
    grammar, _ = decision_grammars(agent, ["Table at Sakura for 3"])
    assert '"\\"Sakura\\""' in grammar and "Luigi" not in grammar
    assert decision_grammars(agent)[0] != grammar  # without texts: the agent's own schema
    calls = agent.grounded_schema(["2 to the power of 10"])["anyOf"][0]["properties"]["calls"]["items"]["anyOf"]
    by_name = {c["properties"]["name"]["const"]: c["properties"]["arguments"] for c in calls}
    assert by_name["calculator"] == calculator.parameters  # @tool(grounded=False): its expression is worked out, not quoted
    assert by_name["book"]["properties"]["people"]["enum"] == [2, 10]


def test_the_agent_grounds_each_turn_on_the_task_and_the_tool_results() -> None:
    seen: list[str] = []

    def reply(request: Any) -> str:
        seen.append(engine_request(request).grammar)  # what a local model decodes under
        if len(seen) == 1:
            return json.dumps({"calls": [{"name": "book", "arguments": {"restaurant": "Sakura", "people": 2}}]})
        return json.dumps({"answer": "done"})

    agent = Agent("a", "Be brief.", tools=(book,), ground_arguments=True)
    result = anyio.run(lambda: run_agent(agent, "Sakura for 2 people", ScriptedBackend(reply)))
    assert result.output == "done" and result.calls[0].ok
    assert '\\"Sakura\\"' in seen[0] and "booked" not in seen[0]
    assert len(seen) == 2


def test_injected_parameters_are_hidden_set_by_the_app_and_refused_from_the_model() -> None:
    assert "user_id" not in orders.parameters["properties"] and orders.injected == ("user_id",)
    with pytest.raises(ToolCallError, match="set by the application"):
        validate_arguments(orders, {"status": "open", "user_id": "admin"})
    agent = Agent("a", "Be brief.", tools=(orders,))
    script = [json.dumps({"calls": [{"name": "orders", "arguments": {"status": "open"}}]}), json.dumps({"answer": "ok"})]
    result = anyio.run(lambda: run_agent(agent, "my open orders", ScriptedBackend(script), context={"user_id": "u-17"}))
    assert result.calls[0].value == "open orders of u-17"
    with pytest.raises(ConfigError, match="user_id"):
        anyio.run(lambda: run_agent(agent, "my open orders", ScriptedBackend(script)))


def test_a_model_that_keeps_setting_an_injected_parameter_ends_in_a_typed_error_and_the_tool_never_runs() -> None:
    from orchestrator.errors import AgentError

    hostile = json.dumps({"calls": [{"name": "orders", "arguments": {"status": "open", "user_id": "admin"}}]})
    agent = Agent("a", "Be brief.", tools=(orders,), max_retries=2)
    backend = ScriptedBackend(lambda request: hostile)
    with pytest.raises(AgentError):
        anyio.run(lambda: run_agent(agent, "orders", backend, context={"user_id": "u-17"}))
    assert all("set by the application" in r.messages[-1].content for r in backend.requests[1:])


def test_bad_injected_definitions_fail_when_the_tool_is_defined() -> None:
    def f(a: int, user: str) -> int:
        return a

    with pytest.raises(ToolDefinitionError, match="not parameters"):
        tool(injected=("nobody",))(f)
    assert tool(injected="user")(f).injected == ("user",)
