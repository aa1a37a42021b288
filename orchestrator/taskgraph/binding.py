"""Binding checks of a task graph: which names a step takes, and whether a node's inputs bind them.

A step's names come from a function's signature or a prompt template's fields. Everything
here runs when a node is added, so a graph that could not bind its steps fails when it is
built, with a ``GraphError`` that names the node, never half-way through a run.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable
from typing import Any

from orchestrator.errors import GraphError

__all__ = ["check_binding", "condition_only", "function_parameters", "template_fields"]


def function_parameters(fn: Callable[..., Any]) -> tuple[set[str], set[str]]:
    """(required, optional) parameter names; a ``**kwargs`` function accepts any name (``"**"``)."""
    if not callable(fn):
        raise GraphError(f"{fn!r} is not a step: use a function, Generate, Subgraph or Loop")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"cannot read the signature of {fn!r}: {exc}") from exc
    required, optional = set(), set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            optional.add("**")
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.kind is p.POSITIONAL_ONLY:
            if p.default is p.empty:
                raise GraphError(f"{getattr(fn, '__qualname__', fn)}: positional-only parameter {p.name!r} cannot be bound by name")
        elif p.default is p.empty:
            required.add(p.name)
        else:
            optional.add(p.name)
    return required, optional


def template_fields(template: str) -> set[str]:
    """The ``{name}`` fields of a prompt template; attributes, indexes and formats are refused."""
    if not isinstance(template, str):
        raise GraphError(f"a Generate prompt must be a template string or a function, not {type(template).__name__}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise GraphError(f"bad prompt template: {exc}") from exc
    fields = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise GraphError(f"prompt template field {{{name}}} must be a plain name like {{question}} (no attributes, indexes or formats)")
        fields.add(name)
    return fields


def check_binding(node: str, required: set[str], optional: set[str], bound: set[str]) -> None:
    """Every required parameter is bound, and nothing is bound that the step does not take."""
    missing = required - bound
    if missing:
        raise GraphError(f"node {node!r}: no input is bound to {', '.join(sorted(missing))}")
    if "**" not in optional:
        unknown = bound - required - optional
        if unknown:
            raise GraphError(f"node {node!r}: the step has no parameter {', '.join(sorted(unknown))}")


def condition_only(node: str, when: Callable[..., bool], bound: set[str], required: set[str], optional: set[str]) -> frozenset[str]:
    """Checks that a node's condition reads only the node's inputs; returns the inputs that only
    the condition reads (they are not passed to the step)."""
    w_required, w_optional = function_parameters(when)
    w_missing = w_required - bound
    if w_missing:
        raise GraphError(f"node {node!r}: its condition reads {', '.join(sorted(w_missing))}, which is not an input of the node")
    if "**" in optional:  # the step takes every name: the condition's inputs go to it too
        return frozenset()
    return frozenset((w_required | w_optional) & bound - required - optional)
