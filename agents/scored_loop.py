"""The agent loop with scored decisions (``Agent(decide="scored")``), and escalation below a confidence.

The same protocol as ``agents.loop`` (a generator the runner drives), with two more requests:

    DecideTurn  -> the runner answers with the ``agents.decide.Decision`` its local engine made
                   for this turn, or None when that backend cannot score (it is not a local
                   engine): the loop then lets the model write the turn, as ``agents.loop`` does
    Escalate    -> the runner answers with the larger tier's ``Completion``, or None when the
                   routing policies keep the conversation on the device (private data)

Each step:

1. the local model decides by scores: which tool or none, the arguments, and a calibrated
   confidence (``agents.decide``); identical calls are merged;
2. below ``agent.escalate_below`` (when ``escalate_to`` is set) the step goes to that tier with the
   conversation, written as a normal turn (calls or answer) and read like any model reply; when
   the policies refuse, the local decision stands and the step is marked ``unsure``;
3. calls run (``RunTools``); "no tool fits" is a decision too: the model then writes the answer
   under the answer grammar, from the conversation (with the tools' results, if any).

``AgentResult.decisions`` holds a ``StepDecision`` per step: who decided and how sure.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from agents.agent import Agent
from agents.decide import DEFAULT_SETTINGS, Decision, DecisionSettings, ToolView
from agents.loop import AgentResult, ModelTurn, RunTools, ToolCall, ToolResult, _call_key, _observation, _read_decision, decision_grammars
from agents.prompting import system_prompt
from agents.steps import StepDecision
from orchestrator.errors import AgentError, ToolCallError
from orchestrator.types import ChatMessage, Completion, GenerationRequest
from tools.validation import validate_arguments

__all__ = ["DecideTurn", "Escalate", "scored_agent_loop"]

_ANSWER_NOW = "Answer the user now, in words, from what the tools returned."


@dataclass(frozen=True)
class DecideTurn:
    """Decide this turn by scores on ``backend``; send back the ``Decision`` (or None: cannot score)."""

    backend: str
    tools: tuple[ToolView, ...]
    conversation: tuple[ChatMessage, ...]
    settings: DecisionSettings = DEFAULT_SETTINGS


@dataclass(frozen=True)
class Escalate:
    """Ask ``backend`` for this turn; send back its ``Completion``, or None when policies keep it local."""

    backend: str
    request: GenerationRequest
    reason: str


def scored_agent_loop(agent: Agent, task: str) -> Generator[Any, Any, AgentResult]:
    """Runs ``agent`` on ``task`` with scored decisions; see the module docstring."""
    turn_grammar, answer_grammar = decision_grammars(agent)
    conversation: list[ChatMessage] = [ChatMessage(role="user", content=task)]
    views = tuple(ToolView(t.name, t.description, t.parameters) for t in agent.tools)
    results: list[ToolResult] = []
    records: list[StepDecision] = []
    answered: set[str] = set()
    escalated_any = False
    for step in range(1, agent.max_steps + 1):
        calls: tuple[ToolCall, ...] = ()
        if agent.tools and step < agent.max_steps:
            decision: Decision | None = yield DecideTurn(agent.model, views, tuple(conversation))
            if decision is None:  # the backend cannot score: the model writes the turn
                calls, answer = yield from _written_turn(agent, agent.model, conversation, turn_grammar, step)
                records.append(StepDecision(step, agent.model, None, "calls" if calls else "answer"))
                if not calls:
                    return _result(answer, step, results, escalated_any, conversation, records)
            else:
                calls, answer, record = yield from _scored_step(agent, decision, conversation, turn_grammar, step)
                records.append(record)
                escalated_any = escalated_any or record.escalated
                if answer is not None:
                    return _result(answer, step, results, escalated_any, conversation, records)
        if calls and all(_call_key(c) in answered for c in calls):
            calls = ()  # the same calls again: their results are in the conversation; answer instead
        if not calls:
            answer = yield from _answer_turn(agent, conversation, answer_grammar)
            if not records or records[-1].step != step:
                records.append(StepDecision(step, agent.model, None, "answer"))
            return _result(answer, step, results, escalated_any, conversation, records)
        conversation.append(ChatMessage(role="assistant", content=_calls_json(calls)))
        outcomes: list[ToolResult] = yield RunTools(calls)
        results += outcomes
        answered.update(_call_key(r.call) for r in outcomes if r.ok and r.call.tool.idempotent)
        conversation.append(ChatMessage(role="tool", content=_observation(outcomes)))
    raise AgentError(f"agent {agent.name!r} gave no answer in {agent.max_steps} steps", agent=agent.name)  # pragma: no cover


def _scored_step(agent: Agent, decision: Decision, conversation: list[ChatMessage], grammar: str,
                 step: int) -> Generator[Any, Any, tuple[tuple[ToolCall, ...], Any, StepDecision]]:
    """(calls to run, an answer already written or None, the step's record) for a scored decision."""
    kind = "calls" if decision.calls else "answer"
    low = agent.escalate_below is not None and decision.confidence < agent.escalate_below
    if low and agent.escalate_to is not None:
        messages = (ChatMessage(role="system", content=system_prompt(agent)), *conversation)
        why = f"confidence {decision.confidence:.2f} below {agent.escalate_below}"
        completion: Completion | None = yield Escalate(agent.escalate_to, GenerationRequest(messages=messages, grammar=grammar,
                                                                                             max_tokens=agent.max_tokens), why)
        if completion is not None:
            try:
                read = _read_decision(agent, completion.choices[0].text, step)
            except ToolCallError as exc:
                read, why = None, f"{why}; the escalated reply was unusable ({exc})"
            if read is not None:
                calls = read if isinstance(read, tuple) else ()
                record = StepDecision(step, agent.escalate_to, decision.confidence, "calls" if calls else "answer", escalated=True, reason=why)
                return calls, (None if isinstance(read, tuple) else read), record
        else:
            why += "; the routing policies keep this conversation on the device"
        return _local_calls(agent, decision, step), None, StepDecision(step, agent.model, decision.confidence, kind, unsure=True, reason=why)
    return _local_calls(agent, decision, step), None, StepDecision(step, agent.model, decision.confidence, kind, unsure=low)


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
        out.append(ToolCall(f"{step}.{len(out) + 1}", tool, dict(arguments), kwargs))
    return tuple(out)


def _written_turn(agent: Agent, backend: str, conversation: Sequence[ChatMessage], grammar: str,
                  step: int) -> Generator[Any, Any, tuple[tuple[ToolCall, ...], Any]]:
    """A turn the model writes (calls or answer), retried on a malformed reply like ``agents.loop``."""
    messages = [ChatMessage(role="system", content=system_prompt(agent)), *conversation]
    for _ in range(agent.max_retries + 1):
        completion: Completion = yield ModelTurn(backend, GenerationRequest(messages=tuple(messages), grammar=grammar, max_tokens=agent.max_tokens))
        text = completion.choices[0].text
        try:
            read = _read_decision(agent, text, step)
        except ToolCallError as exc:
            messages += [ChatMessage(role="assistant", content=text), ChatMessage(role="user", content=f"Error: {exc}. Reply again with valid JSON.")]
            continue
        return (read, None) if isinstance(read, tuple) else ((), read)
    raise AgentError(f"agent {agent.name!r}: {agent.max_retries + 1} wrong replies in a row", agent=agent.name)


def _answer_turn(agent: Agent, conversation: list[ChatMessage], grammar: str) -> Generator[Any, Any, Any]:
    """The final answer, written by the model under the answer grammar."""
    hint = [ChatMessage(role="user", content=_ANSWER_NOW)] if any(m.role == "tool" for m in conversation) else []
    messages = [ChatMessage(role="system", content=system_prompt(agent)), *conversation, *hint]
    for _ in range(agent.max_retries + 1):
        completion: Completion = yield ModelTurn(agent.model, GenerationRequest(messages=tuple(messages), grammar=grammar, max_tokens=agent.max_tokens))
        text = completion.choices[0].text
        try:
            read = _read_decision(agent, text, agent.max_steps)
        except ToolCallError as exc:
            messages += [ChatMessage(role="assistant", content=text), ChatMessage(role="user", content=f"Error: {exc}.")]
            continue
        if not isinstance(read, tuple):
            conversation.append(ChatMessage(role="assistant", content=text))
            return read
    raise AgentError(f"agent {agent.name!r}: no usable answer in {agent.max_retries + 1} tries", agent=agent.name)


def _calls_json(calls: Sequence[ToolCall]) -> str:
    return json.dumps({"calls": [{"name": c.tool.name, "arguments": dict(c.arguments)} for c in calls]}, ensure_ascii=False)


def _result(output: Any, step: int, results: list[ToolResult], escalated: bool, conversation: list[ChatMessage],
            records: list[StepDecision]) -> AgentResult:
    return AgentResult(output, step, tuple(results), escalated, 0, tuple(conversation), tuple(records))
