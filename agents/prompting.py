"""What the model reads before the task: a short system prompt, then worked examples as turns.

Small models (smollm2-135m) follow examples far more than instructions, so the prompt is:

1. a system message: the agent's instructions, one line per tool (name, arguments with types,
   description), and the reply format, which names no real tool (a format example naming one
   made the model call that tool for every task, often several times in one turn);
2. worked examples as earlier user/assistant turns: a request, then the one-line JSON call it
   needs. They come from ``agent.examples`` (written by the developer) and, for each tool the
   developer gave none for, one example made from the tool's schema (these first, so the
   developer's are nearest the task). The developer's come in rounds: each tool's first
   example, then each tool's second, so no one tool holds the last turns the model leans on.
   By default all of them, in that order, so every task's prompt starts the same and an engine's prefix cache keeps it;
   with ``agent.max_examples = k`` only the k whose words overlap most with the task, the
   closest last (for agents with too many tools to show them all);
3. the task, as the last user message.

Measured, first turn, greedy, right tool with right arguments (a held-out set of 7 tools and 28
requests, then ``orchestrator bench tools``: 8 tools, 48 requests; single runs move by ~5-10
points from run to run, since a different KV-cache layout flips this model's near-ties):
- the old prompt (catalogue, and a format example naming the first tool): 0% (held-out);
- one schema-made example per tool, in the system message: 14%; as turns: 29-43% (held-out),
  and replies of ~30 tokens instead of ~100-140 (one-line JSON is copied from the examples);
- 3 closest schema-made examples, closest last: 32-36%, the right tool 86% (held-out);
  without developer examples on the benchmark: 17-33% (12 requests);
- one developer example per tool, 3 closest: 46-54% (held-out); two per tool: 54-57%
  (held-out), 38-40% (benchmark, ~4.5-5 s per request at one thread);
- two per tool, all shown in a fixed order: 46% (held-out), 48-54% (benchmark, ~2.3 s per request,
  as the shared start of the prompt is not prefilled again). Chosen as the default: no less
  accurate overall, twice as fast. Repeating the closest example after all of them fell to
  18-21% (held-out).
The remaining errors were mostly copied values (an argument taken from an example instead of the
request) and a bias toward the tool of the last example. Against the first: grounded arguments
(``agents.grounding``): 50% -> 58% (benchmark). Against the second: the examples in rounds
instead of grouped by tool: 58% -> 75% with grounded arguments, 50% -> 52% without.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents.agent import Agent
from orchestrator.errors import ToolCallError
from orchestrator.types import ChatMessage
from tools.validation import validate_arguments

__all__ = [
    "ANSWER_FORMAT", "REPLY_FORMAT", "example_arguments", "prompt_messages", "select_examples", "shared_prompt_start",
    "system_prompt", "tool_examples",
]

REPLY_FORMAT = 'To use a tool, reply {"calls": [{"name": "<tool name>", "arguments": {...}}]}. Otherwise reply {"answer": "<text>"}.'
ANSWER_FORMAT = 'Reply with JSON only: {"answer": ...}.'

_WORD = re.compile(r"[^\W_]+|[-+*/%^=<>@$€£]")  # words, and symbols that say what kind of request it is
_STOP = frozenset(
    ["a", "an", "the", "in", "on", "of", "to", "for", "and", "or", "is", "it", "at", "by", "with", "from", "into", "my", "me", "i", "you", "your", "what", "how", "do", "does", "this", "that", "be", "as", "are", "please", "can", "could", "would", "will", "want", "need", "some", "any"]
)
_E_G = re.compile(r"""e\.g\.,?\s*(?:"([^"]+)"|'([^']+)')""")


def system_prompt(agent: Agent) -> str:
    """The agent's instructions, its tools one per line, and the reply format."""
    parts = [agent.instructions.strip()]
    if agent.tools:
        parts.append("Tools you can call:\n" + agent.tool_catalogue())
        parts.append(REPLY_FORMAT)
    else:
        parts.append(ANSWER_FORMAT)
    return "\n\n".join(p for p in parts if p)


def prompt_messages(agent: Agent, task: str) -> list[ChatMessage]:
    """System prompt, the examples closest to ``task`` (closest last) as turns, then ``task``."""
    messages = [ChatMessage(role="system", content=system_prompt(agent))]
    for request, reply in select_examples(agent, task):
        messages += [ChatMessage(role="user", content=request), ChatMessage(role="assistant", content=reply)]
    messages.append(ChatMessage(role="user", content=task))
    return messages


def shared_prompt_start(agent: Agent) -> list[ChatMessage]:
    """The messages every task's prompt starts with: the system prompt, then the examples when
    all of them are shown (``max_examples=None``: the same turns, in the same order, for every
    task); with ``max_examples`` set they depend on the task, so only the system prompt."""
    messages = prompt_messages(agent, "")[:-1]
    return messages if agent.max_examples is None else messages[:1]


def select_examples(agent: Agent, task: str) -> list[tuple[str, str]]:
    """Up to ``agent.max_examples`` examples, by word overlap with ``task``, the closest last;
    all of them, in order, when ``max_examples`` is None.

    An example's words are its request's and its tools' (name, description, argument names,
    descriptions and enum values). Ties keep the pool's order (``tool_examples``).
    """
    pool = tool_examples(agent)
    if agent.max_examples is None:
        return pool
    if not pool or agent.max_examples == 0:
        return []
    wanted = _words(task)
    tool_words = {t.name: _tool_words(t) for t in agent.tools}

    def overlap(example: tuple[str, str]) -> int:
        names = [c["name"] for c in json.loads(example[1]).get("calls", [])]
        return len(wanted & _words(example[0]).union(*(tool_words[n] for n in names)))

    scored = sorted(enumerate(pool), key=lambda ie: (-overlap(ie[1]), ie[0]))[: agent.max_examples]
    return [example for _, example in reversed(scored)]


def tool_examples(agent: Agent) -> list[tuple[str, str]]:
    """One example made from the schema for each tool the developer's examples do not show, then
    the developer's (better ones nearer the task: the model leans on the last examples most)."""
    shown = {c["name"] for _, reply in agent.examples for c in json.loads(reply).get("calls", [])}
    made = [_schema_example(t) for t in agent.tools if t.name not in shown]
    return [m for m in made if m is not None] + _round_robin(agent.examples)


def _round_robin(examples: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The examples in rounds: each tool's first, then each tool's second, and so on (tools in
    order of first appearance), so that no one tool holds the last turns the model leans on."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for example in examples:
        calls = json.loads(example[1]).get("calls", [])
        groups.setdefault(calls[0]["name"] if calls else "", []).append(example)
    rounds = max((len(g) for g in groups.values()), default=0)
    return [g[i] for i in range(rounds) for g in groups.values() if i < len(g)]


def _schema_example(tool: Any) -> tuple[str, str] | None:
    """A request and its call for ``tool``: its description, then each required argument's value
    (None when the values made up do not pass the tool's checks)."""
    params = tool.parameters
    args = {k: example_arguments(v, k) for k, v in params["properties"].items() if k in params["required"]}
    try:
        validate_arguments(tool, args)
    except ToolCallError:
        return None
    said = ", ".join(f"{k} {v if isinstance(v, str) else json.dumps(v)}" for k, v in args.items())
    request = tool.description.strip().rstrip(".") or tool.name.replace("_", " ")
    request += f": {said}." if said else "."
    return request, json.dumps({"calls": [{"name": tool.name, "arguments": args}]}, ensure_ascii=False)


def example_arguments(schema: Mapping[str, Any], name: str = "value") -> Any:
    """A plausible value for ``schema``: its own ``examples``, an enum's first value, an
    'e.g. "..."' from its description, a number within its bounds, else the argument's name."""
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return example_arguments(branches[0], name)
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "string":
        hint = _E_G.search(schema.get("description", ""))
        text = next(g for g in hint.groups() if g) if hint else name.replace("_", " ")
        return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", schema.get("exclusiveMinimum", 1)), schema.get("maximum", schema.get("exclusiveMaximum"))
        value = max(2, int(low) + 1) if kind == "integer" else max(2.5, float(low) + 0.5)
        return value if high is None or value < high else (int(high) if kind == "integer" else float(high))
    if kind == "boolean":
        return True
    if kind == "array":
        return [example_arguments(schema.get("items", {}), name)] * max(1, schema.get("minItems", 1))
    if kind == "object":
        props, required = schema.get("properties", {}), schema.get("required", [])
        return {k: example_arguments(v, k) for k, v in props.items() if k in required}
    return None


def _words(text: str) -> set[str]:
    """Lower-case words without stop words, cut to 5 letters (a crude stem: 'lights' ~ 'light'),
    and symbols such as ``* + @ $``."""
    return {w[:5] for w in _WORD.findall(text.casefold()) if w not in _STOP}


def _tool_words(tool: Any) -> set[str]:
    parts = [tool.name.replace("_", " ").replace("-", " "), tool.description]
    for key, prop in tool.parameters["properties"].items():
        parts += [key.replace("_", " "), prop.get("description", ""), *(str(v) for v in prop.get("enum", ()))]
    return _words(" ".join(parts))
