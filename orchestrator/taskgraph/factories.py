"""Graph factories a stored run may be rebuilt from: only those registered in code.

A run started from the CLI records how to rebuild its graph: a factory name and JSON
arguments. The store is data (anyone who can write the file can write that record), so
``orchestrator resume`` never imports what the record names: it looks the name up here.
The built-in patterns are registered; an application registers its own:

    from orchestrator.taskgraph.factories import register_factory
    register_factory("myapp:review", build_review_graph)   # a function returning a TaskGraph

A name that is not registered raises ``UnknownFactoryError`` and nothing is imported or
called. Stores written before the task graph moved to ``orchestrator.taskgraph`` name the
built-ins ``orchestrator.patterns:...``; those old names map to the same functions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import ConfigError, StoreError, UnknownFactoryError
from orchestrator.taskgraph.graph import TaskGraph
from orchestrator.taskgraph.patterns import map_reduce, self_consistency, skeleton_of_thought

__all__ = ["Factory", "build_from_record", "factory_for", "register_factory", "registered_factories"]

Factory = Callable[..., TaskGraph]
"""A function of JSON keyword arguments that returns a ``TaskGraph``."""

_BUILT_IN: dict[str, Factory] = {
    "orchestrator.taskgraph.patterns:skeleton_of_thought": skeleton_of_thought,
    "orchestrator.taskgraph.patterns:map_reduce": map_reduce,
    "orchestrator.taskgraph.patterns:self_consistency": self_consistency,
}
# Names written by earlier versions, before the restructure moved the patterns.
_OLD_NAMES = {
    "orchestrator.patterns:skeleton_of_thought": "orchestrator.taskgraph.patterns:skeleton_of_thought",
    "orchestrator.patterns:map_reduce": "orchestrator.taskgraph.patterns:map_reduce",
    "orchestrator.patterns:self_consistency": "orchestrator.taskgraph.patterns:self_consistency",
}
_MAX_NAME = 200

_lock = threading.Lock()
_registry: dict[str, Factory] = dict(_BUILT_IN)


def register_factory(name: str, factory: Factory) -> None:
    """Lets stored runs name ``factory`` as ``name``. Registering a name again with another
    function is refused (a store must not be able to mean two things)."""
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise ConfigError(f"a factory name is a non-empty string of at most {_MAX_NAME} characters, got {name!r}")
    if not callable(factory):
        raise ConfigError(f"factory {name!r} must be callable, got {type(factory).__name__}")
    with _lock:
        known = _registry.get(_OLD_NAMES.get(name, name))
        if known is not None and known is not factory:
            raise ConfigError(f"a different factory is already registered as {name!r}")
        _registry[name] = factory


def registered_factories() -> tuple[str, ...]:
    """The names a stored run may use, sorted."""
    with _lock:
        return tuple(sorted(_registry))


def factory_for(name: str) -> Factory:
    """The registered factory called ``name`` (an old built-in name maps to its new one)."""
    with _lock:
        found = _registry.get(_OLD_NAMES.get(name, name)) if isinstance(name, str) else None
    if found is None:
        shown = repr(name if not isinstance(name, str) or len(name) <= 80 else name[:77] + "...")
        raise UnknownFactoryError(
            f"the run names graph factory {shown}, which is not registered; a stored run can only be rebuilt "
            "by a built-in pattern or a factory the application registers with register_factory"
        )
    return found


def build_from_record(record: str) -> tuple[TaskGraph, dict[str, Any]]:
    """Rebuilds a graph from a run's factory record: ``{"ref": NAME, "kwargs": {...}, "backends":
    {...}}`` (or a bare ``NAME``). Returns the graph and the record's backends.

    Raises ``UnknownFactoryError`` for a name nobody registered, ``StoreError`` (its parent)
    for a record that is not of this shape, or when the factory refuses its arguments.
    """
    spec = _parse(record)
    factory = factory_for(spec["ref"])
    kwargs = spec.get("kwargs", {})
    try:
        graph = factory(**kwargs)
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise StoreError(f"cannot rebuild the graph with {spec['ref']}: {exc}") from exc
    if not isinstance(graph, TaskGraph):
        raise ConfigError(f"factory {spec['ref']!r} returned {type(graph).__name__}, not a TaskGraph")
    return graph, dict(spec.get("backends", {}))


def _parse(record: str) -> dict[str, Any]:
    """The record as a dict with a string ``ref``, a dict of ``kwargs`` and a dict of ``backends``."""
    if not isinstance(record, str):
        raise StoreError(f"a factory record is text, not {type(record).__name__}")
    if not record.lstrip().startswith("{"):
        return {"ref": record.strip()}
    try:
        spec = json.loads(record)
    except (ValueError, RecursionError) as exc:
        raise StoreError(f"the run's factory record is not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("ref"), str):
        raise StoreError("the run's factory record has no factory name ('ref')")
    for key in ("kwargs", "backends"):
        if not isinstance(spec.get(key, {}), Mapping):
            raise StoreError(f"the run's factory record has a {key!r} that is not an object")
    for name, backend in spec.get("backends", {}).items():
        if not _backend_ok(backend):
            raise StoreError(f"the run's factory record has backend {name!r} that is neither a model name "
                             "nor {'route': [models], 'cascade': number}")
    return spec


def _backend_ok(spec: Any) -> bool:
    """A model (catalogue name or path) or ``{"route": [small, larger], "cascade": T}``."""
    if isinstance(spec, str):
        return bool(spec)
    if not isinstance(spec, Mapping) or set(spec) != {"route", "cascade"}:
        return False
    route, cascade = spec["route"], spec["cascade"]
    models_ok = isinstance(route, list) and 1 <= len(route) <= 8 and all(isinstance(m, str) and m for m in route)
    return models_ok and isinstance(cascade, (int, float)) and not isinstance(cascade, bool)
