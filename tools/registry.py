"""``ToolRegistry``: the tools an agent may call, by name, and the one way to read a call.

A model-written call names a tool and gives its arguments; ``parse_call`` turns it into
the ``Tool`` and the keyword arguments to call it with, or a ``ToolCallError`` to give
back to the model. A name that is not in the registry fails closed, whatever tools exist
elsewhere: an allow-list is simply a smaller registry (``allow``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from orchestrator.errors import ToolCallError, ToolDefinitionError
from tools.tool import Tool, tool
from tools.validation import DEFAULT_LIMITS, ArgumentLimits, validate_arguments

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """An immutable set of tools with unique names.

    Plain functions are turned into tools with ``@tool``'s defaults. Two tools with the
    same name are a ``ToolDefinitionError``.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), *, limits: ArgumentLimits = DEFAULT_LIMITS) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            made = item if isinstance(item, Tool) else tool(item)
            if made.name in self._tools:
                raise ToolDefinitionError(f"two tools are named {made.name!r}")
            self._tools[made.name] = made
        self.limits = limits

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._tools)})"

    def allow(self, names: Iterable[str]) -> ToolRegistry:
        """A registry of only the named tools (an agent's allow-list).

        Naming a tool that is not here is a ``ToolDefinitionError``: an allow-list with a
        typo would otherwise silently take a tool away.
        """
        wanted = list(names)
        unknown = [n for n in wanted if n not in self._tools]
        if unknown:
            raise ToolDefinitionError(f"allow-list names unknown tool {unknown[0]!r}; the tools are: {', '.join(self._tools)}")
        return ToolRegistry((t for t in self if t.name in wanted), limits=self.limits)

    def lookup(self, name: Any) -> Tool:
        """The tool a model named, or a ``ToolCallError`` listing the tools it may call."""
        if isinstance(name, str) and name in self._tools:
            return self._tools[name]
        shown = name if isinstance(name, str) else repr(name)
        shown = shown if len(shown) <= 64 else shown[:61] + "..."
        known = ", ".join(self._tools) or "(none)"
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name, list(self._tools), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ToolCallError(f"unknown tool '{shown}'{hint}; the tools are: {known}", tool=shown)

    def parse_call(self, name: Any, arguments: str | bytes | Mapping[str, Any]) -> tuple[Tool, dict[str, Any]]:
        """The tool and its keyword arguments from a model-written call (JSON text or dict)."""
        found = self.lookup(name)
        return found, validate_arguments(found, arguments, self.limits)
