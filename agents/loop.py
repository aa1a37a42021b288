"""The agent loop as a generator: it decides, the orchestrator does the I/O.

``agent_loop(agent, task)`` yields what it needs and receives the results (the shape of
httpx's ``Auth.auth_flow``):

    ModelTurn  -> receives the model's Completion
    RunTools   -> receives one ToolResult per call (the calls run at once)
    Escalate   -> receives the RouteDecision: where the step may go (privacy decides)

and returns an ``AgentResult``. Each model turn says what output it needs, not how to enforce
it: the agent's tools (``tool_choice="none"`` when only an answer is wanted) and the answer's
format (an agent without tools asks for ``{"answer": ...}`` as a JSON schema). Each backend
enforces that its own way (a local model with a grammar, an OpenAI-compatible server natively,
see ``orchestrator.backends``), and the loop reads the same decisions from any of them: native
``tool_calls``, or calls and answers written as JSON text (``{"calls": [...]}``/``{"answer": ...}``),
or a plain text answer. What a grammar or a server cannot check (a validator, a range) is
checked here, and a wrong reply goes back to the model as a short error, at most
``max_retries`` times in a row; then the step escalates to ``agent.escalate_to`` (carrying the
failed attempts as context) if the runner's privacy policy lets the conversation go there, or
ends in ``AgentError``. A refused escalation gives the model one more round of retries on the
device, and the result (or the error) says why it stayed.

The conversation is kept in OpenAI's shape: an assistant message carries its ``tool_calls`` and
each result is a ``tool`` message answering one call by id; each backend writes it in its own
tier's shape. What the model reads first comes from ``agents.prompting`` (system prompt, worked
examples as earlier turns, the task). A turn that only repeats calls already made with the same
arguments (idempotent tools whose runs succeeded) is not run again: the results are in the
conversation, so the loop asks for the answer instead (small models tend to call the same tool
again and again). Tools' arguments are grounded (``agent.ground_arguments``) only for the agent's
own model: an escalated turn gets the tools' own schemas.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.agent import Agent
from agents.answers import runaway
from agents.grounding import ground_schema
from agents.prompting import prompt_messages
from agents.steps import StepDecision
from orchestrator.errors import AgentError, ToolCallError, ToolExecutionError
from orchestrator.types import ChatMessage, Choice, Completion, FunctionCall, GenerationRequest, ResponseFormat, RouteDecision, ToolSpec
from tools.output_spec import FAILED_PREFIX, decision_grammar, format_grammar, new_call_id
from tools.tool import Tool
from tools.validation import validate_arguments

__all__ = ["AgentResult", "Escalate", "ModelTurn", "RunTools", "ToolCall", "ToolResult", "agent_loop", "decision_grammars", "turn_request"]

_MAX_RESULT_CHARS = 2000  # what the model sees of one tool result


@dataclass(frozen=True)
class ModelTurn:
    """Ask ``backend`` for the next turn; send back its ``Completion``."""

    backend: str
    request: GenerationRequest
    escalated: bool = False


@dataclass(frozen=True)
class Escalate:
    """The step would escalate from ``current`` to ``target`` with ``request`` (the conversation so
    far); send back the ``RouteDecision`` saying where it may go (``target``, or ``current`` when
    the data must stay where it is)."""

    current: str
    target: str
    request: GenerationRequest


@dataclass(frozen=True)
class ToolCall:
    id: str  # the call's place in the run, "step.index"
    tool: Tool
    arguments: Mapping[str, Any]  # the JSON the model wrote (validated)
    kwargs: Mapping[str, Any]  # converted to the signature's types
    call_id: str = ""  # the id its tool message answers (the backend's, or one made up)


@dataclass(frozen=True)
class RunTools:
    """Run these calls (at once); send back one ``ToolResult`` per call, in order."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolResult:
    """What one call gave: its value, or the typed reason it gave none."""

    call: ToolCall
    ok: bool
    value: Any = None  # the tool's JSON-able result when ok
    failure: ToolExecutionError | None = None  # why not, when not ok (raised, timed out, not shown, not approved)

    @property
    def error(self) -> str | None:
        """The one-line reason the model reads (``RuntimeError: disk full``), or None."""
        return None if self.failure is None else str(self.failure)


@dataclass(frozen=True)
class AgentResult:
    """``escalation`` is the decision about escalating, when the step asked to (taken or refused, and why)."""

    output: Any  # text, or an instance of the agent's output type
    steps: int
    calls: tuple[ToolResult, ...] = ()
    escalated: bool = False
    retries: int = 0
    messages: tuple[ChatMessage, ...] = field(default=(), repr=False)
    escalation: RouteDecision | None = None
    decisions: tuple[StepDecision, ...] = ()  # per step, who decided and how sure (Agent(decide="scored"))


def turn_request(agent: Agent, messages: Sequence[ChatMessage], *, answer_only: bool = False,
                 texts: Sequence[str] | None = None) -> GenerationRequest:
    """The request of one turn: the agent's tools (grounded on ``texts`` when given and the agent
    grounds its arguments) and its answer's format.

    Strings are held to what fits in ``agent.max_tokens`` even at one character per token (the
    grammar may be stricter than the schema): a text answer to ``max_tokens - 16`` characters,
    every other string (call arguments, fields of a structured answer) to ``max_tokens // 4``
    (at least 32). So a small model that starts repeating itself inside a string still closes
    its JSON: a reply cut by the token limit is not JSON (measured on smollm2-135m: a
    500-character calculator expression filled with ", 50, 100, 200, ..." and a 600-character
    answer both ran into the limit of 256 tokens, three times in a row for the answer).
    """
    cap = max(32, agent.max_tokens // 4)
    grounded = texts is not None and agent.ground_arguments
    tools = tuple(
        ToolSpec(name=t.name, description=t.description,
                 parameters=_cap_strings(ground_schema(t.parameters, texts) if grounded and t.grounded else t.parameters, cap))  # type: ignore[arg-type]
        for t in agent.tools
    )
    answer = agent.answer_schema()
    answer = _cap_strings(answer, max(32, agent.max_tokens - 16) if answer.get("type") == "string" else cap)
    if not tools:  # no tools: the answer in its JSON wrapper, as the prompt shows it
        wrapped = {"type": "object", "properties": {"answer": answer}, "required": ["answer"], "additionalProperties": False}
        fmt: ResponseFormat | None = ResponseFormat(type="json_schema", json_schema=wrapped, name="answer")
    else:
        fmt = None if agent.output_type is None else ResponseFormat(type="json_schema", json_schema=answer, name=_format_name(agent))
    return GenerationRequest(messages=tuple(messages), tools=tools, tool_choice="none" if answer_only and tools else "auto",
                             response_format=fmt, max_tokens=agent.max_tokens, max_tool_calls=agent.max_parallel_calls,
                             speculative=agent.speculative, user=agent.user)


def _format_name(agent: Agent) -> str:
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in (agent.output_type.__name__ if agent.output_type else "answer"))
    return name[:64] or "answer"


def decision_grammars(agent: Agent, texts: Sequence[str] | None = None) -> tuple[str, str]:
    """(grammar of a normal turn: calls or answer, grammar of the last turn: answer only), as a
    local model decodes them (``tools.output_spec``); ``texts`` ground the arguments."""
    turn = turn_request(agent, [ChatMessage(role="user", content="t")], texts=texts)
    last = turn_request(agent, [ChatMessage(role="user", content="t")], answer_only=True)
    if not agent.tools:
        grammar = format_grammar(turn.response_format) or ""
        return grammar, grammar
    return decision_grammar(turn), decision_grammar(last)


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


@dataclass
class _Run:
    """What one run has gathered so far (the loop's own state)."""

    messages: list[ChatMessage]
    backend: str
    escalated: bool = False
    escalation: RouteDecision | None = None
    retries: int = 0
    results: list[ToolResult] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # calls that ran and succeeded, with idempotent tools
    observed: list[str] = field(default_factory=list)  # what the tools returned, as the model read it


def agent_loop(agent: Agent, task: str) -> Generator[ModelTurn | RunTools | Escalate, Any, AgentResult]:
    """Runs ``agent`` on ``task``; see the module docstring for the protocol."""
    if agent.decide == "scored":
        raise AgentError(f"agent {agent.name!r} decides by scores: run agents.scored_loop.scored_agent_loop", agent=agent.name)
    run = _Run(prompt_messages(agent, task), agent.model)
    answer_now = False
    for step in range(1, agent.max_steps + 1):
        answer_only = step == agent.max_steps or answer_now
        # 1. Ask for a turn until its reply holds a valid decision (or the retries run out).
        decision, choice = yield from _decide(agent, task, run, step, answer_only)
        if isinstance(decision, tuple) and all(_call_key(c) in run.answered for c in decision):
            # 2a. Only calls already made, with the same arguments, whose results the conversation
            # holds: nothing is left to look up, so the next turn must answer (small models repeat
            # a call instead of answering). The repeat is not shown; the answer is asked instead.
            answer_now = True
            continue
        if not isinstance(decision, tuple):
            run.messages.append(ChatMessage(role="assistant", content=choice.text))
            return AgentResult(decision, step, tuple(run.results), run.escalated, run.retries, tuple(run.messages), run.escalation)
        # 2. Run the calls (at once) and show the model what they returned, one tool message per call.
        calls = tuple(FunctionCall(id=c.call_id, name=c.tool.name, arguments=json.dumps(c.arguments, ensure_ascii=False)) for c in decision)
        run.messages.append(ChatMessage(role="assistant", content=choice.text, tool_calls=calls))
        outcomes: list[ToolResult] = yield RunTools(decision)
        run.results += outcomes
        run.answered.update(_call_key(r.call) for r in outcomes if r.ok and r.call.tool.idempotent)
        run.observed.append(_observation(outcomes))
        run.messages += [ChatMessage(role="tool", tool_call_id=r.call.call_id, name=r.call.tool.name, content=_result_text(r)) for r in outcomes]
    raise AgentError(f"agent {agent.name!r} gave no answer in {agent.max_steps} steps", agent=agent.name)  # pragma: no cover - the last turn must answer


def _decide(agent: Agent, task: str, run: _Run, step: int, answer_only: bool) -> Generator[Any, Any, tuple[Any, Choice]]:
    """One step's model turns: asks until a reply holds a valid decision; escalates or fails when
    ``max_retries`` replies in a row were wrong."""
    retries, refused = 0, None
    while True:
        # Grounding narrows the arguments to the conversation, for the agent's own (small) model only.
        texts = None if run.escalated else [task, *run.observed]
        request = turn_request(agent, run.messages, answer_only=answer_only, texts=texts)
        completion: Completion = yield ModelTurn(run.backend, request, run.escalated)
        choice = completion.choices[0]
        try:
            return _read_decision(agent, choice, request, step), choice
        except ToolCallError as exc:
            # A reply the backend let through but that is still wrong goes back to the model.
            run.messages += [ChatMessage(role="assistant", content=_reply_text(choice)),
                             ChatMessage(role="user", content=f"Error: {exc}. Reply again with valid JSON.")]
            retries += 1
            run.retries += 1
            if retries <= agent.max_retries:
                continue
            if agent.escalate_to is not None and not run.escalated and run.escalation is None:
                # A larger model gets the failed attempts, if the conversation may go there.
                decision: RouteDecision = yield Escalate(run.backend, agent.escalate_to, request.model_copy(update={"messages": tuple(run.messages)}))
                run.escalation, retries = decision, 0
                if decision.backend == agent.escalate_to:
                    run.backend, run.escalated = agent.escalate_to, True
                else:
                    why = next((f"{t.policy}: {t.reason}" for t in decision.trail if t.forbidden), f"{decision.policy}: {decision.reason}")
                    refused = f"; escalation to {agent.escalate_to!r} was refused ({why})"
                continue
            raise AgentError(f"agent {agent.name!r}: {retries} wrong replies in a row; the last: {exc}{refused or ''}", agent=agent.name) from None


def _read_decision(agent: Agent, choice: Choice, request: GenerationRequest, step: int) -> tuple[ToolCall, ...] | Any:
    """The calls of a reply (native, or written as JSON), or its answer; ``ToolCallError`` with a short reason otherwise."""
    calls: list[tuple[str, Any, Any]] = [(c.id, c.name, c.arguments) for c in choice.tool_calls]
    data = _json(choice.text) if not calls else None
    if isinstance(data, dict) and set(data) == {"calls"} and request.tools:
        if not isinstance(data["calls"], list):
            raise ToolCallError(f'"calls" must be a list of 1 to {agent.max_parallel_calls} calls')
        for call in data["calls"]:
            if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
                raise ToolCallError('each call must be {"name": ..., "arguments": {...}}')
            calls.append((new_call_id(), call["name"], call["arguments"]))
    if calls:
        if request.tool_choice == "none":
            raise ToolCallError('no tool may be called now: reply {"answer": ...}')
        if not 1 <= len(calls) <= agent.max_parallel_calls:
            raise ToolCallError(f'"calls" must be a list of 1 to {agent.max_parallel_calls} calls')
        out = []
        for i, (call_id, name, arguments) in enumerate(calls):
            tool = agent.registry.lookup(name)  # unknown names fail closed
            kwargs = validate_arguments(tool, arguments)
            args = json.loads(arguments) if isinstance(arguments, str) else arguments  # validated: an object
            out.append(ToolCall(f"{step}.{i + 1}", tool, args, kwargs, call_id or new_call_id()))
        return tuple(out)
    if choice.finish_reason == "length" and (data is not None or choice.text.lstrip().startswith("{")):
        raise ToolCallError("the reply was cut by the token limit; reply shorter")
    return _answer(agent, choice.text, data)
def _call_key(call: ToolCall) -> str:
    return json.dumps([call.tool.name, call.arguments], sort_keys=True, ensure_ascii=False)


def _answer(agent: Agent, text: str, data: Any) -> Any:
    """The answer of a reply: ``{"answer": ...}``, or the reply itself (plain text, or the output type's JSON)."""
    wrapped = isinstance(data, dict) and set(data) == {"answer"}
    if agent.output_type is None:
        if wrapped:
            if not isinstance(data["answer"], str):
                raise ToolCallError('"answer" must be a string')
            if runaway(data["answer"]):  # a small model's answer that repeats itself to the length cap
                raise ToolCallError(runaway(data["answer"]) or "")
            return data["answer"]
        if not text.strip():
            raise ToolCallError("the reply is empty")
        if runaway(text):
            raise ToolCallError(runaway(text) or "")
        if data is None and text.lstrip().startswith("{"):  # meant as JSON, and broken
            raise ToolCallError(f"the reply is not valid JSON ({_json_error(text)})")
        if isinstance(data, dict):  # JSON meant as a decision, in neither shape
            raise ToolCallError('reply with {"calls": [...]} or {"answer": ...}')
        return text
    if data is None:
        raise ToolCallError(f"the reply is not valid JSON ({_json_error(text)})")
    try:
        return agent.output_type.model_validate(data["answer"] if wrapped else data)
    except ValidationError as exc:
        if wrapped:  # an output type whose one field is "answer": the reply itself may be it
            try:
                return agent.output_type.model_validate(data)
            except ValidationError:
                pass
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        raise ToolCallError(f'answer field "{where}": {err["msg"]}') from None


def _json(text: str) -> Any:
    """The reply's JSON, or None when it is not JSON (a plain text answer, or a broken reply)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return None


def _json_error(text: str) -> str:
    try:
        json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        return str(exc)
    return "not JSON"  # pragma: no cover - only called for text that failed


def _reply_text(choice: Choice) -> str:
    """A reply as the model's text (calls it made natively written as the JSON the prompt shows)."""
    if not choice.tool_calls:
        return choice.text
    calls = [{"name": c.name, "arguments": _loads_or_text(c.arguments)} for c in choice.tool_calls]
    line = json.dumps({"calls": calls}, ensure_ascii=False)
    return f"{choice.text} {line}" if choice.text else line


def _loads_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _result_text(result: ToolResult) -> str:
    """A tool message's content: the result (cut to what the model should read), or the failure."""
    if not result.ok:
        return f"{FAILED_PREFIX}{result.error}"
    text = result.value if isinstance(result.value, str) else json.dumps(result.value, ensure_ascii=False, default=_plain)
    if len(text) > _MAX_RESULT_CHARS:
        text = text[:_MAX_RESULT_CHARS] + f"… ({len(text)} characters, cut)"
    return text


def _observation(outcomes: list[ToolResult]) -> str:
    """What the tools of one turn returned, as text (the arguments of later turns are grounded on it)."""
    return "\n".join(f"{r.call.tool.name} returned: {_result_text(r)}" if r.ok else f"{r.call.tool.name} failed: {r.error}" for r in outcomes)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")
