"""Pure parts of the built-in graph patterns: reading outlines and plans, voting.

No I/O here: these functions turn model text into data, and the graphs in
``orchestrator.taskgraph.patterns`` wire them between generation steps.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import PlanError

__all__ = ["PlannedCall", "extract_answer", "majority_vote", "parse_outline", "parse_plan", "resolve_arguments"]

_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•])\s+(.+?)\s*$")
_PLAN_LINE = re.compile(r"^\s*(\d{1,3})[.):]\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")
_REF = re.compile(r"\$(\d{1,3})")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_MAX_PLAN = 50


def parse_outline(text: str, max_points: int) -> list[str]:
    """The points of a numbered or bulleted outline, in order, at most ``max_points``.

    Lines that are not list items are ignored; repeated points are dropped (small models
    loop). A text with no list item at all gives its non-empty lines instead, so the pattern
    still has something to expand.
    """
    points: list[str] = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m and m.group(1) not in points:
            points.append(m.group(1))
    if not points:
        points = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return points[:max_points]


@dataclass(frozen=True)
class PlannedCall:
    """One step of a plan: ``id. tool(args)``; ``$N`` in an argument means step N's result."""

    id: int
    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    deps: frozenset[int] = frozenset()


def parse_plan(text: str, tools: Iterable[str]) -> list[PlannedCall]:
    """Reads an LLMCompiler-style plan, one call per line:

        1. search(query="GGUF format")
        2. summarize(text="$1", words=50)

    Arguments are Python literals (read with ``ast.literal_eval``, never evaluated) given by
    keyword; ``$N`` refers to an earlier step. Lines that are not calls are ignored. A plan
    naming an unknown tool, referring to a later or missing step, or with no call at all raises
    ``PlanError`` with a reason short enough to give back to the model.
    """
    known = set(tools)
    calls: dict[int, PlannedCall] = {}
    for line in text.splitlines():
        m = _PLAN_LINE.match(line)
        if not m:
            continue
        step, tool, arg_text = int(m.group(1)), m.group(2), m.group(3)
        if tool not in known:
            raise PlanError(f"step {step} calls unknown tool {tool!r}; the tools are {', '.join(sorted(known))}")
        if step in calls:
            raise PlanError(f"step {step} appears twice")
        args = _read_arguments(step, arg_text)
        deps = frozenset(int(n) for v in args.values() for n in _REF.findall(str(v)))
        bad = sorted(d for d in deps if d >= step or d not in calls)
        if bad:
            raise PlanError(f"step {step} uses ${bad[0]}, which is not an earlier step")
        calls[step] = PlannedCall(step, tool, args, deps)
        if len(calls) > _MAX_PLAN:
            raise PlanError(f"a plan may have at most {_MAX_PLAN} steps")
    if not calls:
        raise PlanError("the plan has no step of the form `1. tool(name=value)`")
    return list(calls.values())


def _read_arguments(step: int, text: str) -> dict[str, Any]:
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError as exc:
        raise PlanError(f"step {step}: cannot read the arguments ({exc.msg})") from None
    assert isinstance(call, ast.Call)
    if call.args:
        raise PlanError(f"step {step}: give arguments by name, like tool(x=1)")
    args = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise PlanError(f"step {step}: ** arguments are not allowed")
        try:
            args[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, SyntaxError):
            raise PlanError(f"step {step}: argument {kw.arg} must be a literal value") from None
    return args


def resolve_arguments(call: PlannedCall, results: Mapping[int, Any]) -> dict[str, Any]:
    """Replaces ``$N`` by step N's result: the whole value when the argument is exactly
    ``"$N"``, its text when ``$N`` is part of a longer string."""
    out = {}
    for name, value in call.args.items():
        if isinstance(value, str):
            whole = _REF.fullmatch(value)
            if whole:
                value = results[int(whole.group(1))]
            else:
                value = _REF.sub(lambda m: str(results[int(m.group(1))]), value)
        out[name] = value
    return out


def extract_answer(text: str) -> str:
    """The answer a sampled reasoning text ends on: the last number if there is one,
    else the first non-empty line, normalised for voting (lower case, no trailing dot)."""
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", ".").rstrip("0").rstrip(".") if "." in numbers[-1] or "," in numbers[-1] else numbers[-1]
    for line in text.splitlines():
        if line.strip():
            return line.strip().rstrip(".").lower()
    return ""


def majority_vote(answers: Iterable[str]) -> tuple[str, int]:
    """The most common non-empty answer and its count; ties go to the answer seen first."""
    counts = Counter(a for a in answers if a)
    if not counts:
        return "", 0
    return counts.most_common(1)[0]
