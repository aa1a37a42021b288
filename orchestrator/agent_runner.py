"""Runs agents: drives the pure ``agents.loop`` generator and does its I/O.

Model turns go to the named backend (streamed, so a UI sees tokens); the calls of one turn
run at once as the nodes of a small task graph, each under its timeout; a tool's exception
reaches the model as a short reason (its type and message, never a stack trace); tools that
need approval wait for the approver, or for an approval stored for the same arguments.

    result = await run_agent(agent, "What is 17 * 23?", {"default": LocalBackend(engine)})
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from agents.loop import AgentResult, ModelTurn, RunTools, ToolCall, ToolResult, agent_loop
from agents.scored_loop import DecideTurn, Escalate, scored_agent_loop
from orchestrator.backends.base import Backend
from orchestrator.errors import ConfigError, EngineError
from orchestrator.taskgraph.graph import TaskGraph
from orchestrator.taskgraph.scheduler import Runner
from orchestrator.tool_decisions import decide_on, escalation_refused
from orchestrator.types import Completion, TokenDelta
from policies.approvals import decide_approval

__all__ = ["AgentEvent", "run_agent"]

log = logging.getLogger(__name__)

Approver = Callable[[ToolCall], bool | Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """``token`` (text), ``tool_started``/``tool_finished`` (tool, call id, error), ``escalated``, ``final``."""

    kind: Literal["token", "tool_started", "tool_finished", "escalated", "final"]
    time: float
    text: str | None = None
    tool: str | None = None
    call_id: str | None = None
    error: str | None = None


async def run_agent(
    agent: Any,
    task: str,
    backends: Mapping[str, Backend] | Backend,
    *,
    approve: Approver | None = None,
    approved: set[str] | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
    context: Mapping[str, Any] | None = None,
) -> AgentResult:
    """Runs ``agent`` on ``task`` to its answer.

    ``context`` holds the values of the tools' injected parameters (``@tool(injected=...)``):
    the application's, never the model's.

    ``approve(call)`` (sync or async) is asked about each call of a tool with
    ``needs_approval``; the run waits for it. ``approved`` holds approval keys
    (``policies.approvals.approval_key``) granted before; a yes is added to it, so the same
    call with the same arguments is not asked again. With no approver such calls are denied.
    """
    backends = dict(backends) if isinstance(backends, Mapping) else {"default": backends}
    for name in filter(None, (agent.model, agent.escalate_to)):
        if name not in backends:
            raise ConfigError(f"agent {agent.name!r} uses backend {name!r}; given {sorted(backends)}")
    context = dict(context or {})
    for t in agent.tools:
        missing = [n for n in t.injected if n not in context]
        if missing:
            raise ConfigError(f"agent {agent.name!r}: tool {t.name!r} injects {missing}; pass them in context=")
    emit = on_event or (lambda event: None)
    approved = approved if approved is not None else set()
    loop = scored_agent_loop(agent, task) if agent.decide == "scored" else agent_loop(agent, task)
    reply: Any = None
    was_escalated = False
    try:
        while True:
            need = loop.send(reply)
            if isinstance(need, ModelTurn):
                if need.escalated and not was_escalated:
                    was_escalated = True
                    emit(AgentEvent("escalated", time.time(), text=need.backend))
                reply = await _model_turn(backends[need.backend], need, emit)
            elif isinstance(need, RunTools):
                reply = await _run_tools(agent, need.calls, approve, approved, emit, context)
            elif isinstance(need, DecideTurn | Escalate):  # scored decisions (Agent(decide="scored"))
                reply = await _scored_need(need, backends, emit)
            else:  # pragma: no cover - the loop yields only these two
                raise TypeError(f"the agent loop asked for {need!r}")
    except StopIteration as stop:
        result: AgentResult = stop.value
        emit(AgentEvent("final", time.time(), text=str(result.output)))
        return result
    finally:
        loop.close()


async def _scored_need(need: DecideTurn | Escalate, backends: Mapping[str, Backend], emit: Callable[[AgentEvent], None]) -> Any:
    """A scored turn on a local engine, or an escalation the routing policies may refuse (None)."""
    if isinstance(need, DecideTurn):
        return await decide_on(backends[need.backend], need.tools, need.conversation, need.settings)
    refused = escalation_refused(backends[need.backend], need.request)
    if refused is not None:
        log.info("escalation to %s refused: %s", need.backend, refused)
        return None
    emit(AgentEvent("escalated", time.time(), text=need.backend))
    return await _model_turn(backends[need.backend], ModelTurn(need.backend, need.request, True), emit)


async def _model_turn(backend: Backend, need: ModelTurn, emit: Callable[[AgentEvent], None]) -> Completion:
    async with aclosing(backend.generate(need.request)) as stream:
        async for event in stream:
            if isinstance(event, TokenDelta):
                emit(AgentEvent("token", time.time(), text=event.text))
            elif isinstance(event, Completion):
                return event
    raise EngineError(f"backend {backend.name} ended its stream without a completion")


async def _run_tools(agent: Any, calls: tuple[ToolCall, ...], approve: Approver | None, approved: set[str],
                     emit: Callable[[AgentEvent], None], context: Mapping[str, Any]) -> list[ToolResult]:
    """Runs the calls of one turn at once (one graph node each); denied calls do not run."""
    denied: dict[str, str] = {}
    for call in calls:
        decision = decide_approval(call.tool.name, call.tool.needs_approval, call.arguments, approved, can_ask=approve is not None)
        if decision.action == "ask":
            assert approve is not None
            answer = approve(call)
            if inspect.isawaitable(answer):
                answer = await answer  # the run pauses here until a person decides
            if answer is True:
                approved.add(decision.key)
            else:
                denied[call.id] = "the user did not approve this call"
        elif decision.action == "deny":
            denied[call.id] = "this tool needs approval and none was given"

    graph = TaskGraph("tool-calls")
    for call in calls:
        if call.id not in denied:
            timeout = call.tool.timeout_s or agent.tool_timeout_s
            graph.add(_node_name(call), _invoker(call, context), timeout_s=timeout, idempotent=call.tool.idempotent)
            emit(AgentEvent("tool_started", time.time(), tool=call.tool.name, call_id=call.id))
    reports: Mapping[str, Any] = {}
    outputs: Mapping[str, Any] = {}
    if len(graph):
        result = await Runner({}, failure="continue").run(graph)
        reports, outputs = result.nodes, result.outputs
    out = []
    for call in calls:
        name = _node_name(call)
        if call.id in denied:
            res = ToolResult(call, False, error=denied[call.id])
        elif name in outputs:
            res = ToolResult(call, True, value=outputs[name])
        else:
            res = ToolResult(call, False, error=_short(reports[name].error or "failed"))
        emit(AgentEvent("tool_finished", time.time(), tool=call.tool.name, call_id=call.id, error=res.error))
        out.append(res)
    return out


def _node_name(call: ToolCall) -> str:
    return f"call-{call.id}"


def _invoker(call: ToolCall, context: Mapping[str, Any]) -> Callable[[], Any]:
    """A graph step for the call: async tools run on the loop, sync ones in a worker thread."""
    kwargs = call.tool.bind(call.kwargs, context)
    if call.tool.is_async:
        async def invoke_async() -> Any:
            return await call.tool.fn(**kwargs)
        return invoke_async

    def invoke() -> Any:
        return call.tool.fn(**kwargs)
    return invoke


def _short(error: str) -> str:
    """A node error as the model should see it: 'ValueError: no such city', no node names, at most 300 characters."""
    text = error.split(" raised ", 1)[-1] if " raised " in error else error
    text = text.replace("node 'call-", "call '").split("\n", 1)[0]
    if "returned a value that is not JSON" in text:
        text = "the tool returned a value that cannot be shown to the model"
    return text if len(text) <= 300 else text[:297] + "..."
