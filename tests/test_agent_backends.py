"""One agent definition on every kind of backend, against real servers: the embedded model in
process, llama-cpp-python's own server on loopback (grammar-enforced, like the local engine),
and a strict fake of OpenAI's API that checks every request against the ``openai`` package's
request types (native tool calls: several in one turn, streamed in pieces; and a server with
neither native tools nor structured output, which gets the format in the prompt). Escalation
from the local model to each remote kind carries the conversation in that tier's shape, and a
private task never leaves the device. No mocks of our own code.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
import pytest
from pydantic import AfterValidator, BaseModel

from agents.agent import Agent
from agents.loop import AgentResult
from orchestrator.agent_runner import run_agent
from orchestrator.backends import LocalBackend, RemoteBackend, RemoteEndpoint, RemoteTimeouts
from orchestrator.backends.retry import Retry
from tests.strict_openai import Reply, StrictOpenAI
from tests.test_remote_llama_server import server_url  # noqa: F401 - the llama_cpp.server fixture
from tools.builtin import calculator
from tools.tool import tool

pytestmark = [pytest.mark.timeout(300)]


@tool
def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: City name, e.g. "Paris".
    """
    return f"{city}: 18 degrees, light rain"


def _calls(name: str, **arguments: Any) -> dict[str, Any]:
    return {"calls": [{"name": name, "arguments": arguments}]}


# The one agent definition every backend runs.
AGENT = Agent(
    "assistant", "You are a helpful assistant.", tools=(get_weather, calculator), max_steps=3,
    examples=(("Is it cold in Oslo?", _calls("get_weather", city="Oslo")), ("What is 6 * 7?", _calls("calculator", expression="6 * 7"))),
)
TASK = "What's the weather in Paris?"


def remote(url: str, **settings: Any) -> RemoteBackend:
    timeouts = RemoteTimeouts(connect_s=5, read_s=120, total_s=200)
    return RemoteBackend(RemoteEndpoint(base_url=url, model=settings.pop("model", "smollm2"), timeouts=timeouts,
                                        retry=Retry(attempts=1), **settings))


def run(agent: Agent, task: str, backends: Any, **options: Any) -> AgentResult:
    return anyio.run(lambda: run_agent(agent, task, backends, **options))


def assert_same_kind(result: AgentResult, *, runs_ok: bool = True) -> None:
    """What every backend gives back: a validated text answer, and validated calls that ran."""
    assert type(result) is AgentResult and isinstance(result.output, str) and result.output.strip()
    assert 1 <= result.steps <= AGENT.max_steps and all(r.call.tool in AGENT.tools for r in result.calls)
    assert all(r.ok for r in result.calls) or not runs_ok


# -- the same agent on each kind of backend ------------------------------------------------------


@pytest.mark.model
def test_on_the_local_model(smollm2: Any) -> None:
    result = run(AGENT, TASK, LocalBackend(smollm2))
    # The 135M model may add a call that fails when run (a calculator on "18 degrees"): it is valid, it ran, it failed.
    assert_same_kind(result, runs_ok=False)
    assert [(r.call.tool.name, dict(r.call.arguments)) for r in result.calls][:1] == [("get_weather", {"city": "Paris"})]


@pytest.mark.model
def test_on_llama_cpp_pythons_server_with_the_local_grammar(server_url: str) -> None:  # noqa: F811
    backend = remote(server_url, llama_cpp_extras=True)  # output="grammar": the same enforcement as the local engine
    result = run(AGENT, TASK, backend)
    assert_same_kind(result)
    assert result.calls and result.calls[0].call.tool.name == "get_weather"


@pytest.mark.parametrize("stream", [True, False])
def test_on_a_strict_openai_server_with_native_tool_calls(stream: bool) -> None:
    script = [Reply(calls=(("get_weather", {"city": "Paris"}), ("calculator", {"expression": "18 + 2"}))),  # two calls in one turn
              Reply(content="Paris: 18 degrees and light rain.")]
    with StrictOpenAI(script) as fake:
        result = run(AGENT, TASK, remote(fake.url, model="strict-gpt", stream=stream))
    assert fake.rejected == [] and len(fake.requests) == 2
    assert_same_kind(result)
    assert [(r.call.tool.name, r.value) for r in result.calls] == [("get_weather", "Paris: 18 degrees, light rain"), ("calculator", 20)]
    first, second = fake.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "calculator"] and first["tool_choice"] == "auto"
    assert "grammar" not in first and first.get("stream", False) is stream
    # The second turn holds the calls on the assistant message and one tool message per call, by id.
    assistant, *results = second["messages"][-3:]
    assert [c["id"] for c in assistant["tool_calls"]] == [m["tool_call_id"] for m in results]
    assert [m["content"] for m in results] == ["Paris: 18 degrees, light rain", "20"]
    assert result.output == "Paris: 18 degrees and light rain."


def test_on_a_server_with_neither_native_tools_nor_structured_output() -> None:
    script = [Reply(content=json.dumps(_calls("get_weather", city="Paris"))),
              Reply(content='{"calls": [{"name": "get_weather", "arguments": {"town": "Paris"}}]}'),  # wrong: sent back
              Reply(content=json.dumps({"answer": "Rain in Paris."}))]
    with StrictOpenAI(script, native=False) as fake:
        result = run(AGENT, TASK, remote(fake.url, model="strict-gpt", output="prompt"))
    assert fake.rejected == []  # no tools, no response_format ever sent
    assert_same_kind(result)
    assert result.output == "Rain in Paris." and result.retries == 1 and [r.call.tool.name for r in result.calls] == ["get_weather"]
    system = fake.requests[0]["messages"][0]["content"]
    assert "must match this JSON schema" in system and '"get_weather"' in system
    # The call and its result came back as text; the wrong call's error as a user message.
    later = [m["content"] for m in fake.requests[2]["messages"]]
    assert any(c.startswith("get_weather returned: Paris: 18 degrees") for c in later)
    assert any(c.startswith("Error: ") and '"town"' in c for c in later)


# -- escalation from the local model to each remote kind ------------------------------------------

_CHECKED: list[str] = []


def _checked_twice(summary: str) -> str:
    """Stands for a check the small model fails: the first two answers are refused."""
    _CHECKED.append(summary)
    if len(_CHECKED) <= 2:
        raise ValueError("not detailed enough")
    return summary


class Report(BaseModel):
    city: str
    summary: Annotated[str, AfterValidator(_checked_twice)]


ESCALATING = Agent("reporter", "You report the weather.", tools=(get_weather,), output_type=Report, escalate_to="big",
                   max_retries=1, max_steps=3, max_tokens=128,
                   examples=(("Is it cold in Oslo?", _calls("get_weather", city="Oslo")),))


@pytest.mark.model
def test_escalation_to_a_strict_openai_server_carries_the_conversation_natively(smollm2: Any) -> None:
    _CHECKED.clear()
    with StrictOpenAI([Reply(content=json.dumps({"city": "Paris", "summary": "Light rain, 18 degrees."}))]) as fake:
        result = run(ESCALATING, TASK, {"default": LocalBackend(smollm2), "big": remote(fake.url, model="strict-gpt")})
    assert fake.rejected == [] and len(fake.requests) == 1
    assert result.escalated and result.escalation is not None and result.escalation.backend == "big"
    assert result.output == Report(city="Paris", summary="Light rain, 18 degrees.")
    body = fake.requests[0]
    assert body["response_format"]["type"] == "json_schema" and body["response_format"]["json_schema"]["schema"]["required"] == ["city", "summary"]
    roles = [m["role"] for m in body["messages"]]
    if result.calls:  # the small model called the tool first: the call and its result travel in OpenAI's shape
        assert "tool" in roles and any(m.get("tool_calls") for m in body["messages"])
    assert roles[-2:] == ["assistant", "user"] and body["messages"][-1]["content"].startswith("Error: ")


@pytest.mark.model
def test_escalation_to_llama_cpp_pythons_server(smollm2: Any, server_url: str) -> None:  # noqa: F811
    _CHECKED.clear()
    result = run(ESCALATING, TASK, {"default": LocalBackend(smollm2), "big": remote(server_url, llama_cpp_extras=True)})
    assert result.escalated and result.escalation is not None and result.escalation.backend == "big"
    assert isinstance(result.output, Report) and len(_CHECKED) == 3


@pytest.mark.model
def test_a_private_task_is_not_escalated_and_the_result_says_why(smollm2: Any) -> None:
    _CHECKED.clear()
    with StrictOpenAI([]) as fake:
        result = run(ESCALATING, "What's the weather in Paris? Mail it to jane.doe@example.com",
                     {"default": LocalBackend(smollm2), "big": remote(fake.url, model="strict-gpt")})
    assert fake.requests == [] and fake.rejected == []  # nothing left the device
    assert not result.escalated and isinstance(result.output, Report)
    decision = result.escalation
    assert decision is not None and decision.backend == "default" and decision.data_classes == ("email",)
    assert any(step.policy == "privacy" and step.forbidden == ("big",) for step in decision.trail)

