"""What a task graph run reports: events while it runs, a ``RunResult`` at the end."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.errors import RunError

__all__ = ["EventKind", "NodeReport", "NodeStatus", "RunEvent", "RunResult", "critical_path"]

EventKind = Literal[
    "run_started", "node_started", "token", "node_finished", "node_failed",
    "node_retrying", "node_skipped", "node_cancelled", "run_finished",
]
NodeStatus = Literal["done", "failed", "skipped", "cancelled"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One thing that happened in a run, for UIs and logs. ``text`` is a token's text for
    ``token`` events and the reason for ``node_failed``/``node_skipped``/``node_retrying``."""

    run_id: str
    kind: EventKind
    time: float
    node: str | None = None
    text: str | None = None
    index: int = 0


@dataclass(frozen=True, slots=True)
class NodeReport:
    """How one node (or one instance of a map, ``name[i]``) went. ``error`` is the failure's
    message; ``exception`` the typed error itself (its ``__cause__`` is what the step raised),
    known only to the process that ran the node, never stored."""

    key: str
    status: NodeStatus
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    error: str | None = None
    resumed: bool = False  # its output came from the store, it did not run again
    info: Mapping[str, Any] = field(default_factory=dict)  # backend, ttft_s, decode_tok_s, prefill tokens, route
    exception: RunError | None = field(default=None, repr=False, compare=False)

    @property
    def duration_s(self) -> float:
        if self.started is None or self.finished is None:
            return 0.0
        return max(0.0, self.finished - self.started)


@dataclass(frozen=True)
class RunResult:
    """The end of a run. ``output`` is the graph's output node value (``None`` if it did not
    finish); ``outputs`` holds every finished node's value."""

    run_id: str
    graph: str
    status: Literal["done", "failed", "cancelled"]
    output: Any
    outputs: Mapping[str, Any]
    nodes: Mapping[str, NodeReport]
    wall_s: float
    critical_path: tuple[str, ...] = ()

    @property
    def errors(self) -> dict[str, str]:
        return {k: r.error or r.status for k, r in self.nodes.items() if r.status == "failed"}

    @property
    def prefill_computed(self) -> int:
        return sum(int(r.info.get("prefill_tokens", 0)) for r in self.nodes.values() if not r.resumed)

    @property
    def prefill_reused(self) -> int:
        return sum(int(r.info.get("prefill_reused_tokens", 0)) for r in self.nodes.values() if not r.resumed)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest: status, wall time, prefill computed/reused, critical path, per-node timings."""
        return {
            "run_id": self.run_id,
            "graph": self.graph,
            "status": self.status,
            "wall_s": round(self.wall_s, 4),
            "prefill_computed": self.prefill_computed,
            "prefill_reused": self.prefill_reused,
            "critical_path": list(self.critical_path),
            "nodes": {
                k: {"status": r.status, "duration_s": round(r.duration_s, 4), "attempts": r.attempts, "resumed": r.resumed,
                    **{f: r.info[f] for f in ("ttft_s", "decode_tok_s", "decode_tokens", "route") if f in r.info}, **({"error": r.error} if r.error else {})}
                for k, r in self.nodes.items()
            },
        }


class _Dag(Protocol):  # a TaskGraph or a networkx DiGraph
    def predecessors(self, name: str) -> Iterable[str]: ...
    def __contains__(self, name: object) -> bool: ...


def critical_path(dag: _Dag, reports: Mapping[str, NodeReport]) -> tuple[str, ...]:
    """The chain of nodes that decided the run's wall time: from the node that finished last,
    walk back through the input that finished last, to a node with no inputs."""
    timed = {n: r for n, r in reports.items() if n in dag and r.finished is not None and not r.resumed}
    if not timed:
        return ()
    node = max(timed, key=lambda n: timed[n].finished or 0.0)
    path = [node]
    while True:
        preds = [p for p in dag.predecessors(node) if p in timed]
        if not preds:
            break
        node = max(preds, key=lambda n: timed[n].finished or 0.0)
        path.append(node)
    return tuple(reversed(path))
