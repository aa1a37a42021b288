"""OpenAI ``tools`` for local models: a grammar from the tool schemas, a prompt, and parsing back.

Local backends have no native tool calling, so the server describes the tools in the system
message and constrains decoding with ``tools.tool_call_grammar``; the call always parses and its
arguments match the schema. The ``tool_choice`` values map to grammars like this:

- ``"required"``: the reply is exactly one call ``{"name": ..., "arguments": {...}}``;
- ``{"type": "function", "function": {"name": N}}``: the same, with only tool ``N`` allowed;
- ``"auto"`` (the default with tools): plain text, or text then ``<tool_call>`` then one call. The
  free text cannot contain ``<`` (that character commits the model to the trigger and a valid
  call), so a text answer never holds a ``<``;
- ``"none"``: the tools are neither described nor callable; the model answers in text.

A schema that cannot be enforced by a grammar is refused (``ToolDefinitionError``, a 400), never
left unconstrained. One call per choice; ``n`` choices may each call. Pure code: no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from orchestrator.errors import ToolCallError, ToolDefinitionError
from orchestrator.types import FinishReason
from tools.grammar import parse_tool_call, tool_call_grammar
from tools.tool import Tool

__all__ = ["TRIGGER", "ToolPlan", "ToolStreamFilter", "new_call_id", "plan_local_tools", "read_choice", "render_call"]

TRIGGER = "<tool_call>"


@dataclass(frozen=True)
class ToolPlan:
    """How one request's tools are offered to a local model."""

    mode: Literal["auto", "required"]
    names: tuple[str, ...]
    grammar: str
    system_text: str


def _no_op(**kwargs: object) -> None:
    """Stands in for the tool's function: the server returns calls, the client runs them."""


def plan_local_tools(tools: Sequence[tuple[str, str, dict]], choice: str | None) -> ToolPlan | None:
    """A plan for ``(name, description, parameters)`` tools under ``choice`` (``"auto"``,
    ``"required"``, ``"none"``, a tool name, or None for auto); None when no tool is offered.
    Raises ``ToolDefinitionError`` for a tool that cannot be enforced, or an unknown chosen name."""
    if not tools or choice == "none":
        return None
    defined = [Tool.from_schema(name, description, parameters, _no_op) for name, description, parameters in tools]
    if len({t.name for t in defined}) != len(defined):
        raise ToolDefinitionError("tool names must be distinct")
    mode: Literal["auto", "required"] = "auto" if choice in (None, "auto") else "required"
    if choice not in (None, "auto", "required"):
        defined = [t for t in defined if t.name == choice]
        if not defined:
            raise ToolDefinitionError(f"tool_choice names {choice!r}, which is not among the tools")
    grammar = tool_call_grammar([(t.name, t.parameters) for t in defined], allow_text=mode == "auto", trigger=TRIGGER)
    lines = [f"- {t.name}: {t.description.strip() or 'no description'} Arguments: "
             f"{json.dumps(t.parameters.get('properties', {}), separators=(',', ':'))}" for t in defined]
    if mode == "auto":
        how = (f'To call a tool, write {TRIGGER} then {{"name": "<tool name>", "arguments": {{...}}}}. '
               "Otherwise answer in plain text.")
    else:
        how = 'Reply with one tool call as JSON: {"name": "<tool name>", "arguments": {...}}.'
    text = "You can call these tools:\n" + "\n".join(lines) + "\n" + how
    return ToolPlan(mode, tuple(t.name for t in defined), grammar, text)


def render_call(name: str, arguments: str) -> str:
    """An earlier assistant call as the model would have written it (for conversation history)."""
    try:
        return TRIGGER + json.dumps({"name": name, "arguments": json.loads(arguments or "{}")}, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to decode: the text as it came
        return TRIGGER + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def read_choice(text: str, finish: FinishReason, plan: ToolPlan) -> tuple[str | None, list[dict], FinishReason]:
    """``(content, tool_calls, finish_reason)`` of one generated choice under ``plan``.

    A call cut short (by ``max_tokens`` or a stop string) cannot be read: the text comes back as
    content with the backend's finish reason, so the client sees what happened."""
    if plan.mode == "auto" and TRIGGER not in text:
        return text, [], finish
    try:
        name, args = parse_tool_call(text, trigger=TRIGGER if plan.mode == "auto" else None)
    except ToolCallError:
        return text, [], finish
    if name not in plan.names:
        return text, [], finish
    before = text[: text.index(TRIGGER)].strip() if plan.mode == "auto" else ""
    call = {"id": new_call_id(), "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}
    return before or None, [call], "tool_calls"


class ToolStreamFilter:
    """Which streamed text of one choice may go out as content at once.

    In ``auto`` mode text streams until its first ``<`` (the start of the trigger: free text
    cannot hold one); the rest is held back until the end, when ``finish`` says whether it was a
    call. In ``required`` mode everything is held back."""

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self._text: list[str] = []
        self._sent = 0
        self._holding = plan.mode == "required"

    def feed(self, piece: str) -> str:
        """Takes a streamed piece; returns the part that may be sent as content now."""
        self._text.append(piece)
        if self._holding:
            return ""
        cut = piece.find("<")
        if cut >= 0:
            self._holding = True
            piece = piece[:cut]
        self._sent += len(piece)
        return piece

    def finish(self, finish: FinishReason) -> tuple[str, list[dict], FinishReason]:
        """``(content still to send, tool_calls, finish_reason)`` once the choice has ended."""
        text = "".join(self._text)
        _, calls, reason = read_choice(text, finish, self.plan)
        if calls:
            return "", calls, reason
        return text[self._sent:], [], reason
