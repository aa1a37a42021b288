"""An agent is plain data: instructions, tools, an output type, a model choice and limits.

Everything that can be wrong with it is found when it is defined: duplicate tool names, an
output type that is not a pydantic model, a tool whose schema cannot become a grammar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from agents.grounding import ground_schema
from orchestrator.errors import ToolCallError, ToolDefinitionError
from tools.grammar import schema_to_gbnf
from tools.registry import ToolRegistry
from tools.tool import Tool
from orchestrator.types import SpeculativeMode
from tools.validation import validate_arguments

__all__ = ["Agent"]

_ANSWER_TEXT = {"type": "string", "minLength": 1, "maxLength": 600}


@dataclass(frozen=True)
class Agent:
    """What an agent is; ``orchestrator.agent_runner.run_agent`` runs it.

    ``model`` and ``escalate_to`` name backends of the runner. ``max_steps`` caps model turns;
    ``max_retries`` caps how often one malformed call or answer is sent back to the model
    before the step escalates (or fails with ``AgentError``). ``max_parallel_calls`` caps the
    calls in one turn; they run at once. ``tool_timeout_s`` bounds a tool without its own.

    ``examples`` are worked examples for the prompt: ``(request, reply)`` pairs where the reply
    is what the model should answer, ``{"calls": [{"name": ..., "arguments": {...}}]}`` or
    ``{"answer": ...}`` (JSON text, or the same as Python data); each call is checked against
    its tool when the agent is defined. Tools without an example get one made from their
    schema. By default (``max_examples=None``) the prompt shows all of them, in the order given,
    the same for every task, so the prompt's start is shared and its prefill cached; an int
    shows only that many, the closest to the task, the closest last (see ``agents.prompting``:
    for agents with many tools). Two realistic examples per tool, with different values, help a
    small model most.

    ``ground_arguments`` holds the tools' arguments, while decoding, to words and numbers of
    the task and the tool results (see ``agents.grounding``): for small models, which
    otherwise copy values from the examples.

    ``decide="scored"`` decides each turn by scores instead of letting the model write it: which
    tool or none, each argument picked among grounded candidates, and a calibrated confidence
    (``agents.decide``; the runner needs a local engine for ``model``). With ``escalate_below``
    a step whose confidence is lower goes to ``escalate_to`` with the conversation, unless the
    routing policies keep it on the device; ``AgentResult.decisions`` says who decided each step
    and how sure (``agents.scored_loop``).
    ``persist_prefix`` pins the start every task's prompt shares (``agents.prompting.
    shared_prompt_start``: the system prompt, and the examples when all are shown) on the
    agent's model, when that is a local engine: computed once, then stored on disk and restored
    by later processes instead of computed again (``orchestrator.engine.pinning``).
    ``speculative`` and ``user`` go into every turn's request: on a local model, speculation
    drafts from the text so far and, for a named ``user`` (the tenant), from that tenant's
    recent requests, which an agent's own earlier turns and runs fill with its calls and answers
    (see ``GenerationRequest.user``). The output is the same either way.
    """

    name: str
    instructions: str
    tools: tuple[Tool, ...] = ()  # plain functions are turned into tools with @tool's defaults
    output_type: type[BaseModel] | None = None
    model: str = "default"
    escalate_to: str | None = None
    max_steps: int = 4
    max_retries: int = 2
    max_parallel_calls: int = 4
    max_tokens: int = 256
    tool_timeout_s: float = 30.0
    examples: tuple[tuple[str, Any], ...] = ()
    max_examples: int | None = None
    ground_arguments: bool = False
    decide: Literal["generate", "scored"] = "generate"
    escalate_below: float | None = None
    persist_prefix: bool = False
    speculative: SpeculativeMode = "off"
    user: str | None = None
    registry: ToolRegistry = field(init=False, repr=False, compare=False)
    decision_schema: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        registry = ToolRegistry(self.tools)
        object.__setattr__(self, "tools", tuple(registry))
        object.__setattr__(self, "registry", registry)
        self._check()
        object.__setattr__(self, "examples", tuple(_example(self, e) for e in self.examples))
        object.__setattr__(self, "decision_schema", _decision_schema(self))
        schema_to_gbnf(self.decision_schema)  # fail now, not at the first call, if it cannot be a grammar

    def _check(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ToolDefinitionError("an agent needs a name")
        if self.output_type is not None and not (isinstance(self.output_type, type) and issubclass(self.output_type, BaseModel)):
            raise ToolDefinitionError(f"agent {self.name!r}: output_type must be a pydantic model class")
        for key in ("max_steps", "max_retries", "max_parallel_calls", "max_tokens", "max_examples"):
            value = getattr(self, key)
            if key == "max_examples" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key in ("max_retries", "max_examples") else 1):
                raise ToolDefinitionError(f"agent {self.name!r}: {key} must be a positive integer, not {value!r}")
        if not isinstance(self.persist_prefix, bool):
            raise ToolDefinitionError(f"agent {self.name!r}: persist_prefix must be True or False")
        if not self.tool_timeout_s > 0:
            raise ToolDefinitionError(f"agent {self.name!r}: tool_timeout_s must be positive")
        if self.decide not in ("generate", "scored"):
            raise ToolDefinitionError(f"agent {self.name!r}: decide must be 'generate' or 'scored', not {self.decide!r}")
        if self.escalate_below is not None and (self.decide != "scored" or not 0.0 <= self.escalate_below <= 1.0):
            raise ToolDefinitionError(f"agent {self.name!r}: escalate_below needs decide='scored' and a confidence in [0, 1]")
        if self.speculative not in ("off", "prompt-lookup", "draft", "auto"):
            raise ToolDefinitionError(f"agent {self.name!r}: speculative must be off, prompt-lookup, draft or auto")
        if self.user is not None and not (isinstance(self.user, str) and 0 < len(self.user) <= 256):
            raise ToolDefinitionError(f"agent {self.name!r}: user must be a tenant name of 1 to 256 characters")

    def grounded_schema(self, texts: Sequence[str]) -> dict[str, Any]:
        """The decision schema with each grounded tool's arguments narrowed to ``texts``."""
        return _decision_schema(self, lambda t: ground_schema(t.parameters, texts) if t.grounded else t.parameters)

    def answer_schema(self) -> dict[str, Any]:
        """The JSON schema of the final answer: the output type's, or a bounded string."""
        if self.output_type is None:
            return dict(_ANSWER_TEXT)
        from tools.schema import normalize_schema

        return normalize_schema(self.output_type.model_json_schema(), where=f"agent {self.name!r} output type")

    def tool_catalogue(self) -> str:
        """One line per tool for the prompt: name, arguments with types, description."""
        return "\n".join(f"- {t.name}({_arguments(t.parameters)}): {t.description}" for t in self.tools)


def _example(agent: Agent, example: Any) -> tuple[str, str]:
    """A developer's example as ``(request, reply as one line of JSON)``, checked like a model's reply."""
    where = f"agent {agent.name!r}: example"
    if not (isinstance(example, tuple | list) and len(example) == 2 and isinstance(example[0], str) and example[0].strip()):
        raise ToolDefinitionError(f"{where} {example!r:.80} must be a (request, reply) pair with a non-empty request")
    request, reply = example
    try:
        data = json.loads(reply) if isinstance(reply, str) else reply
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"{where} {request!r:.60}: the reply is not JSON ({exc})") from None
    if not isinstance(data, dict) or len(data) != 1 or not ({"calls", "answer"} & set(data)):
        raise ToolDefinitionError(f'{where} {request!r:.60}: the reply must be {{"calls": [...]}} or {{"answer": ...}}')
    calls = data.get("calls", [])
    if "calls" in data and not (isinstance(calls, list) and 1 <= len(calls) <= agent.max_parallel_calls):
        raise ToolDefinitionError(f'{where} {request!r:.60}: "calls" must be a list of 1 to {agent.max_parallel_calls} calls')
    for call in calls:
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            raise ToolDefinitionError(f'{where} {request!r:.60}: each call must be {{"name": ..., "arguments": {{...}}}}')
        try:
            validate_arguments(agent.registry.lookup(call["name"]), call["arguments"])
        except ToolCallError as exc:
            raise ToolDefinitionError(f"{where} {request!r:.60}: {exc}") from None
    if "answer" in data:
        try:
            if agent.output_type is None and not isinstance(data["answer"], str):
                raise ValueError("the answer must be a string")
            if agent.output_type is not None:
                agent.output_type.model_validate(data["answer"])
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ToolDefinitionError(f"{where} {request!r:.60}: {exc}") from None
    return request, text


def _decision_schema(agent: Agent, arguments: Callable[[Tool], dict[str, Any]] = lambda t: t.parameters) -> dict[str, Any]:
    """A turn is either ``{"calls": [{"name": ..., "arguments": {...}}, ...]}`` or ``{"answer": ...}``."""
    answer = {"type": "object", "properties": {"answer": agent.answer_schema()}, "required": ["answer"], "additionalProperties": False}
    if not agent.tools:
        return answer
    call = {
        "anyOf": [
            {"type": "object", "properties": {"name": {"const": t.name}, "arguments": arguments(t)},
             "required": ["name", "arguments"], "additionalProperties": False}
            for t in agent.tools
        ]
    }
    calls = {"type": "object", "properties": {"calls": {"type": "array", "items": call, "minItems": 1, "maxItems": agent.max_parallel_calls}},
             "required": ["calls"], "additionalProperties": False}
    return {"anyOf": [calls, answer]}


def _arguments(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        text = f"{name}: {_type_text(prop)}"
        if name not in required:
            text += " (optional)"
        parts.append(text)
    return ", ".join(parts)


def _type_text(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " | ".join(_type_text(p) for p in prop["anyOf"])
    kind = prop.get("type", "value")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if kind == "object":
        return "{" + _arguments(prop) + "}"
    return str(kind)
