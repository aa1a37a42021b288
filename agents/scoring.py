"""What a scored decision asks the orchestrator for: log-likelihoods of continuations, and embeddings.

Decisions in ``agents.decide`` do not let a model write a call freely; they ask how likely the
model finds each of a few candidate continuations of one shared context, and how close texts are
in the model's embedding space. The decision code yields a ``Needs`` (several requests, run at
once) and receives one result per request, in order:

    ScoreTexts    -> a tuple of ``Scored``, one per continuation
    EmbedTexts    -> a tuple of unit vectors (tuples of floats), one per text
    GenerateText  -> one ``Generated``: what the model wrote after the context, under a grammar

A ``ScoreTexts`` context is the conversation (chat messages) plus ``prefix``, the start of the
assistant's reply already written; every continuation is scored after that same context, so an
engine computes the context once (its KV is shared) and only the few tokens of each continuation
per candidate. ``orchestrator.tool_decisions`` runs them on a local engine.

``scoring_messages`` builds the context's messages for a set of tools: the instructions, the
tools with their arguments and what each argument means, the reply format, optional worked
examples, then the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.types import ChatMessage

__all__ = ["CALL_PREFIX", "FORMAT_EXAMPLES", "EmbedTexts", "GenerateText", "Generated", "Needs", "ScoreTexts", "Scored", "scoring_messages", "tool_line"]

CALL_PREFIX = '{"calls": [{"name":'

# Worked examples of the reply format, with tools of their own (not the agent's): they teach a base
# model the format, and a scored decision cannot copy their values (it only picks among candidates).
FORMAT_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("- get_weather(city: string, unit: string (optional)): Current weather in a city.",
     "What's the weather in Paris?", '{"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'),
    ("- get_weather(city: string, unit: string (optional)): Current weather in a city.",
     "Write a haiku about rain.", '{"answer": "Soft rain on the roof"}'),
)


@dataclass(frozen=True)
class Scored:
    """The log-probability (natural log, summed over its tokens) of one continuation, and its tokens."""

    logprob: float
    tokens: int


@dataclass(frozen=True)
class ScoreTexts:
    """Score each continuation after ``messages`` and the start of the reply ``prefix``."""

    messages: tuple[ChatMessage, ...]
    prefix: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class EmbedTexts:
    """Embed each text (unit vectors from the model's own embeddings)."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class GenerateText:
    """Let the model write after ``messages`` and ``prefix``, greedily, under ``grammar`` (GBNF)."""

    messages: tuple[ChatMessage, ...]
    prefix: str
    grammar: str
    max_tokens: int = 64


@dataclass(frozen=True)
class Generated:
    text: str
    logprob: float
    tokens: int


@dataclass(frozen=True)
class Needs:
    """Requests to run at once; send back one result per request, in order."""

    requests: tuple[ScoreTexts | EmbedTexts | GenerateText, ...]


def tool_line(name: str, description: str, parameters: Mapping[str, Any], *, describe_arguments: bool = True) -> str:
    """``- name(arg: type, ...): description`` and, indented below it, what each argument means."""
    required = set(parameters.get("required", ()))
    props = parameters.get("properties", {})
    args = ", ".join(f"{k}: {_type_text(v)}" + ("" if k in required else " (optional)") for k, v in props.items())
    line = f"- {name}({args}): {description.strip()}"
    if describe_arguments:
        notes = [f"    {k}: {v['description'].strip()}" for k, v in props.items() if str(v.get("description", "")).strip()]
        line += "".join("\n" + n for n in notes)
    return line


def scoring_messages(instructions: str, tools: Sequence[tuple[str, str, Mapping[str, Any]]], conversation: Sequence[ChatMessage],
                     *, describe_arguments: bool = True, examples: bool = False) -> tuple[ChatMessage, ...]:
    """The context a scored decision reads: instructions, tools, reply format, (examples), the conversation."""
    lines = [instructions.strip()] if instructions.strip() else []
    lines.append("Tools you can call:\n" + "\n".join(tool_line(n, d, p, describe_arguments=describe_arguments) for n, d, p in tools))
    lines.append('To use a tool, reply {"calls": [{"name": "<tool name>", "arguments": {...}}]}. '
                 'If no tool fits, reply {"answer": "<text>"}.')
    if examples:
        shown = "\n".join(f"Tools: {t}\nUser: {q}\nReply: {r}" for t, q, r in FORMAT_EXAMPLES)
        lines.append("Examples (with other tools):\n" + shown)
    return (ChatMessage(role="system", content="\n\n".join(lines)), *conversation)


def _type_text(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " | ".join(_type_text(p) for p in prop["anyOf"])
    kind = prop.get("type", "value")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if kind == "object" and "properties" in prop:
        return "{" + ", ".join(f"{k}: {_type_text(v)}" for k, v in prop["properties"].items()) + "}"
    return str(kind)
