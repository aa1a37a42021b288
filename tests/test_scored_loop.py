"""The scored agent loop and escalation below a confidence, with plain data and fakes (no model).

The loop is driven with ``send()``: a ``DecideTurn`` gets a hand-made ``Decision``; an ``Escalate``
gets the privacy policy's ``RouteDecision`` (the target, or the current backend when refused). With
the runner, a remote tier and a task holding a card number: the policy keeps the step local.
"""

from __future__ import annotations

import json

import anyio
import pytest

from agents.agent import Agent
from agents.decide import Decision
from agents.loop import Escalate, ModelTurn, RunTools, ToolResult
from agents.scored_loop import DecideTurn, scored_agent_loop
from orchestrator.agent_runner import run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import ToolDefinitionError
from orchestrator.types import Choice, Completion, RouteDecision, RouteStep
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
    ask = loop.send(_decision([("add", {"a": 3, "b": 3})], 0.2))
    assert isinstance(ask, Escalate) and (ask.current, ask.target) == ("default", "big")
    assert ask.request.messages[-1].content == "2 + 3?" and [t.name for t in ask.request.tools] == ["add"]
    turn = loop.send(RouteDecision(backend="big", policy="privacy", reason="no private data"))
    assert isinstance(turn, ModelTurn) and turn.backend == "big" and turn.escalated
    run = loop.send(_completion(json.dumps({"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]})))
    assert isinstance(run, RunTools) and dict(run.calls[0].arguments) == {"a": 2, "b": 3}  # the larger tier's call
    loop.send([ToolResult(run.calls[0], True, 5)])
    loop.send(_decision([], 0.9))
    with pytest.raises(StopIteration) as stop:
        loop.send(_completion(json.dumps({"answer": "5"})))
    first = stop.value.value.decisions[0]
    assert first.backend == "big" and first.escalated and first.confidence == 0.2 and "0.20 below 0.5" in first.reason
    assert stop.value.value.escalated and stop.value.value.escalation.backend == "big"


def test_refused_escalation_keeps_the_local_decision_and_says_it_was_unsure():
    loop = scored_agent_loop(_agent(escalate_to="big", escalate_below=0.5), "2 + 3?")
    next(loop)
    loop.send(_decision([("add", {"a": 2, "b": 3})], 0.3))
    refused = RouteDecision(backend="default", policy="privacy", reason="kept local",
                            trail=(RouteStep(policy="privacy", action="forbid", reason="found payment_card", forbidden=("big",)),))
    run = loop.send(refused)
    assert isinstance(run, RunTools) and dict(run.calls[0].arguments) == {"a": 2, "b": 3}
    loop.send([ToolResult(run.calls[0], True, 5)])
    loop.send(_decision([], 0.9))
    with pytest.raises(StopIteration) as stop:
        loop.send(_completion(json.dumps({"answer": "5"})))
    first = stop.value.value.decisions[0]
    assert first.backend == "default" and first.unsure and not first.escalated and "payment_card" in first.reason


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


def test_with_the_runner_private_data_never_escalates_to_a_remote(monkeypatch):
    class Remote(ScriptedBackend):
        location = "remote"

    async def unsure(backend, tools, conversation, settings):  # the local tier's decisions, made up: unsure at first
        return _decision([("add", {"a": 1, "b": 2})], 0.1) if len(conversation) == 1 else _decision([], 0.9)

    monkeypatch.setattr("orchestrator.agent_runner.decide_on", unsure)
    big = Remote([json.dumps({"answer": "x"})], name="big")
    small = ScriptedBackend([json.dumps({"answer": "3"})], name="small")
    result = anyio.run(lambda: run_agent(_agent(model="small", escalate_to="big", escalate_below=0.5),
                                         "Add 1 and 2 for card 4111 1111 1111 1111", {"small": small, "big": big}))
    first = result.decisions[0]
    assert first.unsure and not first.escalated and first.backend == "small" and not big.requests
    assert "payment_card" in first.reason and result.output == "3" and [c.value for c in result.calls] == [3]
