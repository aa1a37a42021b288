"""Built-in graph patterns, each one call away:

    result = await Runner(backend).run(skeleton_of_thought(points=8), {"question": q})

- ``skeleton_of_thought``: outline, then expand every point in parallel, then join;
- ``plan_and_execute``: a plan of tool calls with ``$N`` dependencies becomes a DAG (LLMCompiler);
- ``map_reduce``: one generation per document, then one that combines them;
- ``self_consistency``: n samples of one prompt (one batched request), majority vote.

The parsing and voting are pure functions in ``agents.patterns``; this module only wires them.
Prompt functions are module-level so a graph's fingerprint is stable and runs can be resumed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from agents.patterns import PlannedCall, extract_answer, majority_vote, parse_outline, parse_plan, resolve_arguments
from orchestrator.taskgraph.graph import Generate, Input, Subgraph, TaskGraph
from orchestrator.types import ChatMessage, GenerationRequest, SamplingParams

__all__ = ["PATTERNS", "map_reduce", "plan_and_execute", "self_consistency", "skeleton_of_thought"]

_GREEDY = SamplingParams()


# -- Skeleton-of-Thought ---------------------------------------------------------


def _outline_prompt(question: str, points: int) -> str:
    return f"{question} Answer with a numbered list of {points} short points."


def _expand_request(question: str, outline: list[str], item: dict[str, Any], max_tokens: int, backend_chat: bool) -> GenerationRequest:
    # Every expansion starts with the same question and outline, so the engine prefills that
    # prefix once and the branches share its KV; only the last line differs.
    listing = "\n".join(f"{i}. {p}" for i, p in enumerate(outline, 1))
    text = f"Question: {question}\nOutline:\n{listing}\n\nExpand point {item['n']} ({item['point']}) in one or two sentences."
    if backend_chat:
        return GenerationRequest(messages=(ChatMessage(role="user", content=text),), max_tokens=max_tokens, sampling=_GREEDY)
    return GenerationRequest(prompt=text + "\n", max_tokens=max_tokens, sampling=_GREEDY)


def _numbered(outline: list[str]) -> list[dict[str, Any]]:
    return [{"n": i, "point": p} for i, p in enumerate(outline, 1)]


def _join_points(outline: list[str], expansions: list[str]) -> str:
    return "\n".join(f"{i}. {p}: {e.strip()}" for i, (p, e) in enumerate(zip(outline, expansions, strict=True), 1))


def skeleton_of_thought(*, points: int = 8, backend: str = "default", outline_tokens: int = 96, point_tokens: int = 64, chat: bool = True) -> TaskGraph:
    """Input ``question``; output the joined answer. The expansions run in parallel on one
    backend (one batch on a local engine) and share the question-and-outline prefix."""
    g = TaskGraph("skeleton_of_thought", output="answer")
    g.add("outline_text", Generate(partial(_outline_prompt, points=points), backend=backend, max_tokens=outline_tokens, chat=chat), inputs={"question": Input("question")})
    g.add("outline", partial(parse_outline, max_points=points), inputs={"text": "outline_text"})
    g.add("points", _numbered, inputs={"outline": "outline"})
    expand = Generate(partial(_expand_request, max_tokens=point_tokens, backend_chat=chat), backend=backend)
    g.map("expand", expand, over="points", inputs={"question": Input("question"), "outline": "outline"})
    g.add("answer", _join_points, inputs={"outline": "outline", "expansions": "expand"})
    return g


# -- plan and execute (LLMCompiler-style) -----------------------------------------------


def _plan_prompt(question: str, catalogue: str) -> str:
    return (
        "Plan the tool calls that answer the question. One call per line, numbered, arguments by name; "
        "use $N for the result of step N. Example:\n1. search(query=\"capital of France\")\n2. length(text=\"$1\")\n\n"
        f"Tools:\n{catalogue}\n\nQuestion: {question}\nPlan:"
    )


def _answer_prompt(question: str, results: dict[str, Any]) -> str:
    lines = "\n".join(f"{k}. {v}" for k, v in results.items())
    return f"Question: {question}\nTool results:\n{lines}\nAnswer briefly:"


def _plan_data(text: str, tools: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"id": c.id, "tool": c.tool, "args": dict(c.args), "deps": sorted(c.deps)} for c in parse_plan(text, tools)]


def _run_call(tool: Callable[..., Any], call: dict[str, Any], **deps: Any) -> Any:
    planned = PlannedCall(call["id"], call["tool"], call["args"], frozenset(call["deps"]))
    results = {int(k.removeprefix("s")): v for k, v in deps.items()}
    return tool(**resolve_arguments(planned, results))


def _collect(**results: Any) -> dict[str, Any]:
    return {k.removeprefix("s"): results[k] for k in sorted(results, key=lambda k: int(k.removeprefix("s")))}


def _execution_graph(plan: list[dict[str, Any]], tools: Mapping[str, Callable[..., Any]]) -> TaskGraph:
    g = TaskGraph("plan")
    for call in plan:
        tool = tools[call["tool"]]
        g.add(f"s{call['id']}", partial(_run_call, tool, call), inputs={f"s{d}": f"s{d}" for d in call["deps"]},
              idempotent=getattr(tool, "idempotent", True))
    g.add("results", _collect, inputs={f"s{c['id']}": f"s{c['id']}" for c in plan})
    return g


def plan_and_execute(tools: Mapping[str, Callable[..., Any]], *, backend: str = "default", plan_tokens: int = 128, answer_tokens: int = 128, chat: bool = True) -> TaskGraph:
    """Input ``question``. A planner writes numbered tool calls with ``$N`` dependencies; the
    calls run as a DAG (independent calls at once); a last generation answers from the results.
    A tool with ``idempotent = False`` as an attribute is never repeated silently on resume."""
    names = tuple(sorted(tools))
    catalogue = "\n".join(_describe_tool(n, tools[n]) for n in names)
    g = TaskGraph("plan_and_execute", output="answer")
    g.add("plan_text", Generate(partial(_plan_prompt, catalogue=catalogue), backend=backend, max_tokens=plan_tokens, chat=chat), inputs={"question": Input("question")})
    g.add("plan", partial(_plan_data, tools=names), inputs={"text": "plan_text"})
    g.add("execute", Subgraph(partial(_execution_graph, tools=tools)), inputs={"plan": "plan"})
    g.add("answer", Generate(_answer_prompt, backend=backend, max_tokens=answer_tokens, chat=chat), inputs={"question": Input("question"), "results": "execute"})
    return g


def _describe_tool(name: str, fn: Callable[..., Any]) -> str:
    """``- name(a: int, b: str = 'x'): first docstring line`` for the planner's prompt."""
    try:
        params = inspect.signature(fn, eval_str=True).parameters.values()
        shown = ", ".join(_describe_parameter(p) for p in params)
    except (TypeError, ValueError, NameError):
        shown = "..."
    doc = (fn.__doc__ or "").strip().splitlines()
    return f"- {name}({shown})" + (f": {doc[0]}" if doc else "")


def _describe_parameter(p: inspect.Parameter) -> str:
    text = p.name
    if p.annotation is not p.empty:
        text += f": {getattr(p.annotation, '__name__', p.annotation)}"
    if p.default is not p.empty:
        text += f" = {p.default!r}"
    return text


# -- map-reduce -------------------------------------------------------------------


def map_reduce(*, map_prompt: str = "Summarise this document in one sentence:\n{item}", reduce_prompt: str = "Combine these summaries into one short paragraph:\n{parts}",
               backend: str = "default", map_tokens: int = 64, reduce_tokens: int = 128, chat: bool = True) -> TaskGraph:
    """Input ``documents`` (a list of strings); each is mapped in parallel, then reduced."""
    g = TaskGraph("map_reduce", output="reduce")
    g.map("map", Generate(map_prompt, backend=backend, max_tokens=map_tokens, chat=chat), over=Input("documents"))
    g.add("reduce", Generate(reduce_prompt, backend=backend, max_tokens=reduce_tokens, chat=chat), inputs={"parts": "map"})
    return g


# -- self-consistency -------------------------------------------------------------


def _vote(samples: list[str]) -> dict[str, Any]:
    answers = [extract_answer(s) for s in samples]
    answer, count = majority_vote(answers)
    return {"answer": answer, "votes": count, "of": len(samples), "answers": answers}


def self_consistency(*, n: int = 5, temperature: float = 0.7, seed: int = 1, backend: str = "default", max_tokens: int = 128,
                     prompt: str = "{question}", chat: bool = True) -> TaskGraph:
    """Input ``question``; ``n`` sampled answers in one request (the engine decodes them as one
    batch over a shared prompt), then a majority vote over the extracted answers."""
    sampling = SamplingParams(temperature=temperature, seed=seed)
    g = TaskGraph("self_consistency", output="vote")
    g.add("samples", Generate(prompt, backend=backend, max_tokens=max_tokens, n=n, sampling=sampling, chat=chat), inputs={"question": Input("question")})
    g.add("vote", _vote, inputs={"samples": "samples"})
    return g


PATTERNS: dict[str, Callable[..., TaskGraph]] = {
    "sot": skeleton_of_thought,
    "map-reduce": map_reduce,
    "vote": self_consistency,
}
