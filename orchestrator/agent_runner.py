"""Runs agents: drives the pure ``agents.loop`` generator and does its I/O.

Model turns go to the named backend (streamed, so a UI sees tokens), each backend enforcing the
turn's tools and answer format its own way; a turn for a remote backend, and an escalation, first
ask the privacy policy (``orchestrator.routing.egress``): private data never leaves the device,
whatever the agent names. The calls of one turn
run at once as the nodes of a small task graph, each under its timeout. A call that gives no
result (the tool raised, ran past its timeout, returned what cannot be shown, or was not
approved) goes back to the loop as a ``ToolExecutionError`` whose text is the one-line reason
the model reads (``RuntimeError: disk full``, never a stack trace; the original exception is
its ``__cause__``). Tools that need approval wait for the approver, or for an approval stored
for the same arguments.

    result = await run_agent(agent, "What is 17 * 23?", {"default": LocalBackend(engine)})
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from agents.loop import AgentResult, Escalate, ModelTurn, RunTools, ToolCall, ToolResult, agent_loop
from agents.prompting import shared_prompt_start
from agents.scored_loop import DecideTurn, scored_agent_loop
from orchestrator.backends.base import Backend, complete
from orchestrator.errors import ConfigError, NodeFailedError, NodeTimeoutError, ToolExecutionError
from orchestrator.routing.egress import DEFAULT_AGENT_PRIVACY, turn_decision
from orchestrator.routing.router import backend_location
from orchestrator.taskgraph.graph import TaskGraph
from orchestrator.taskgraph.runs import NodeReport
from orchestrator.taskgraph.scheduler import Runner
from orchestrator.taskgraph.daemon_threads import run_in_daemon_thread
from orchestrator.taskgraph.store import to_json
from orchestrator.tool_decisions import decide_on
from orchestrator.types import Completion, TokenDelta
from policies.approvals import decide_approval
from policies.privacy import PrivacyPolicy
from tools.nesting import nesting_problem

__all__ = ["MAX_RESULT_CONTAINERS", "MAX_RESULT_DEPTH", "AgentEvent", "Approver", "run_agent"]

log = logging.getLogger(__name__)

Approver = Callable[[ToolCall], bool | Awaitable[bool]]

MAX_RESULT_DEPTH = 64
MAX_RESULT_CONTAINERS = 100_000
"""A tool result nested deeper, or holding more objects and lists, reaches the model as a short
error: turning it into JSON text would exhaust the recursion limit or the memory."""


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
    privacy: PrivacyPolicy = DEFAULT_AGENT_PRIVACY,
    labels: Iterable[str] = (),
) -> AgentResult:
    """Runs ``agent`` on ``task`` to its answer.

    ``privacy`` decides what may reach a remote backend (default: what the agent names may be
    remote, but detected private data and the data classes in ``labels`` stay on the device): a
    remote turn it refuses raises ``EgressRefusedError``; a refused escalation keeps the step on
    the device and ``AgentResult.escalation`` says why.

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
    labels = frozenset(labels)
    if agent.persist_prefix:
        await _pin_prompt_start(agent, backends[agent.model])
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
                if backend_location(backends[need.backend]) == "remote":  # raises before any socket when refused
                    turn_decision(need.request, (need.backend, backends[need.backend]), privacy=privacy, labels=labels)
                reply = await _model_turn(backends[need.backend], need, emit)
            elif isinstance(need, Escalate):
                reply = turn_decision(need.request, (need.target, backends[need.target]), (need.current, backends[need.current]),
                                      privacy=privacy, labels=labels)
            elif isinstance(need, RunTools):
                reply = await _run_tools(agent, need.calls, approve, approved, emit, context)
            elif isinstance(need, DecideTurn):  # a scored decision (Agent(decide="scored")); None: this backend cannot score
                reply = await decide_on(backends[need.backend], need.tools, need.conversation, need.settings)
            else:  # pragma: no cover - the loop yields only these two
                raise TypeError(f"the agent loop asked for {need!r}")
    except StopIteration as stop:
        result: AgentResult = stop.value
        emit(AgentEvent("final", time.time(), text=str(result.output)))
        return result
    finally:
        loop.close()


async def _pin_prompt_start(agent: Any, backend: Backend) -> None:
    """``Agent(persist_prefix=True)``: pins the prompt start every task shares on a backend that
    can (a local engine: kept in its KV cache, stored for later processes); others have nothing to pin."""
    pin = getattr(backend, "pin_prefix", None)
    if pin is None:
        log.debug("agent %s: backend %s cannot pin a prefix; persist_prefix has no effect there", agent.name, backend.name)
        return
    await pin(shared_prompt_start(agent))


async def _model_turn(backend: Backend, need: ModelTurn, emit: Callable[[AgentEvent], None]) -> Completion:
    def on_delta(delta: TokenDelta) -> None:
        emit(AgentEvent("token", time.time(), text=delta.text))

    return await complete(backend, need.request, on_delta=on_delta)


async def _run_tools(agent: Any, calls: tuple[ToolCall, ...], approve: Approver | None, approved: set[str],
                     emit: Callable[[AgentEvent], None], context: Mapping[str, Any]) -> list[ToolResult]:
    """Runs the calls of one turn at once (one graph node each); denied calls do not run."""
    denied: dict[str, ToolExecutionError] = {}
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
                denied[call.id] = ToolExecutionError("the user did not approve this call", tool=call.tool.name)
        elif decision.action == "deny":
            denied[call.id] = ToolExecutionError("this tool needs approval and none was given", tool=call.tool.name)

    graph = TaskGraph("tool-calls")
    timeouts = {call.id: call.tool.timeout_s or agent.tool_timeout_s for call in calls}
    for call in calls:
        if call.id not in denied:
            graph.add(_node_name(call), _invoker(call, context), timeout_s=timeouts[call.id], idempotent=call.tool.idempotent)
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
            res = ToolResult(call, False, failure=denied[call.id])
        elif name in outputs:
            res = ToolResult(call, True, value=outputs[name])
        else:
            res = ToolResult(call, False, failure=_failure(call, reports[name], timeouts[call.id]))
        emit(AgentEvent("tool_finished", time.time(), tool=call.tool.name, call_id=call.id, error=res.error))
        out.append(res)
    return out


def _node_name(call: ToolCall) -> str:
    return f"call-{call.id}"


def _invoker(call: ToolCall, context: Mapping[str, Any]) -> Callable[[], Any]:
    """A graph step for the call: async tools run on the loop, sync ones in a daemon thread
    (``orchestrator.taskgraph.daemon_threads``: one that outlives its timeout is logged and never
    holds up exit). What the tool raises, and a value that cannot be shown to the model, become a
    ``ToolExecutionError``."""
    kwargs = call.tool.bind(call.kwargs, context)
    if call.tool.is_async:
        async def invoke_async() -> Any:
            return await _awaited(call, call.tool.fn(**kwargs))
        return invoke_async

    def run() -> Any:
        with _as_tool_error(call):
            return call.tool.fn(**kwargs)

    async def invoke_in_thread() -> Any:
        value = await run_in_daemon_thread(run, name=f"{call.tool.name}#{call.id}")
        if inspect.isawaitable(value):  # a sync wrapper over an async tool
            return await _awaited(call, value)
        return _shown(call, value)
    return invoke_in_thread


async def _awaited(call: ToolCall, pending: Awaitable[Any]) -> Any:
    with _as_tool_error(call):
        value = await pending
    return _shown(call, value)


@contextmanager
def _as_tool_error(call: ToolCall) -> Iterator[None]:
    """The tool's exception as the model should see it: 'ValueError: no such city', one line,
    at most 300 characters; the exception itself is the ``__cause__``."""
    try:
        yield
    except ToolExecutionError:
        raise
    except Exception as exc:
        text = str(exc).split("\n", 1)[0].strip()
        line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise ToolExecutionError(line if len(line) <= 300 else line[:297] + "...", tool=call.tool.name) from exc


def _shown(call: ToolCall, value: Any) -> Any:
    """The value, if the model can be shown it: not too deep or too large to become JSON text
    (checked without recursion), then JSON within the store's limit."""
    problem = nesting_problem(value, max_depth=MAX_RESULT_DEPTH, max_containers=MAX_RESULT_CONTAINERS)
    if problem is not None:
        raise ToolExecutionError(f"the tool returned a value {problem}, which cannot be shown to the model",
                                 tool=call.tool.name)
    try:
        to_json(value)
    except (TypeError, ValueError) as exc:
        raise ToolExecutionError("the tool returned a value that cannot be shown to the model", tool=call.tool.name) from exc
    return value


def _failure(call: ToolCall, report: NodeReport, timeout_s: float | None) -> ToolExecutionError:
    """Why a call's node gave no output, typed: the tool's own failure, or its timeout."""
    error = report.exception
    if isinstance(error, NodeTimeoutError):
        failure = ToolExecutionError(f"TimeoutError: the tool ran past its timeout of {timeout_s} s", tool=call.tool.name)
        failure.__cause__ = error
        return failure
    if error is not None and isinstance(error.__cause__, ToolExecutionError):
        return error.__cause__
    # Anything else failed in the runner, not in the tool: our bug, not the model's to handle.
    raise error or NodeFailedError(f"tool call {call.id} ended {report.status} without an error", node=report.key)
