"""The agent loop as a generator: it decides, the orchestrator does the I/O.

``agent_loop(agent, task)`` yields what it needs and receives the results (the shape of
httpx's ``Auth.auth_flow``):

    ModelTurn  -> receives the model's Completion
    RunTools   -> receives one ToolResult per call (the calls run at once)

and returns an ``AgentResult``. Every model turn is constrained by a grammar built from the
tool schemas and the output type, so a local model's reply always parses; what the grammar
cannot check (a validator, a range) is checked here, and a wrong reply goes back to the model
as a short error, at most ``max_retries`` times in a row, then the step escalates to
``agent.escalate_to`` (carrying the failed attempts as context) or ends in ``AgentError``.

What the model reads comes from ``agents.prompting`` (system prompt, worked examples as earlier
turns, the task). A turn that only repeats calls already made with the same arguments (idempotent
tools whose runs succeeded) is not run again: the results are in the conversation, so the loop
asks for the answer instead (small models tend to call the same tool again and again).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.agent import Agent
from agents.answers import runaway
from agents.prompting import prompt_messages
from agents.steps import StepDecision
from orchestrator.errors import AgentError, ToolCallError
from orchestrator.types import ChatMessage, Completion, GenerationRequest
from tools.grammar import schema_to_gbnf
from tools.tool import Tool
from tools.validation import validate_arguments

__all__ = ["AgentResult", "ModelTurn", "RunTools", "ToolCall", "ToolResult", "agent_loop", "decision_grammars"]

_MAX_RESULT_CHARS = 2000  # what the model sees of one tool result


@dataclass(frozen=True)
class ModelTurn:
    """Ask ``backend`` for the next turn; send back its ``Completion``."""

    backend: str
    request: GenerationRequest
    escalated: bool = False


@dataclass(frozen=True)
class ToolCall:
    id: str
    tool: Tool
    arguments: Mapping[str, Any]  # the JSON the model wrote (validated)
    kwargs: Mapping[str, Any]  # converted to the signature's types


@dataclass(frozen=True)
class RunTools:
    """Run these calls (at once); send back one ``ToolResult`` per call, in order."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall
    ok: bool
    value: Any = None  # the tool's JSON-able result when ok
    error: str | None = None  # a short reason for the model when not


@dataclass(frozen=True)
class AgentResult:
    output: Any  # text, or an instance of the agent's output type
    steps: int
    calls: tuple[ToolResult, ...] = ()
    escalated: bool = False
    retries: int = 0
    messages: tuple[ChatMessage, ...] = field(default=(), repr=False)
    decisions: tuple[StepDecision, ...] = ()  # per step, who decided and how sure (scored agents)


def decision_grammars(agent: Agent, texts: Sequence[str] | None = None) -> tuple[str, str]:
    """(grammar of a normal turn: calls or answer, grammar of the last turn: answer only).

    Strings are held to what fits in ``agent.max_tokens`` even at one character per token (the
    grammar may be stricter than the schema): a text answer to ``max_tokens - 16`` characters,
    every other string (call arguments, fields of a structured answer) to ``max_tokens // 4``
    (at least 32). So a small model that starts repeating itself inside a string still closes
    its JSON: a reply cut by the token limit is not JSON (measured on smollm2-135m: a
    500-character calculator expression filled with ", 50, 100, 200, ..." and a 600-character
    answer both ran into the limit of 256 tokens, three times in a row for the answer).
    """
    answer = agent.answer_schema()
    # A text answer is the reply's only string: it may take all the tokens but a few (JSON around it).
    answer = _cap_strings(answer, max(32, agent.max_tokens - 16) if answer.get("type") == "string" else max(32, agent.max_tokens // 4))
    answer_only = {"type": "object", "properties": {"answer": answer}, "required": ["answer"], "additionalProperties": False}
    schema = agent.grounded_schema(texts) if agent.ground_arguments and texts is not None else agent.decision_schema
    if "anyOf" in schema:  # [calls, answer]
        schema = {"anyOf": [_cap_strings(schema["anyOf"][0], max(32, agent.max_tokens // 4)), answer_only]}
    else:
        schema = answer_only
    return schema_to_gbnf(schema), schema_to_gbnf(answer_only)


def _cap_strings(schema: Any, cap: int) -> Any:
    """A copy of ``schema`` whose free strings take at most ``cap`` characters."""
    if isinstance(schema, list):
        return [_cap_strings(s, cap) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("enum", "const", "default", "examples") else _cap_strings(v, cap)) for k, v in schema.items()}
    kinds = out.get("type")
    if (kinds == "string" or (isinstance(kinds, list) and "string" in kinds)) and "enum" not in out and "const" not in out:
        out["maxLength"] = max(min(out.get("maxLength", cap), cap), out.get("minLength", 0))
    return out


def agent_loop(agent: Agent, task: str) -> Generator[ModelTurn | RunTools, Any, AgentResult]:
    """Runs ``agent`` on ``task``; see the module docstring for the protocol."""
    if agent.decide == "scored":
        raise AgentError(f"agent {agent.name!r} decides by scores: run agents.scored_loop.scored_agent_loop", agent=agent.name)
    turn_grammar, last_grammar = decision_grammars(agent)
    messages = prompt_messages(agent, task)
    backend, escalated, total_retries = agent.model, False, 0
    results: list[ToolResult] = []
    answered: set[str] = set()  # calls that ran and succeeded, with idempotent tools
    answer_now = False
    observed: list[str] = []  # what the tools returned, as the model read it (arguments are grounded on these too)
    for step in range(1, agent.max_steps + 1):
        if agent.ground_arguments and agent.tools:  # the conversation grew: narrow the arguments to it again
            turn_grammar = decision_grammars(agent, [task, *observed])[0]
        grammar = last_grammar if step == agent.max_steps or answer_now else turn_grammar
        retries = 0
        while True:
            # 1. Ask the model for a turn, constrained to a call or an answer.
            request = GenerationRequest(messages=tuple(messages), grammar=grammar, max_tokens=agent.max_tokens)
            completion: Completion = yield ModelTurn(backend, request, escalated)
            text = completion.choices[0].text
            try:
                decision = _read_decision(agent, text, step)
                break
            except ToolCallError as exc:
                # 2. A reply the grammar let through but that is still wrong goes back to the model.
                messages += [ChatMessage(role="assistant", content=text), ChatMessage(role="user", content=f"Error: {exc}. Reply again with valid JSON.")]
                retries += 1
                total_retries += 1
                if retries <= agent.max_retries:
                    continue
                if agent.escalate_to is not None and not escalated:
                    backend, escalated, retries = agent.escalate_to, True, 0  # a larger model gets the failed attempts
                    continue
                raise AgentError(f"agent {agent.name!r}: {retries} wrong replies in a row; the last: {exc}", agent=agent.name) from None
        if isinstance(decision, tuple) and all(_call_key(c) in answered for c in decision):
            # 3a. Only calls already made, with the same arguments, whose results the conversation
            # holds: nothing is left to look up, so the next turn must answer (small models repeat
            # a call instead of answering). The repeat is not shown; the answer is asked instead.
            answer_now = True
            continue
        messages.append(ChatMessage(role="assistant", content=text))
        if not isinstance(decision, tuple):
            return AgentResult(decision, step, tuple(results), escalated, total_retries, tuple(messages))
        # 3. Run the calls (at once) and show the model what they returned.
        outcomes: list[ToolResult] = yield RunTools(decision)
        results += outcomes
        answered.update(_call_key(r.call) for r in outcomes if r.ok and r.call.tool.idempotent)
        observed.append(_observation(outcomes))
        messages.append(ChatMessage(role="tool", content=f"{observed[-1]}\n{_NEXT}"))
    raise AgentError(f"agent {agent.name!r} gave no answer in {agent.max_steps} steps", agent=agent.name)  # pragma: no cover - the last turn must answer


def _read_decision(agent: Agent, text: str, step: int) -> tuple[ToolCall, ...] | Any:
    """The calls of a turn, or its answer; ``ToolCallError`` with a short reason otherwise."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ToolCallError(f"the reply is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or len(data) != 1 or not ({"calls", "answer"} & set(data)):
        raise ToolCallError('reply with {"calls": [...]} or {"answer": ...}')
    if "answer" in data:
        return _answer(agent, data["answer"])
    calls = data["calls"]
    if not isinstance(calls, list) or not 1 <= len(calls) <= agent.max_parallel_calls:
        raise ToolCallError(f'"calls" must be a list of 1 to {agent.max_parallel_calls} calls')
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            raise ToolCallError('each call must be {"name": ..., "arguments": {...}}')
        tool = agent.registry.lookup(call["name"])  # unknown names fail closed
        kwargs = validate_arguments(tool, call["arguments"])
        out.append(ToolCall(f"{step}.{i + 1}", tool, call["arguments"], kwargs))
    return tuple(out)


def _call_key(call: ToolCall) -> str:
    return json.dumps([call.tool.name, call.arguments], sort_keys=True, ensure_ascii=False)


def _answer(agent: Agent, value: Any) -> Any:
    if agent.output_type is None:
        if not isinstance(value, str):
            raise ToolCallError('"answer" must be a string')
        if runaway(value):
            raise ToolCallError(runaway(value) or "")
        return value
    try:
        return agent.output_type.model_validate(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        raise ToolCallError(f'answer field "{where}": {err["msg"]}') from None


_NEXT = "If this answers the request, answer the user now, in words."  # no JSON placeholder to copy: see agents.answers


def _observation(outcomes: list[ToolResult]) -> str:
    lines = []
    for r in outcomes:
        if r.ok:
            text = r.value if isinstance(r.value, str) else json.dumps(r.value, ensure_ascii=False, default=_plain)
            if len(text) > _MAX_RESULT_CHARS:
                text = text[:_MAX_RESULT_CHARS] + f"… ({len(text)} characters, cut)"
            lines.append(f"{r.call.tool.name} returned: {text}")
        else:
            lines.append(f"{r.call.tool.name} failed: {r.error}")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")
