"""Agents on scripted backends: the loop's decisions, retries, escalation, tool faults, approvals, parallel calls."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import AfterValidator, BaseModel, Field

from agents.agent import Agent
from agents.loop import ModelTurn, RunTools, ToolResult, agent_loop
from agents.prompting import (
    example_arguments,
    prompt_messages,
    select_examples,
    system_prompt,
    tool_examples,
)
from orchestrator.agent_runner import AgentEvent, run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.backends.local import engine_request
from orchestrator.errors import AgentError, ConfigError, NodeTimeoutError, ToolDefinitionError, ToolExecutionError
from orchestrator.types import Choice, Completion, GenerationRequest
from policies.approvals import approval_key, decide_approval
from tools.tool import tool
from tools.validation import validate_arguments

invoked: list[str] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    invoked.append(f"add {a} {b}")
    return a + b


@tool
def boom(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"broken: {reason}")


@tool(timeout_s=0.2)
def hang(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "woke"


@tool
def weird() -> object:
    """Returns something that is not JSON."""
    return {1, 2}


@tool(needs_approval=True, idempotent=False)
def send(to: str) -> str:
    """Sends a message."""
    invoked.append(f"send {to}")
    return "sent"


def _calls(*calls: tuple[str, dict[str, Any]]) -> str:
    return json.dumps({"calls": [{"name": n, "arguments": a} for n, a in calls]})


def _answer(value: Any) -> str:
    return json.dumps({"answer": value})


def run(agent: Agent, task: str, backends: Any, **kw: Any) -> Any:
    return anyio.run(lambda: run_agent(agent, task, backends, **kw))


def setup_function() -> None:
    invoked.clear()


def test_call_then_answer_and_the_tools_are_sent() -> None:
    backend = ScriptedBackend([_calls(("add", {"a": 2, "b": 3})), _answer("5")])
    events: list[AgentEvent] = []
    result = run(Agent("adder", "You add.", tools=(add,)), "2 + 3?", backend, on_event=events.append)
    assert result.output == "5" and result.steps == 2 and invoked == ["add 2 3"]
    assert result.calls[0].ok and result.calls[0].value == 5
    first = backend.requests[0]
    assert [t.name for t in first.tools] == ["add"] and first.tool_choice == "auto" and first.grammar is None
    assert "Tools you can call:\n- add(a: integer, b: integer): Add two integers." in first.messages[0].content
    grammar = engine_request(first).grammar  # what a local model decodes under
    assert grammar and '"\\"add\\""' in grammar
    # OpenAI's shape: the call on the assistant message, its result in a tool message answering it by id.
    call_turn, result_turn = backend.requests[1].messages[-2:]
    assert [(c.name, json.loads(c.arguments)) for c in call_turn.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert result_turn.role == "tool" and result_turn.tool_call_id == call_turn.tool_calls[0].id and result_turn.content == "5"
    # ... which a local model reads as text, as before.
    assert engine_request(backend.requests[1]).messages[-1].content.splitlines() == [
        "add returned: 5", "If this answers the request, answer the user now, in words."]
    assert [e.kind for e in events if e.kind != "token"] == ["tool_started", "tool_finished", "final"]


def test_the_last_step_may_only_answer() -> None:
    agent = Agent("a", "x", tools=(add,), max_steps=2)
    loop = agent_loop(agent, "t")
    first = next(loop)
    assert isinstance(first, ModelTurn) and first.request.tool_choice == "auto"
    need = loop.send(Completion(model="m", choices=(Choice(index=0, text=_calls(("add", {"a": 1, "b": 1})), tokens=1, finish_reason="stop"),)))
    assert isinstance(need, RunTools)
    last = loop.send([])
    assert isinstance(last, ModelTurn) and last.request.tool_choice == "none"
    assert '\\"calls\\"' not in (engine_request(last.request).grammar or "")


def test_invalid_json_100_times_ends_in_a_typed_error_and_no_tool_runs() -> None:
    backend = ScriptedBackend(lambda r: "{not json")
    with pytest.raises(AgentError, match="3 wrong replies in a row"):
        run(Agent("a", "x", tools=(add,), max_retries=2), "t", backend)
    assert invoked == [] and len(backend.requests) == 3
    assert "Error: the reply is not valid JSON" in backend.requests[-1].messages[-1].content


def test_unknown_tool_and_bad_arguments_go_back_to_the_model() -> None:
    backend = ScriptedBackend([_calls(("rm", {"path": "/"})), _calls(("add", {"a": "1.5", "b": 2})), _calls(("add", {"a": 1, "b": 2})), _answer("3")])
    result = run(Agent("a", "x", tools=(add,), max_retries=3), "t", backend)
    assert result.output == "3" and result.retries == 2 and invoked == ["add 1 2"]
    errors = [m.content for m in backend.requests[-1].messages if m.role == "user" and m.content.startswith("Error")]
    assert "unknown tool 'rm'" in errors[0] and "the tools are: add" in errors[0]
    assert 'argument "a"' in errors[1]


def test_escalation_carries_the_failed_attempt() -> None:
    small = ScriptedBackend(lambda r: '{"calls": "garbage"}', name="small")
    large = ScriptedBackend([_answer("fixed")], name="large")
    events: list[AgentEvent] = []
    result = run(Agent("a", "x", max_retries=1, escalate_to="large"), "t", {"default": small, "large": large}, on_event=events.append)
    assert result.output == "fixed" and result.escalated
    assert len(small.requests) == 2 and any(m.content == '{"calls": "garbage"}' for m in large.requests[0].messages)
    assert result.escalation is not None and result.escalation.backend == "large"
    assert "escalated" in [e.kind for e in events]


def test_tool_faults_reach_the_model_briefly_and_the_run_continues() -> None:
    backend = ScriptedBackend([_calls(("boom", {"reason": "disk"}), ("hang", {"seconds": 5.0}), ("weird", {})), _answer("coped")])
    t0 = time.perf_counter()
    result = run(Agent("a", "x", tools=(boom, hang, weird)), "t", backend)
    assert time.perf_counter() - t0 < 3
    assert result.output == "coped" and not any(r.ok for r in result.calls)
    seen = engine_request(backend.requests[1]).messages[-1].content  # the tool messages, as a local model reads them
    assert "boom failed: RuntimeError: broken: disk" in seen
    assert "hang failed:" in seen and "timeout of 0.2 s" in seen
    assert "weird failed: the tool returned a value that cannot be shown to the model" in seen
    assert "Traceback" not in seen and "File " not in seen


def test_tool_faults_reach_the_loop_as_typed_errors_with_their_cause() -> None:
    backend = ScriptedBackend([_calls(("boom", {"reason": "disk"}), ("hang", {"seconds": 5.0}), ("weird", {}), ("send", {"to": "a@x"})),
                               _answer("coped")])
    result = run(Agent("a", "x", tools=(boom, hang, weird, send)), "t", backend)
    failures = [r.failure for r in result.calls]
    assert all(isinstance(f, ToolExecutionError) for f in failures)
    assert [f.tool for f in failures] == ["boom", "hang", "weird", "send"]
    assert str(failures[0]) == "RuntimeError: broken: disk" and isinstance(failures[0].__cause__, RuntimeError)
    assert str(failures[1]).startswith("TimeoutError: ") and isinstance(failures[1].__cause__, NodeTimeoutError)
    assert isinstance(failures[2].__cause__, TypeError)  # a set is not JSON
    assert failures[3].__cause__ is None and result.calls[3].error == "this tool needs approval and none was given"
    assert invoked == []  # the call that needed approval did not run


def test_a_deep_or_huge_tool_result_reaches_the_model_as_a_short_error() -> None:
    """A 100,000-deep result used to raise an ExceptionGroup around a RecursionError from run_agent."""

    def nested(depth: int) -> list:
        value: list = []
        for _ in range(depth):
            value = [value]
        return value

    @tool
    def deep() -> object:
        """Returns a value nested 100,000 levels deep."""
        return nested(100_000)

    @tool
    async def wide() -> object:
        """Returns more lists than a result may hold."""
        return [[] for _ in range(200_000)]

    @tool
    def fine() -> object:
        """Returns a nested value of a sane depth."""
        return nested(10)

    backend = ScriptedBackend([_calls(("deep", {}), ("wide", {}), ("fine", {})), _answer("coped")])
    result = run(Agent("a", "x", tools=(deep, wide, fine)), "t", backend)
    assert result.output == "coped" and [r.ok for r in result.calls] == [False, False, True]
    seen = engine_request(backend.requests[1]).messages[-1].content  # the tool messages, as a local model reads them
    assert "deep failed: the tool returned a value nested deeper than 64 levels" in seen
    assert "wide failed: the tool returned a value made of more than 100000 objects" in seen
    assert "fine returned: " + json.dumps(nested(10)) in seen
    assert "Traceback" not in seen and len(seen) < 1000


def test_calls_of_one_turn_run_at_once() -> None:
    running = {"now": 0, "peak": 0}

    @tool
    async def slow(x: int) -> int:
        """Slow."""
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await anyio.sleep(0.1)
        running["now"] -= 1
        return x

    backend = ScriptedBackend([_calls(("slow", {"x": 1}), ("slow", {"x": 2}), ("slow", {"x": 3})), _answer("done")])
    result = run(Agent("a", "x", tools=(slow,)), "t", backend)
    assert running["peak"] == 3 and [r.value for r in result.calls] == [1, 2, 3]


def test_approvals_are_tied_to_the_arguments() -> None:
    def script() -> ScriptedBackend:
        return ScriptedBackend([_calls(("send", {"to": "a@x"})), _answer("ok")])

    result = run(Agent("a", "x", tools=(send,)), "t", script())
    assert invoked == [] and result.calls[0].error == "this tool needs approval and none was given"
    asked: list[str] = []

    async def approver(call: Any) -> bool:
        asked.append(call.arguments["to"])
        await anyio.sleep(0.01)  # a person deciding
        return True

    approved: set[str] = set()
    run(Agent("a", "x", tools=(send,)), "t", script(), approve=approver, approved=approved)
    run(Agent("a", "x", tools=(send,)), "t", script(), approve=approver, approved=approved)
    assert asked == ["a@x"] and invoked == ["send a@x", "send a@x"] and approval_key("send", {"to": "a@x"}) in approved
    run(Agent("a", "x", tools=(send,)), "t", script(), approve=lambda call: False, approved=set())
    assert invoked == ["send a@x", "send a@x"]
    assert decide_approval("send", True, {"to": "b@x"}, approved, can_ask=False).action == "deny"


class Weather(BaseModel):
    city: str
    celsius: int


def test_structured_output_is_validated() -> None:
    backend = ScriptedBackend([_answer({"city": "Oslo", "celsius": "cold"}), _answer({"city": "Oslo", "celsius": -3})])
    result = run(Agent("a", "x", output_type=Weather), "t", backend)
    assert result.output == Weather(city="Oslo", celsius=-3) and result.retries == 1
    assert '\\"celsius\\"' in (engine_request(backend.requests[0]).grammar or "")


def test_definition_errors() -> None:
    with pytest.raises(ToolDefinitionError, match="output_type"):
        Agent("a", "x", output_type=dict)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="two tools are named"):
        Agent("a", "x", tools=(add, add))
    with pytest.raises(ToolDefinitionError, match="max_steps"):
        Agent("a", "x", max_steps=0)
    with pytest.raises(ToolDefinitionError, match="speculative"):
        Agent("a", "x", speculative="fast")  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="user"):
        Agent("a", "x", user="")
    with pytest.raises(ConfigError, match="backend 'big'"):
        run(Agent("a", "x", escalate_to="big"), "t", ScriptedBackend([]))


def test_requests_carry_the_agent_limits() -> None:
    backend = ScriptedBackend([_answer("hi")])
    run(Agent("a", "Be brief.", max_tokens=50), "t", backend)
    request: GenerationRequest = backend.requests[0]
    assert request.max_tokens == 50 and request.messages[0].content.startswith("Be brief.")
    assert (request.speculative, request.user) == ("off", None)
    backend = ScriptedBackend([_answer("hi")])
    run(Agent("a", "Be brief.", speculative="auto", user="team-1"), "t", backend)
    assert (backend.requests[0].speculative, backend.requests[0].user) == ("auto", "team-1")


# -- prompting ---------------------------------------------------------------------------------



@tool
def get_weather(city: Annotated[str, Field(max_length=40)], unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    return f"{city}: 18 degrees {unit}, light rain"


@tool
def set_timer(minutes: Annotated[int, Field(ge=1, le=1440)], label: str | None = None) -> str:
    """Start a countdown timer."""
    return "set"


class Slot(BaseModel):
    people: Annotated[int, Field(ge=1, le=20)]
    time: Annotated[str, Field(min_length=5, max_length=5)]


@tool
def book_table(restaurant: str, slot: Slot, tags: Annotated[list[str], Field(min_length=1)]) -> str:
    """Book a table at a restaurant."""
    return "booked"


def test_the_system_prompt_lists_the_tools_and_names_none_in_the_format() -> None:
    text = system_prompt(Agent("a", "Be useful.", tools=(get_weather, set_timer, add)))
    assert text.startswith("Be useful.") and "- get_weather(city: string" in text
    fmt = text.rsplit("\n\n", 1)[1]
    assert '"<tool name>"' in fmt and not any(name in fmt for name in ("get_weather", "set_timer", "add"))
    assert system_prompt(Agent("a", "Chat.")).endswith('{"answer": ...}.')


def test_examples_are_turns_the_closest_last_and_limited() -> None:
    examples = (
        ("Will it rain in Madrid?", {"calls": [{"name": "get_weather", "arguments": {"city": "Madrid"}}]}),
        ("Set a 15 minute timer called tea.", '{"calls": [{"name": "set_timer", "arguments": {"minutes": 15, "label": "tea"}}]}'),
        ("Add 2 and 3.", '{"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}'),
    )
    agent = Agent("a", "x", tools=(get_weather, set_timer, add), examples=examples, max_examples=2)
    messages = prompt_messages(agent, "I need a timer for 10 minutes.")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-2].content == '{"calls": [{"name": "set_timer", "arguments": {"minutes": 15, "label": "tea"}}]}'
    assert messages[-1].content == "I need a timer for 10 minutes."
    assert json.loads(messages[2].content)  # given as Python data, stored as one line of JSON
    assert select_examples(agent, "Weather in Rome, please")[-1][0] == "Will it rain in Madrid?"
    assert prompt_messages(Agent("a", "x", tools=(add,), max_examples=0), "t")[1:] == prompt_messages(Agent("a", "x"), "t")[1:]
    every = Agent("a", "x", tools=(get_weather, set_timer, add), examples=examples, max_examples=None)
    first, second = prompt_messages(every, "Weather in Rome?"), prompt_messages(every, "A timer, 5 minutes.")
    assert first[:-1] == second[:-1] and len(first) == 8  # all three, as given: the same start for every task
    assert [m.content for m in first[1:-1:2]] == [q for q, _ in examples]


def test_examples_come_in_rounds_so_no_tool_holds_the_last_turns() -> None:
    def call(name: str, **arguments: Any) -> dict:
        return {"calls": [{"name": name, "arguments": arguments}]}

    examples = (("Rain in Oslo?", call("get_weather", city="Oslo")), ("Rain in Rome?", call("get_weather", city="Rome")),
                ("Timer 5.", call("set_timer", minutes=5)), ("Timer 9.", call("set_timer", minutes=9)),
                ("Add 1 and 2.", call("add", a=1, b=2)))
    agent = Agent("a", "x", tools=(get_weather, set_timer, add), examples=examples)
    asked = [m.content for m in prompt_messages(agent, "t")[1:-1:2]]
    assert asked == ["Rain in Oslo?", "Timer 5.", "Add 1 and 2.", "Rain in Rome?", "Timer 9."]


def test_tools_without_an_example_get_one_from_their_schema() -> None:
    agent = Agent("a", "x", tools=(get_weather, set_timer, book_table),
                  examples=(("Weather in Oslo?", '{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'),))
    pool = tool_examples(agent)
    assert pool[-1][0] == "Weather in Oslo?" and len(pool) == 3  # the developer's last, nearest the task
    by_tool = {json.loads(r)["calls"][0]["name"]: (q, json.loads(r)["calls"][0]["arguments"]) for q, r in pool}
    assert by_tool["set_timer"] == ("Start a countdown timer: minutes 2.", {"minutes": 2})
    request, args = by_tool["book_table"]
    assert request.startswith("Book a table at a restaurant: restaurant restaurant, slot {")
    assert args["slot"]["time"] == "timex" and args["tags"] == ["tags"]
    for t in (get_weather, set_timer, book_table):
        validate_arguments(t, by_tool.get(t.name, ("", {"city": "Paris"}))[1])
    assert example_arguments(get_weather.parameters["properties"]["city"], "city") == "Paris"  # the description's e.g.
    assert example_arguments({"type": "integer", "minimum": 0, "maximum": 1}) == 1
    assert example_arguments({"type": "number", "minimum": 5, "maximum": 35}) == 5.5
    assert example_arguments({"type": "string", "examples": ["EUR"]}) == "EUR"


def _odd(n: int) -> int:
    if n % 2 == 0:
        raise ValueError("must be odd")
    return n


@tool
def odd(n: Annotated[int, AfterValidator(_odd)]) -> int:
    """Needs an odd number (its own validator; the schema cannot say so)."""
    return n


def test_an_example_that_cannot_be_made_valid_is_left_out() -> None:
    agent = Agent("a", "x", tools=(odd, add))
    assert [json.loads(r)["calls"][0]["name"] for _, r in tool_examples(agent)] == ["add"]


def test_developer_examples_are_checked_when_the_agent_is_defined() -> None:
    def make(example: Any) -> Agent:
        return Agent("a", "x", tools=(add,), examples=(example,))

    with pytest.raises(ToolDefinitionError, match="unknown tool 'sub'"):
        make(("t", '{"calls": [{"name": "sub", "arguments": {}}]}'))
    with pytest.raises(ToolDefinitionError, match='argument "a"|"a"'):
        make(("t", {"calls": [{"name": "add", "arguments": {"a": "1", "b": 2}}]}))
    with pytest.raises(ToolDefinitionError, match="not JSON"):
        make(("t", "{calls"))
    with pytest.raises(ToolDefinitionError, match="pair"):
        make(("only a request",))
    with pytest.raises(ToolDefinitionError, match="answer"):
        make(("t", {"answer": 3}))
    with pytest.raises(ToolDefinitionError, match="max_examples"):
        Agent("a", "x", max_examples=-1)
    assert make(("Hi", {"answer": "Hello!"})).examples == (("Hi", '{"answer": "Hello!"}'),)


def test_a_repeated_call_is_not_run_again_the_model_is_asked_to_answer() -> None:
    backend = ScriptedBackend([_calls(("add", {"a": 2, "b": 3})), _calls(("add", {"b": 3, "a": 2})), _answer("5")])
    result = run(Agent("a", "x", tools=(add,), max_steps=4), "2 + 3?", backend)
    assert result.output == "5" and invoked == ["add 2 3"] and len(result.calls) == 1
    assert backend.requests[2].tool_choice == "none"  # the third turn may only answer
    assert backend.requests[2].messages == backend.requests[1].messages  # the repeat is not shown
    assert result.steps == 3


def test_a_repeated_call_that_failed_or_is_not_idempotent_runs_again() -> None:
    backend = ScriptedBackend([_calls(("send", {"to": "a@x"})), _calls(("send", {"to": "a@x"})), _answer("ok")])
    result = run(Agent("a", "x", tools=(send,)), "t", backend, approve=lambda call: True)
    assert invoked == ["send a@x", "send a@x"] and result.output == "ok"


def test_strings_in_calls_are_capped_so_a_call_ends_within_max_tokens() -> None:
    from agents.loop import decision_grammars

    @tool
    def calc(expression: Annotated[str, Field(max_length=500)], unit: Literal["a-very-long-unit-name-" * 3] = "a-very-long-unit-name-" * 3) -> str:
        """Computes."""
        return expression

    turn, last = decision_grammars(Agent("a", "x", tools=(calc,), max_tokens=200))
    assert "char{0,50}" in turn.replace(" ", "") and "{0,500}" not in turn  # 200 // 4
    assert ("a-very-long-unit-name-" * 3) in turn  # enum values are left whole
    assert "{1,184}" in last.replace(" ", "") and "{0,600}" not in turn + last  # a text answer: 200 - 16
    small = decision_grammars(Agent("a", "x", tools=(calc,), max_tokens=40))[0]
    assert "char{0,32}" in small.replace(" ", "")


@tool
def send_email(to: Annotated[str, Field(max_length=60)], subject: Annotated[str, Field(max_length=60)]) -> str:
    """Send an email."""
    return "sent"


@pytest.mark.timeout(120)
def test_on_smollm2_the_weather_question_calls_the_weather_tool_once_and_answers(smollm2_path: Any) -> None:
    # One developer example per tool. With only schema-made examples (or two developer ones)
    # smollm2-135m called current_time here: see the measurements in agents/prompting.py.
    from orchestrator.backends.local import LocalBackend
    from orchestrator.engine import EngineConfig, LocalEngine
    from tools.builtin import calculator, current_time

    def calls(name: str, **arguments: Any) -> dict[str, Any]:
        return {"calls": [{"name": name, "arguments": arguments}]}

    examples = (("What is 6 * 7?", calls("calculator", expression="6 * 7")),
                ("What time is it in Tokyo?", calls("current_time", timezone="Asia/Tokyo")),
                ('Email jo@mail.org, subject "Hi".', calls("send_email", to="jo@mail.org", subject="Hi")),
                ("Is it cold in Oslo?", calls("get_weather", city="Oslo")))
    agent = Agent("assistant", "You are a helpful assistant.", tools=(get_weather, calculator, current_time, send_email), examples=examples)
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, max_sequences=2, n_threads=1), name="smollm2-135m") as engine:
        result = run(agent, "What's the weather in Paris?", LocalBackend(engine))
    assert [(r.call.tool.name, dict(r.call.arguments)) for r in result.calls][:1] == [("get_weather", {"city": "Paris"})]
    keys = [json.dumps([r.call.tool.name, r.call.arguments], sort_keys=True) for r in result.calls]
    assert len(keys) == len(set(keys))  # never the same call twice
    assert isinstance(result.output, str) and result.output and result.steps <= agent.max_steps


# -- native tool calls, escalation and privacy -----------------------------------------------------


def test_native_tool_calls_make_the_same_decision_as_calls_written_as_json() -> None:
    from orchestrator.types import FunctionCall

    agent = Agent("a", "x", tools=(add,))
    decisions = []
    for choice in (Choice(index=0, text="", tokens=1, finish_reason="tool_calls",
                          tool_calls=(FunctionCall(id="call_9", name="add", arguments='{"a": 1, "b": 2}'),
                                      FunctionCall(id="call_10", name="add", arguments='{"a": 3, "b": 4}'))),
                   Choice(index=0, text=_calls(("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})), tokens=1, finish_reason="stop")):
        loop = agent_loop(agent, "t")
        next(loop)
        need = loop.send(Completion(model="m", choices=(choice,)))
        assert isinstance(need, RunTools)
        decisions.append([(c.id, c.tool.name, dict(c.arguments), dict(c.kwargs)) for c in need.calls])
        if choice.tool_calls:
            assert [c.call_id for c in need.calls] == ["call_9", "call_10"]  # the tool messages answer these ids
            turn = loop.send([ToolResult(c, True, value=c.kwargs["a"] + c.kwargs["b"]) for c in need.calls])
            assert [(m.tool_call_id, m.content) for m in turn.request.messages[-2:]] == [("call_9", "3"), ("call_10", "7")]
    assert decisions[0] == decisions[1] == [("1.1", "add", {"a": 1, "b": 2}, {"a": 1, "b": 2}), ("1.2", "add", {"a": 3, "b": 4}, {"a": 3, "b": 4})]


def test_a_plain_text_reply_is_the_answer_and_a_broken_json_one_is_sent_back() -> None:
    backend = ScriptedBackend(["{\"answer\": \"cut", "It is 5."])
    result = run(Agent("a", "x", tools=(add,)), "t", backend)
    assert result.output == "It is 5." and result.retries == 1


class _Remote(ScriptedBackend):
    """A scripted backend that says it is remote (what the privacy policy reads)."""

    location = "remote"


def test_a_private_task_never_leaves_the_device_whatever_the_agent_names() -> None:
    from orchestrator.errors import EgressRefusedError

    small, cloud = ScriptedBackend(['{"calls": 1}'] * 2 + [_answer("kept")], name="small"), _Remote([_answer("cloud")], name="cloud")
    agent = Agent("a", "x", max_retries=1, escalate_to="cloud")
    result = run(agent, "Write to jane.doe@example.com", {"default": small, "cloud": cloud})
    # Escalation refused: the step stays on the device for another round, and the result says why.
    assert result.output == "kept" and not result.escalated and cloud.requests == []
    assert result.escalation is not None and result.escalation.backend == "default" and "email" in result.escalation.data_classes
    assert any(s.policy == "privacy" and s.forbidden == ("cloud",) for s in result.escalation.trail)
    # With nothing to ask on the device, the error says why the step did not escalate.
    failing = ScriptedBackend(lambda r: '{"calls": 1}', name="small")
    with pytest.raises(AgentError, match="escalation to 'cloud' was refused .*privacy"):
        run(agent, "t", {"default": failing, "cloud": cloud}, labels=("medical",))
    # An agent whose own model is remote: refused before any request.
    with pytest.raises(EgressRefusedError):
        run(Agent("a", "x", model="cloud"), "Call +44 20 7946 0958", {"cloud": cloud})
    assert cloud.requests == []
    # Data that may leave does: the escalation goes to the remote tier.
    ok = run(agent, "t", {"default": ScriptedBackend(['{"calls": 1}'] * 2, name="small"), "cloud": cloud})
    assert ok.output == "cloud" and ok.escalated and ok.escalation is not None and ok.escalation.backend == "cloud"


class _PinningBackend(ScriptedBackend):
    """A scripted backend that, like ``LocalBackend``, can pin a prefix (records what it was asked)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pinned: list[tuple[Any, ...]] = []

    async def pin_prefix(self, messages: Any) -> None:
        self.pinned.append(tuple(messages))


def test_persist_prefix_pins_the_prompt_start_every_task_shares() -> None:
    examples = (("Add 1 and 2", {"calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}),)
    agent = Agent("adder", "You add.", tools=(add,), examples=examples, persist_prefix=True)
    backend = _PinningBackend([_calls(("add", {"a": 2, "b": 3})), _answer("5")])
    assert run(agent, "2 + 3?", backend).output == "5"
    [pinned] = backend.pinned
    assert list(pinned) == prompt_messages(agent, "2 + 3?")[:-1]  # the system prompt and the examples
    assert backend.requests[0].messages[: len(pinned)] == pinned
    # Examples chosen per task are not shared: only the system prompt is pinned.
    chosen = Agent("adder", "You add.", tools=(add,), examples=examples, persist_prefix=True, max_examples=1)
    backend = _PinningBackend([_answer("5")])
    run(chosen, "2 + 3?", backend)
    assert [m.role for m in backend.pinned[0]] == ["system"]
    # Off by default; and a backend that cannot pin is simply used.
    plain = _PinningBackend([_answer("5")])
    run(Agent("adder", "You add.", tools=(add,)), "2 + 3?", plain)
    assert plain.pinned == []
    assert run(agent, "2 + 3?", ScriptedBackend([_answer("5")])).output == "5"
    with pytest.raises(ToolDefinitionError, match="persist_prefix"):
        Agent("adder", "You add.", persist_prefix="yes")  # type: ignore[arg-type]
