"""Runs task graphs with anyio: every node starts the moment its inputs are committed.

There are no supersteps and no polling. When a node finishes, the scheduler counts down each
successor's unfinished inputs and starts the ones that reach zero, in the same task group; a
slow branch delays only what needs its output. Nodes of one local model run concurrently, so
the engine decodes them in one batch and shares their common prompt prefix.

Durability: with a ``RunStore``, each output is committed before any successor starts, and a
run resumes (``Runner.resume``) by re-running only what was not committed.

The parts, each in its own module: ``level`` (one graph: start-up, settling, inputs, map),
``attempt`` (one node: attempts, retry, limit, timeout, commit), ``steps`` (calling a function,
``Generate``, ``Subgraph`` or ``Loop``), ``state`` (what a run knows, committing) and
``control`` (``RunControl``, re-exported here).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from orchestrator.backends.base import Backend
from orchestrator.errors import ConfigError, GraphError, RunCancelledError
from orchestrator.taskgraph.control import RunControl
from orchestrator.taskgraph.graph import Generate, Loop, TaskGraph
from orchestrator.taskgraph.level import Level, run_subgraph
from orchestrator.taskgraph.runs import RunEvent, RunResult, critical_path
from orchestrator.taskgraph.state import FailurePolicy, RunState
from orchestrator.taskgraph.store import RunStore, to_json

__all__ = ["RunControl", "Runner"]

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Runner:
    """Runs graphs on named backends.

    ``backends`` maps the names used by ``Generate(backend=...)`` to backends (a single backend
    is named ``"default"``). ``limits`` caps how many nodes run at once per backend name or per
    node ``limit`` name (default 16 per backend, the engine's batch), counted per run. ``failure="fail_fast"``
    cancels the rest of the run at the first failed node and raises; ``"continue"`` runs every
    branch that does not need the failed node and reports the failures in the result. ``rng``
    draws the retries' jittered backoff (injectable for tests).
    """

    def __init__(
        self,
        backends: Mapping[str, Backend] | Backend,
        *,
        store: RunStore | None = None,
        limits: Mapping[str, int] | None = None,
        failure: FailurePolicy = "fail_fast",
        rng: random.Random | None = None,
    ) -> None:
        self.backends: dict[str, Backend] = dict(backends) if isinstance(backends, Mapping) else {"default": backends}
        if failure not in ("fail_fast", "continue"):
            raise ConfigError(f"failure must be 'fail_fast' or 'continue', not {failure!r}")
        self.store = store
        self.failure = failure
        self.rng = rng or random.Random()
        self.limits: dict[str, int] = {name: 16 for name in self.backends}
        for name, n in (limits or {}).items():
            if not isinstance(n, int) or n < 1:
                raise ConfigError(f"limit {name!r} must be a positive integer, not {n!r}")
            self.limits[name] = n

    async def run(
        self,
        graph: TaskGraph,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        control: RunControl | None = None,
        factory: str | None = None,
    ) -> RunResult:
        """Runs ``graph`` on ``inputs`` (JSON values). ``factory`` ("module:function") lets
        ``orchestrator resume`` rebuild the graph from the command line."""
        run_id = run_id or uuid.uuid4().hex[:12]
        if not _RUN_ID.match(run_id):
            raise ConfigError(f"run id {run_id!r} must be 1-64 letters, digits, '_', '-' or '.'")
        inputs = _json_inputs(inputs or {})
        self._check(graph, inputs)
        if self.store is not None:
            self.store.create_run(run_id, graph.name, graph.fingerprint(), inputs, structure=graph.structure(), factory=factory)
        return await self._execute(run_id, graph, inputs, {}, set(), on_event, control)

    async def resume(
        self,
        run_id: str,
        graph: TaskGraph,
        *,
        rerun_uncertain: Iterable[str] = (),
        on_event: Callable[[RunEvent], None] | None = None,
        control: RunControl | None = None,
    ) -> RunResult:
        """Continues a stored run: committed nodes keep their outputs, the rest run. A node with
        side effects that started but never committed raises ``UnsafeResumeError`` unless its key
        is in ``rerun_uncertain``."""
        if self.store is None:
            raise ConfigError("resume needs a Runner with a store")
        record = self.store.run(run_id)
        if record.fingerprint != graph.fingerprint():
            raise GraphError(f"run {run_id!r} was made by a different graph ({record.graph!r}, fingerprint {record.fingerprint}); it resumes only on the same one")
        self._check(graph, record.inputs)
        stored = self.store.nodes(run_id)
        committed = {k: r for k, r in stored.items() if r.status == "done"}
        uncertain = {k for k, r in stored.items() if r.status == "started"} - set(rerun_uncertain)
        self.store.set_run_status(run_id, "running")
        log.info("resuming run %s: %d nodes committed, %d uncertain", run_id, len(committed), len(uncertain))
        return await self._execute(run_id, graph, record.inputs, committed, uncertain, on_event, control)

    def _check(self, graph: TaskGraph, inputs: Mapping[str, Any]) -> None:
        graph.validate()
        missing = graph.inputs() - set(inputs)
        if missing:
            raise GraphError(f"graph {graph.name!r} needs the input(s) {', '.join(sorted(missing))}")
        for node in graph.nodes.values():
            step = node.step.step if isinstance(node.step, Loop) else node.step
            if isinstance(step, Generate) and step.backend not in self.backends:
                raise GraphError(f"node {node.name!r} uses backend {step.backend!r}; the runner has {sorted(self.backends)}")
            if node.limit is not None and node.limit not in self.limits:
                raise GraphError(f"node {node.name!r} counts against limit {node.limit!r}, which the runner does not define")

    async def _execute(
        self, run_id: str, graph: TaskGraph, inputs: dict[str, Any], committed: dict[str, Any], uncertain: set[str],
        on_event: Callable[[RunEvent], None] | None, control: RunControl | None,
    ) -> RunResult:
        run = RunState(
            run_id=run_id, backends=self.backends, store=self.store, failure=self.failure, limits=self.limits,
            control=control or RunControl(), rng=self.rng, run_subgraph=run_subgraph, on_event=on_event,
            committed=committed, uncertain=uncertain,
        )
        started = time.perf_counter()
        run.emit("run_started")
        status: Literal["done", "failed", "cancelled"] = "done"
        try:
            with run.control.run_scope():
                level = Level(run, graph, "", inputs)
                await level.execute()
        except BaseException:
            self._set_status(run_id, "interrupted", None)  # cancelled from outside, or our bug: resumable
            raise
        if run.first_error is not None:
            status = "failed"
        elif run.control.cancelled:
            status = "cancelled"
        elif any(r.status == "failed" for r in run.reports.values()):
            status = "failed"
        error = str(run.first_error) if run.first_error else None
        self._set_status(run_id, status, error)
        run.emit("run_finished", text=status)
        if run.first_error is not None:
            raise run.first_error
        if status == "cancelled":
            raise RunCancelledError(f"run {run_id} was cancelled; resume it to finish", run_id=run_id)
        top = {k: r for k, r in run.reports.items() if k in graph.nodes}
        return RunResult(
            run_id=run_id, graph=graph.name, status=status, output=level.output(), outputs=dict(level.values),
            nodes=dict(run.reports), wall_s=time.perf_counter() - started, critical_path=critical_path(graph, top),
        )

    def _set_status(self, run_id: str, status: str, error: str | None) -> None:
        if self.store is not None:
            self.store.set_run_status(run_id, status, error)


def _json_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(to_json(dict(inputs)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run inputs must be JSON values: {exc}") from exc
