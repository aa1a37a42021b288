"""The agent loop with scored decisions (``Agent(decide="scored")``), and escalation below a confidence.

The same protocol as ``agents.loop`` (a generator the runner drives), with one more request:

    DecideTurn  -> the runner answers with the ``agents.decide.Decision`` its local engine made
                   for this turn, or None when that backend cannot score (it is not a local
                   engine): the loop then lets the model write the turn, as ``agents.loop`` does

Each step:

1. the local model decides by scores: which tool or none, the arguments, and a calibrated
   confidence (``agents.decide``); identical calls are merged;
2. below ``agent.escalate_below`` (when ``escalate_to`` is set) the loop asks to escalate
   (``agents.loop.Escalate``: the runner's privacy policy decides, as for any escalation); when
   allowed, the larger tier writes the turn from the conversation, read like any model reply; when
   refused, the local decision stands and the step is marked ``unsure``;
3. calls run (``RunTools``); "no tool fits" is a decision too: the model then writes the answer
   (``tool_choice="none"``), from the conversation with the tools' results, if any.

``AgentResult.decisions`` holds a ``StepDecision`` per step: who decided and how sure.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.agent import Agent
from agents.decide import DEFAULT_SETTINGS, Decision, DecisionSettings, ToolView
from agents.loop import (AgentResult, Escalate, ModelTurn, RunTools, ToolCall, ToolResult, _call_key, _read_decision, _reply_text,
                         _result_text, turn_request)
from agents.prompting import system_prompt
from agents.steps import StepDecision
from orchestrator.errors import AgentError, ToolCallError
from orchestrator.types import ChatMessage, Completion, FunctionCall, RouteDecision
from tools.output_spec import new_call_id
from tools.validation import validate_arguments

__all__ = ["DecideTurn", "scored_agent_loop"]


@dataclass(frozen=True)
class DecideTurn:
    """Decide this turn by scores on ``backend``; send back the ``Decision`` (or None: cannot score)."""

    backend: str
    tools: tuple[ToolView, ...]
    conversation: tuple[ChatMessage, ...]
    settings: DecisionSettings = DEFAULT_SETTINGS


@dataclass
class _State:
    messages: list[ChatMessage]  # OpenAI's shape: calls on assistant messages, one tool message per call
    results: list[ToolResult] = field(default_factory=list)
    records: list[StepDecision] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    escalated: bool = False
    escalation: RouteDecision | None = None


def scored_agent_loop(agent: Agent, task: str) -> Generator[Any, Any, AgentResult]:
    """Runs ``agent`` on ``task`` with scored decisions; see the module docstring."""
    state = _State([ChatMessage(role="system", content=system_prompt(agent)), ChatMessage(role="user", content=task)])
    views = tuple(ToolView(t.name, t.description, t.parameters) for t in agent.tools)
    for step in range(1, agent.max_steps + 1):
        calls: tuple[ToolCall, ...] = ()
        if agent.tools and step < agent.max_steps:
            decision: Decision | None = yield DecideTurn(agent.model, views, _as_text(state.messages[1:]))
            if decision is None:  # the backend cannot score: the model writes the turn
                calls, answer = yield from _written_turn(agent, agent.model, state, step)
                state.records.append(StepDecision(step, agent.model, None, "calls" if calls else "answer"))
            else:
                calls, answer, record = yield from _scored_step(agent, decision, state, step)
                state.records.append(record)
            if answer is not None:
                return _result(answer, step, state)
        if calls and all(_call_key(c) in state.answered for c in calls):
            calls = ()  # the same calls again: their results are in the conversation; answer instead
        if not calls:
            answer = yield from _answer_turn(agent, state, step)
            if not state.records or state.records[-1].step != step:
                state.records.append(StepDecision(step, agent.model, None, "answer"))
            return _result(answer, step, state)
        yield from _run(calls, state)
    raise AgentError(f"agent {agent.name!r} gave no answer in {agent.max_steps} steps", agent=agent.name)  # pragma: no cover


def _run(calls: tuple[ToolCall, ...], state: _State) -> Generator[Any, Any, None]:
    """Runs the calls and adds them and their results to the conversation."""
    shown = json.dumps({"calls": [{"name": c.tool.name, "arguments": dict(c.arguments)} for c in calls]}, ensure_ascii=False)
    native = tuple(FunctionCall(id=c.call_id, name=c.tool.name, arguments=json.dumps(c.arguments, ensure_ascii=False)) for c in calls)
    state.messages.append(ChatMessage(role="assistant", content=shown, tool_calls=native))
    outcomes: list[ToolResult] = yield RunTools(calls)
    state.results += outcomes
    state.answered.update(_call_key(r.call) for r in outcomes if r.ok and r.call.tool.idempotent)
    state.messages += [ChatMessage(role="tool", tool_call_id=r.call.call_id, name=r.call.tool.name, content=_result_text(r)) for r in outcomes]


def _as_text(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    """The conversation as a local model reads it in a scored decision: calls as their JSON, each
    result as ``name returned: ...``."""
    out = []
    for m in messages:
        if m.role == "tool":
            out.append(ChatMessage(role="tool", content=f"{m.name or 'the tool'} returned: {m.content}"))
        else:
            out.append(ChatMessage(role=m.role, content=m.content))
    return tuple(out)


def _scored_step(agent: Agent, decision: Decision, state: _State,
                 step: int) -> Generator[Any, Any, tuple[tuple[ToolCall, ...], Any, StepDecision]]:
    """(calls to run, an answer already written or None, the step's record) for a scored decision."""
    kind = "calls" if decision.calls else "answer"
    low = agent.escalate_below is not None and decision.confidence < agent.escalate_below
    if not (low and agent.escalate_to is not None):
        return _local_calls(agent, decision, step), None, StepDecision(step, agent.model, decision.confidence, kind, unsure=low)
    why = f"confidence {decision.confidence:.2f} below {agent.escalate_below}"
    request = turn_request(agent, state.messages)  # the tools' own schemas: grounding is for the small model
    route: RouteDecision = yield Escalate(agent.model, agent.escalate_to, request)
    state.escalation = route
    if route.backend == agent.escalate_to:
        completion: Completion = yield ModelTurn(agent.escalate_to, request, True)
        choice = completion.choices[0]
        try:
            read = _read_decision(agent, choice, request, step)
        except ToolCallError as exc:
            why += f"; the escalated reply was unusable ({exc})"
        else:
            state.escalated = True
            calls = read if isinstance(read, tuple) else ()
            record = StepDecision(step, agent.escalate_to, decision.confidence, "calls" if calls else "answer", escalated=True, reason=why)
            if not calls:
                state.messages.append(ChatMessage(role="assistant", content=_reply_text(choice)))
            return calls, (None if calls else read), record
    else:
        refused = next((f"{t.policy}: {t.reason}" for t in route.trail if t.forbidden), f"{route.policy}: {route.reason}")
        why += f"; escalation refused ({refused}): kept on the device"
    return _local_calls(agent, decision, step), None, StepDecision(step, agent.model, decision.confidence, kind, unsure=True, reason=why)


def _local_calls(agent: Agent, decision: Decision, step: int) -> tuple[ToolCall, ...]:
    """The decision's calls as ``ToolCall``s, identical ones merged; one that does not validate is dropped."""
    out: list[ToolCall] = []
    seen: set[str] = set()
    for name, arguments in decision.calls:
        key = json.dumps([name, arguments], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        tool = agent.registry.lookup(name)
        try:
            kwargs = validate_arguments(tool, arguments)
        except ToolCallError:
            continue  # a scored call is built from candidates of the right types; a validator may still refuse it
        out.append(ToolCall(f"{step}.{len(out) + 1}", tool, dict(arguments), kwargs, new_call_id()))
    return tuple(out)


def _written_turn(agent: Agent, backend: str, state: _State, step: int) -> Generator[Any, Any, tuple[tuple[ToolCall, ...], Any]]:
    """A turn the model writes (calls or answer), retried on a malformed reply like ``agents.loop``."""
    messages = list(state.messages)
    for _ in range(agent.max_retries + 1):
        request = turn_request(agent, messages)
        completion: Completion = yield ModelTurn(backend, request)
        choice = completion.choices[0]
        try:
            read = _read_decision(agent, choice, request, step)
        except ToolCallError as exc:
            messages += [ChatMessage(role="assistant", content=_reply_text(choice)), ChatMessage(role="user", content=f"Error: {exc}. Reply again with valid JSON.")]
            continue
        if not isinstance(read, tuple):
            state.messages.append(ChatMessage(role="assistant", content=_reply_text(choice)))
        return (read, None) if isinstance(read, tuple) else ((), read)
    raise AgentError(f"agent {agent.name!r}: {agent.max_retries + 1} wrong replies in a row", agent=agent.name)


def _answer_turn(agent: Agent, state: _State, step: int) -> Generator[Any, Any, Any]:
    """The final answer, written by the model with no tool to call."""
    messages = list(state.messages)
    for _ in range(agent.max_retries + 1):
        request = turn_request(agent, messages, answer_only=True)
        completion: Completion = yield ModelTurn(agent.model, request)
        choice = completion.choices[0]
        try:
            read = _read_decision(agent, choice, request, step)
        except ToolCallError as exc:
            messages += [ChatMessage(role="assistant", content=_reply_text(choice)), ChatMessage(role="user", content=f"Error: {exc}.")]
            continue
        if not isinstance(read, tuple):
            state.messages.append(ChatMessage(role="assistant", content=_reply_text(choice)))
            return read
    raise AgentError(f"agent {agent.name!r}: no usable answer in {agent.max_retries + 1} tries", agent=agent.name)


def _result(output: Any, step: int, state: _State) -> AgentResult:
    return AgentResult(output, step, tuple(state.results), state.escalated, 0, tuple(state.messages), state.escalation, tuple(state.records))
