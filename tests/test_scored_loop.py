"""The scored agent loop and escalation below a confidence, with plain data and fakes (no model).

The loop is driven with ``send()``: a ``DecideTurn`` gets a hand-made ``Decision``; an ``Escalate``
gets a ``Completion`` (or None: the policies kept the conversation local). The runner's part
(``escalation_refused``) is checked with a fake remote backend and with a ``Router``.
"""

from __future__ import annotations

import json

import anyio
import pytest

from agents.agent import Agent
from agents.decide import Decision
from agents.loop import ModelTurn, RunTools, ToolResult
from agents.scored_loop import DecideTurn, Escalate, scored_agent_loop
from orchestrator.agent_runner import run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import ToolDefinitionError
from orchestrator.tool_decisions import escalation_refused
from orchestrator.types import ChatMessage, Choice, Completion, GenerationRequest
from tools.tool import tool

pytestmark = pytest.mark.timeout(60)


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


def _completion(text: str) -> Completion:
    return Completion(model="m", choices=(Choice(index=0, text=text, tokens=1, finish_reason="stop"),))


def _decision(calls, confidence):
    return Decision(tuple(calls), confidence, 0.9 if calls else 0.1, "add", {})


def _agent(**kw):
    return Agent("adder", "You add.", tools=(add,), decide="scored", **kw)


def test_a_confident_call_runs_then_the_model_answers_and_each_step_is_reported():
    loop = scored_agent_loop(_agent(escalate_to="big", escalate_below=0.5), "2 + 3?")
    need = next(loop)
    assert isinstance(need, DecideTurn) and need.backend == "default" and need.conversation[-1].content == "2 + 3?"
    run = loop.send(_decision([("add", {"a": 2, "b": 3}), ("add", {"a": 2, "b": 3})], 0.8))
    assert isinstance(run, RunTools) and len(run.calls) == 1  # identical calls merged
    again = loop.send([ToolResult(run.calls[0], True, 5)])
    assert isinstance(again, DecideTurn) and again.conversation[-1].role == "tool"
    answer_turn = loop.send(_decision([], 0.9))  # no tool fits now: answer
    assert isinstance(answer_turn, ModelTurn) and answer_turn.backend == "default"
    with pytest.raises(StopIteration) as stop:
        loop.send(_completion(json.dumps({"answer": "5"})))
    result = stop.value.value
    assert result.output == "5" and not result.escalated
    assert [(d.step, d.backend, d.kind, d.escalated, d.unsure) for d in result.decisions] == [
        (1, "default", "calls", False, False), (2, "default", "answer", False, False)]
    assert result.decisions[0].confidence == 0.8


def test_below_the_threshold_the_step_goes_to_the_next_tier():
    loop = scored_agent_loop(_agent(escalate_to="big", escalate_below=0.5), "2 + 3?")
    next(loop)
    up = loop.send(_decision([("add", {"a": 3, "b": 3})], 0.2))
    assert isinstance(up, Escalate) and up.backend == "big" and "0.20 below 0.5" in up.reason
    assert up.request.messages[-1].content == "2 + 3?" and up.request.grammar
    run = loop.send(_completion(json.dumps({"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]})))
    assert isinstance(run, RunTools) and dict(run.calls[0].arguments) == {"a": 2, "b": 3}  # the larger tier's call
    loop.send([ToolResult(run.calls[0], True, 5)])
    loop.send(_decision([], 0.9))
    with pytest.raises(StopIteration) as stop:
        loop.send(_completion(json.dumps({"answer": "5"})))
    first = stop.value.value.decisions[0]
    assert first.backend == "big" and first.escalated and first.confidence == 0.2 and stop.value.value.escalated


def test_refused_escalation_keeps_the_local_decision_and_says_it_was_unsure():
    loop = scored_agent_loop(_agent(escalate_to="big", escalate_below=0.5), "2 + 3?")
    next(loop)
    loop.send(_decision([("add", {"a": 2, "b": 3})], 0.3))
    run = loop.send(None)  # the routing policies kept it on the device
    assert isinstance(run, RunTools) and dict(run.calls[0].arguments) == {"a": 2, "b": 3}
    loop.send([ToolResult(run.calls[0], True, 5)])
    loop.send(_decision([], 0.9))
    with pytest.raises(StopIteration) as stop:
        loop.send(_completion(json.dumps({"answer": "5"})))
    first = stop.value.value.decisions[0]
    assert first.backend == "default" and first.unsure and not first.escalated and "on the device" in first.reason


def test_a_backend_that_cannot_score_writes_its_turns():
    backend = ScriptedBackend([json.dumps({"calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}), json.dumps({"answer": "3"})])
    result = anyio.run(lambda: run_agent(_agent(), "1 + 2?", backend))
    assert result.output == "3" and [c.value for c in result.calls] == [3]
    assert [d.confidence for d in result.decisions] == [None, None]


def test_escalate_below_needs_scored_decisions():
    with pytest.raises(ToolDefinitionError, match="escalate_below"):
        Agent("a", "x", tools=(add,), escalate_below=0.5)
    with pytest.raises(ToolDefinitionError, match="escalate_below"):
        _agent(escalate_below=1.5)


def test_private_data_never_escalates_to_a_remote():
    class Remote:
        name, location = "cloud", "remote"

    card = GenerationRequest(messages=(ChatMessage(role="user", content="Pay with 4111 1111 1111 1111 please"),))
    plain = GenerationRequest(messages=(ChatMessage(role="user", content="What is 2 + 3?"),))
    assert escalation_refused(Remote(), card) and escalation_refused(Remote(), plain) is None
    assert escalation_refused(ScriptedBackend(["x"]), card) is None  # a local tier may see it

    from orchestrator.routing.router import Router

    class Big(ScriptedBackend):
        location = "remote"

    router = Router([Big(["x"], name="cloud")])  # default policies: no egress at all
    assert escalation_refused(router, plain)
