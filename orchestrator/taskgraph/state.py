"""What one run knows while it executes, and how a node's output is committed.

``RunState`` is shared by every level of a run (the top graph and each subgraph): the
committed outputs, the node reports, the first failure, the concurrency limiters, the
events. Committing is the one step that makes an output durable: it is written to the store
(when there is one) before any successor may read it, and handed on as JSON reads it back,
so a fresh run and a resumed run see exactly the same values.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from orchestrator.backends.base import Backend
from orchestrator.errors import NodeFailedError, NodeTimeoutError, OrchestratorError, RunError
from orchestrator.taskgraph.control import RunControl
from orchestrator.taskgraph.graph import TaskGraph
from orchestrator.taskgraph.runs import NodeReport, RunEvent
from orchestrator.taskgraph.store import RunStore, to_json

__all__ = [
    "BranchCancelled",
    "Committed",
    "FailurePolicy",
    "RunState",
    "SubgraphRunner",
    "as_run_error",
    "reason",
]

log = logging.getLogger(__name__)

FailurePolicy = Literal["fail_fast", "continue"]
SubgraphRunner = Callable[["RunState", TaskGraph, str, Mapping[str, Any]], Awaitable[Any]]
_SCALARS = frozenset({str, int, float, bool, type(None)})  # values JSON hands back unchanged


class BranchCancelled(Exception):
    """This node was cancelled on its own (``RunControl.cancel_node``), or a branch inside it was."""


@dataclass(frozen=True)
class Committed:
    """A committed output, as this run hands it on."""

    output: Any
    started: float | None
    attempts: int
    info: dict[str, Any]


@dataclass
class RunState:
    """State shared by every level (the top graph, subgraphs) of one run.

    ``run_subgraph`` is how a ``Subgraph`` step runs (``taskgraph.level.run_subgraph``); it is
    handed in so that calling a step does not import the level that calls it.
    """

    run_id: str
    backends: Mapping[str, Backend]
    store: RunStore | None
    failure: FailurePolicy
    limits: Mapping[str, int]
    control: RunControl
    rng: random.Random
    run_subgraph: SubgraphRunner
    on_event: Callable[[RunEvent], None] | None = None
    committed: dict[str, Any] = field(default_factory=dict)  # key -> Committed, or a store record on resume
    uncertain: set[str] = field(default_factory=set)  # side effects that started but never committed
    reports: dict[str, NodeReport] = field(default_factory=dict)
    first_error: RunError | None = None
    _limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)

    @property
    def fail_fast(self) -> bool:
        return self.failure == "fail_fast"

    def limiter(self, key: str | None) -> anyio.CapacityLimiter | None:
        if key is None:
            return None
        if key not in self._limiters:
            self._limiters[key] = anyio.CapacityLimiter(self.limits[key])
        return self._limiters[key]

    def emit(self, kind: str, node: str | None = None, text: str | None = None, index: int = 0) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(RunEvent(self.run_id, kind, time.time(), node, text, index))  # type: ignore[arg-type]
        except Exception:  # a UI callback's bug must not lose a durable run
            log.exception("run %s: the on_event callback raised", self.run_id)

    def fail(self, error: RunError) -> None:
        """Fail-fast: remember the first failure and cancel everything else."""
        if self.first_error is None:
            self.first_error = error
        self.control.stop()

    def mark_started(self, key: str, attempt: int) -> None:
        """Records that a side effect is about to run (a resume will not repeat it silently)."""
        if self.store is not None:
            self.store.mark_started(self.run_id, key, attempt)

    def commit(self, key: str, value: Any, started: float, attempts: int, info: dict[str, Any]) -> Any:
        """Commits a node output and returns it as its successors will see it (JSON round trip,
        so a fresh run and a resumed run hand on exactly the same values)."""
        try:
            text = to_json(value)
        except (TypeError, ValueError) as exc:
            raise NodeFailedError(f"node {key!r} returned a value that is not JSON ({exc})", run_id=self.run_id, node=key) from exc
        if self.store is not None:
            self.store.commit(self.run_id, key, text, attempts=attempts, started=started, info=info)
        handed_on = value if type(value) in _SCALARS else json.loads(text)
        self.committed[key] = Committed(handed_on, started, attempts, info)
        return self.committed[key].output

    def resumed(self, key: str) -> Any:
        """The committed output of ``key`` (from this run, or from the store on resume)."""
        c = self.committed[key]
        if not isinstance(c, Committed):  # a store record loaded by resume
            c = Committed(c.output, c.started, c.attempts, c.info)
            self.committed[key] = c
            self.reports[key] = NodeReport(key, "done", c.started, None, c.attempts, resumed=True, info=c.info)
        return c.output

    def record(self, report: NodeReport) -> None:
        self.reports[report.key] = report
        if self.store is not None and report.status != "done":
            self.store.record(self.run_id, report.key, report.status, attempts=report.attempts, started=report.started, finished=report.finished,
                              info=dict(report.info), error=report.error)

    def record_failure(self, key: str, error: RunError, started: float | None = None, attempts: int = 0) -> None:
        """Reports ``key`` as failed with ``error`` (its message, and the typed error for this process)."""
        self.record(NodeReport(key, "failed", started, time.time() if started is not None else None, attempts, error=str(error), exception=error))
        self.emit("node_failed", key, str(error))

    def cancelled(self, key: str, started: float, attempts: int) -> BranchCancelled:
        """Reports ``key`` as cancelled on its own; the caller raises what this returns."""
        self.record(NodeReport(key, "cancelled", started, time.time(), attempts))
        self.emit("node_cancelled", key)
        return BranchCancelled()


def reason(exc: BaseException) -> str:
    """An exception as one short reason: its message (or type), at most 300 characters."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def as_run_error(exc: BaseException, key: str, run_id: str, timeout_s: float | None) -> RunError:
    """A node's failure as the run reports it; the original exception is ``__cause__``."""
    if isinstance(exc, RunError):
        if exc.run_id is None:
            exc.run_id = run_id
        return exc
    if isinstance(exc, TimeoutError):
        err: RunError = NodeTimeoutError(f"node {key!r} ran past its timeout of {timeout_s} s", run_id=run_id, node=key)
    elif isinstance(exc, OrchestratorError):
        err = NodeFailedError(f"node {key!r} failed: {type(exc).__name__}: {reason(exc)}", run_id=run_id, node=key)
    else:
        err = NodeFailedError(f"node {key!r} raised {type(exc).__name__}: {reason(exc)}", run_id=run_id, node=key)
    err.__cause__ = exc
    return err
