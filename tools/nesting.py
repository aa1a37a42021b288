"""How deep and how large a JSON-like value is, measured without recursion.

Schemas and tool results are untrusted input: a value nested 100,000 levels deep makes every
recursive walker (``json.dumps``, ``jsonschema``, our own checks) raise ``RecursionError``, and
a wide one makes a slow walker (the metaschema check costs about half a millisecond per schema
object) block for seconds. This walk uses an explicit stack and stops as soon as a limit is
passed, so its own cost is bounded by the limits, whatever it is given (cycles included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["nesting_problem"]


def nesting_problem(value: Any, *, max_depth: int, max_containers: int | None = None) -> str | None:
    """A short reason when ``value`` nests dicts/lists/tuples deeper than ``max_depth`` levels
    (a scalar is level 0, ``[]`` and ``[1]`` level 1, ``{"a": [1]}`` level 2) or holds more than
    ``max_containers`` dicts/lists/tuples in all (itself included); None when it is within both."""
    containers = 0
    # Depth-first, one iterator per open container: memory grows with the depth (capped), not the width.
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        containers += 1
        if max_containers is not None and containers > max_containers:
            return f"made of more than {max_containers} objects and lists"
        if len(stack) > max_depth:  # the stack holds one iterator per level above this item, plus the root's
            return f"nested deeper than {max_depth} levels"
        stack.append(iter(children))
    return None


_END = object()
