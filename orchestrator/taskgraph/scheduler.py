"""Runs task graphs with anyio: every node starts the moment its inputs are committed.

There are no supersteps and no polling. When a node finishes, the scheduler counts down each
successor's unfinished inputs and starts the ones that reach zero, in the same task group; a
slow branch delays only what needs its output. Nodes of one local model run concurrently, so
the engine decodes them in one batch and shares their common prompt prefix.

Durability: with a ``RunStore``, each output is committed before any successor starts, and a
run resumes (``Runner.resume``) by re-running only what was not committed.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from orchestrator.backends.base import Backend
from orchestrator.errors import (
    ConfigError,
    GraphError,
    NodeFailedError,
    NodeTimeoutError,
    OrchestratorError,
    RunCancelledError,
    RunError,
    UnsafeResumeError,
)
from orchestrator.taskgraph.graph import Generate, Input, Loop, Node, Ref, Subgraph, TaskGraph
from orchestrator.taskgraph.runs import NodeReport, RunEvent, RunResult, critical_path
from orchestrator.taskgraph.store import RunStore, to_json
from orchestrator.types import Completion, TokenDelta

__all__ = ["RunControl", "Runner"]

log = logging.getLogger(__name__)

FailurePolicy = Literal["fail_fast", "continue"]
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NOT_RETRIED = (ConfigError, UnsafeResumeError)
_SCALARS = frozenset({str, int, float, bool, type(None)})  # values JSON hands back unchanged


class RunControl:
    """Cancels a run, or one branch of it, from the event loop that runs it (a UI's stop button).

    Cancelling a node stops it where it is (a local generation stops at its next token) and
    skips the nodes that need its output; the rest of the run goes on.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._cancelled: set[str] = set()
        self._run_scope: anyio.CancelScope | None = None
        self._run_cancelled = False

    def cancel(self) -> None:
        self._run_cancelled = True
        if self._run_scope is not None:
            self._run_scope.cancel()

    def cancel_node(self, key: str) -> None:
        self._cancelled.add(key)
        scope = self._scopes.get(key)
        if scope is not None:
            scope.cancel()


class Runner:
    """Runs graphs on named backends.

    ``backends`` maps the names used by ``Generate(backend=...)`` to backends (a single backend
    is named ``"default"``). ``limits`` caps how many nodes run at once per backend name or per
    node ``limit`` name (default 16 per backend, the engine's batch), counted per run. ``failure="fail_fast"``
    cancels the rest of the run at the first failed node and raises; ``"continue"`` runs every
    branch that does not need the failed node and reports the failures in the result.
    """

    def __init__(
        self,
        backends: Mapping[str, Backend] | Backend,
        *,
        store: RunStore | None = None,
        limits: Mapping[str, int] | None = None,
        failure: FailurePolicy = "fail_fast",
    ) -> None:
        self.backends: dict[str, Backend] = dict(backends) if isinstance(backends, Mapping) else {"default": backends}
        if failure not in ("fail_fast", "continue"):
            raise ConfigError(f"failure must be 'fail_fast' or 'continue', not {failure!r}")
        self.store = store
        self.failure = failure
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
        ctx = _Run(self, run_id, committed, uncertain, on_event, control or RunControl())
        started = time.perf_counter()
        ctx.emit("run_started")
        status: Literal["done", "failed", "cancelled"] = "done"
        try:
            with anyio.CancelScope() as scope:
                ctx.control._run_scope = scope
                if ctx.control._run_cancelled:
                    scope.cancel()
                level = _Level(ctx, graph, "", inputs)
                await level.execute()
        except BaseException:
            self._set_status(run_id, "interrupted", None)  # cancelled from outside, or our bug: resumable
            raise
        if ctx.first_error is not None:
            status = "failed"
        elif ctx.control._run_cancelled:
            status = "cancelled"
        elif any(r.status == "failed" for r in ctx.reports.values()):
            status = "failed"
        error = str(ctx.first_error) if ctx.first_error else None
        self._set_status(run_id, status, error)
        ctx.emit("run_finished", text=status)
        if ctx.first_error is not None:
            raise ctx.first_error
        if status == "cancelled":
            raise RunCancelledError(f"run {run_id} was cancelled; resume it to finish", run_id=run_id)
        top = {k: r for k, r in ctx.reports.items() if k in graph.nodes}
        return RunResult(
            run_id=run_id, graph=graph.name, status=status, output=level.output(), outputs=dict(level.values),
            nodes=dict(ctx.reports), wall_s=time.perf_counter() - started, critical_path=critical_path(graph, top),
        )

    def _set_status(self, run_id: str, status: str, error: str | None) -> None:
        if self.store is not None:
            self.store.set_run_status(run_id, status, error)


@dataclass
class _Run:
    """State shared by every level (the top graph, subgraphs) of one run."""

    runner: Runner
    run_id: str
    committed: dict[str, Any]
    uncertain: set[str]
    on_event: Callable[[RunEvent], None] | None
    control: RunControl
    reports: dict[str, NodeReport] = field(default_factory=dict)
    first_error: RunError | None = None
    _limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)

    def limiter(self, key: str | None) -> anyio.CapacityLimiter | None:
        if key is None:
            return None
        if key not in self._limiters:
            self._limiters[key] = anyio.CapacityLimiter(self.runner.limits[key])
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
        if self.control._run_scope is not None:
            self.control._run_scope.cancel()

    def commit(self, key: str, value: Any, started: float, attempts: int, info: dict[str, Any]) -> Any:
        """Commits a node output and returns it as its successors will see it (JSON round trip,
        so a fresh run and a resumed run hand on exactly the same values)."""
        try:
            text = to_json(value)
        except (TypeError, ValueError) as exc:
            raise NodeFailedError(f"node {key!r} returned a value that is not JSON ({exc})", run_id=self.run_id, node=key) from exc
        store = self.runner.store
        if store is not None:
            store.commit(self.run_id, key, text, attempts=attempts, started=started, info=info)
        handed_on = value if type(value) in _SCALARS else json.loads(text)
        self.committed[key] = _Committed(handed_on, started, attempts, info)
        return self.committed[key].output

    def record(self, report: NodeReport) -> None:
        self.reports[report.key] = report
        store = self.runner.store
        if store is not None and report.status != "done":
            store.record(self.run_id, report.key, report.status, attempts=report.attempts, started=report.started, finished=report.finished,
                         info=dict(report.info), error=report.error)


@dataclass(frozen=True)
class _Committed:
    output: Any
    started: float | None
    attempts: int
    info: dict[str, Any]


class _Skip(Exception):
    """A node that will not run: a branch not taken, or an input that did not finish."""


class _Level:
    """One graph being executed: the top graph, or a subgraph inside a node."""

    def __init__(self, ctx: _Run, graph: TaskGraph, prefix: str, inputs: Mapping[str, Any]) -> None:
        self.ctx, self.graph, self.prefix, self.inputs = ctx, graph, prefix, inputs
        self.values: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        self._waiting = {n: len(graph.predecessors(n)) for n in graph.nodes}
        self._tg: TaskGroup | None = None

    async def execute(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for name, count in self._waiting.items():
                if count == 0:
                    tg.start_soon(self._node, name, name=f"{self.ctx.run_id}:{self.prefix}{name}")

    def output(self) -> Any:
        name = self.graph.output
        if name is not None:
            return self.values.get(name)
        sinks = self.graph.sinks()
        if len(sinks) == 1:
            return self.values.get(sinks[0])
        return {s: self.values[s] for s in sinks if s in self.values}

    async def _node(self, name: str) -> None:
        current: str | None = name
        while current is not None:
            await self._settle(current)
            if self._run_stopping():
                return  # a cancelled or failed-fast run starts nothing new
            # Start every successor whose last input this was; the first one runs in this task.
            ready = None
            for succ in self.graph.successors(current):
                self._waiting[succ] -= 1
                if self._waiting[succ] == 0:
                    if ready is None:
                        ready = succ
                    else:
                        assert self._tg is not None
                        self._tg.start_soon(self._node, succ, name=f"{self.ctx.run_id}:{self.prefix}{succ}")
            current = ready

    def _run_stopping(self) -> bool:
        scope = self.ctx.control._run_scope
        return scope is not None and scope.cancel_called

    async def _settle(self, name: str) -> None:
        """Runs one node to its end state: done, skipped, cancelled or failed."""
        node = self.graph.nodes[name]
        key = self.prefix + name
        try:
            kwargs = self._gather(node)
            if node.map_over is not None:
                value = await self._map(node, key, kwargs)
            else:
                value = await self._one(node, key, kwargs)
        except _Skip as why:
            self.status[name] = "skipped"
            self.ctx.record(NodeReport(key, "skipped", error=str(why)))
            self.ctx.emit("node_skipped", key, str(why))
            return
        except _BranchCancelled:
            self.status[name] = "cancelled"
            return
        except RunError as exc:
            self.status[name] = "failed"
            if self.ctx.reports.get(key) is None or self.ctx.reports[key].status != "failed":
                self.ctx.record(NodeReport(key, "failed", error=str(exc)))  # failed before it could start
                self.ctx.emit("node_failed", key, str(exc))
            if self.ctx.runner.failure == "fail_fast":
                self.ctx.fail(exc)
            return
        except anyio.get_cancelled_exc_class():
            if key not in self.ctx.reports:  # stopped by a fail-fast or a cancelled run: say so
                self.ctx.record(NodeReport(key, "cancelled", finished=time.time()))
            raise
        self.values[name] = value
        self.status[name] = "done"

    def _gather(self, node: Node) -> dict[str, Any]:
        """The node's arguments, or ``_Skip`` when an input will never come."""
        kwargs = {}
        for param, src in node.inputs.items():
            kwargs[param] = self._value(node, src)
        if node.map_over is not None:
            items = self._value(node, node.map_over)
            if not isinstance(items, list):
                raise NodeFailedError(f"node {node.name!r} maps over a {type(items).__name__}, not a list", run_id=self.ctx.run_id, node=node.name)
            kwargs[node.map_item] = items
        if node.when is not None:
            params = inspect.signature(node.when).parameters
            try:
                go = node.when(**{k: v for k, v in kwargs.items() if k in params})
            except Exception as exc:
                raise _as_run_error(exc, node.name, self.ctx.run_id, None) from exc
            if not go:
                raise _Skip("its condition is false")
            for name in node.condition_only:
                del kwargs[name]
        return kwargs

    def _value(self, node: Node, src: Ref | Input) -> Any:
        if isinstance(src, Input):
            return self.inputs[src.name]
        state = self.status.get(src.node)
        if state == "done":
            return self.values[src.node]
        if src.optional:
            return None
        raise _Skip(f"input {src.node!r} is {state}")

    async def _map(self, node: Node, key: str, kwargs: dict[str, Any]) -> Any:
        if key in self.ctx.committed:
            return self._resumed(key)
        items = kwargs.pop(node.map_item)
        results: list[Any] = [None] * len(items)
        failures: list[str] = []

        async def instance(i: int, item: Any) -> None:
            try:
                results[i] = await self._one(node, f"{key}[{i}]", {**kwargs, node.map_item: item})
            except _BranchCancelled:
                failures.append(f"{key}[{i}] cancelled")
            except anyio.get_cancelled_exc_class():
                if f"{key}[{i}]" not in self.ctx.reports:
                    self.ctx.record(NodeReport(f"{key}[{i}]", "cancelled", finished=time.time()))
                raise
            except RunError as exc:
                failures.append(str(exc))
                if self.ctx.runner.failure == "fail_fast":
                    self.ctx.fail(exc)

        started = time.time()
        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                tg.start_soon(instance, i, item)
        if failures:
            if any(f.endswith("cancelled") for f in failures) and len(failures) == sum(f.endswith("cancelled") for f in failures):
                self.ctx.record(NodeReport(key, "cancelled", started, time.time()))
                raise _BranchCancelled
            report = NodeReport(key, "failed", started, time.time(), error=failures[0])
            self.ctx.record(report)
            raise NodeFailedError(f"node {key!r}: {len(failures)} of {len(items)} instances failed; first: {failures[0]}", run_id=self.ctx.run_id, node=key)
        value = self.ctx.commit(key, results, started, 1, {"instances": len(items)})
        self.ctx.record(NodeReport(key, "done", started, time.time(), 1, info={"instances": len(items)}))
        return value

    def _resumed(self, key: str) -> Any:
        c = self.ctx.committed[key]
        if not isinstance(c, _Committed):  # a StoreRecord loaded by resume
            c = _Committed(c.output, c.started, c.attempts, c.info)
            self.ctx.committed[key] = c
            self.ctx.reports[key] = NodeReport(key, "done", c.started, None, c.attempts, resumed=True, info=c.info)
        return c.output

    async def _one(self, node: Node, key: str, kwargs: dict[str, Any]) -> Any:
        """Runs one node (or one map instance) with its retries, timeout and limit; commits it."""
        if key in self.ctx.committed:
            return self._resumed(key)
        ctx = self.ctx
        if key in ctx.uncertain and not node.idempotent:
            exc = UnsafeResumeError(
                f"node {key!r} has side effects and started before the run stopped, but never committed: it may have run. "
                f"Check, then resume with rerun_uncertain=[{key!r}] (CLI: --rerun {key})", run_id=ctx.run_id, node=key)
            ctx.record(NodeReport(key, "failed", error=str(exc)))
            ctx.emit("node_failed", key, str(exc))
            raise exc
        retry = node.retry
        limiter = ctx.limiter(node.limit_key)
        last: BaseException | None = None
        started = time.time()
        for attempt in range(1, retry.attempts + 1):
            if key in ctx.control._cancelled:
                return self._cancelled(key, started, attempt - 1)
            if not node.idempotent and ctx.runner.store is not None:
                ctx.runner.store.mark_started(ctx.run_id, key, attempt)
            info: dict[str, Any] = {}
            with anyio.CancelScope() as scope:
                ctx.control._scopes[key] = scope
                try:
                    if limiter is None:
                        value = await self._attempt(node, key, kwargs, info, attempt)
                    else:
                        try:
                            limiter.acquire_nowait()  # a free slot costs no trip through the event loop
                        except anyio.WouldBlock:
                            await limiter.acquire()
                        try:
                            value = await self._attempt(node, key, kwargs, info, attempt)
                        finally:
                            limiter.release()
                except _BranchCancelled:  # a subgraph whose inner branch was cancelled
                    return self._cancelled(key, started, attempt)
                except Exception as exc:
                    last = exc
                finally:
                    ctx.control._scopes.pop(key, None)
            if scope.cancelled_caught:
                return self._cancelled(key, started, attempt)
            if last is None:
                attempt_started = info.pop("attempt_started")
                try:
                    out = ctx.commit(key, value, attempt_started, attempt, info)
                except RunError as exc:
                    last = exc
                    break
                ctx.record(NodeReport(key, "done", attempt_started, time.time(), attempt, info=info))
                ctx.emit("node_finished", key)
                return out
            if isinstance(last, _NOT_RETRIED) or not isinstance(last, retry.on):
                break
            if attempt < retry.attempts:
                ctx.emit("node_retrying", key, f"attempt {attempt} failed: {_reason(last)}")
                await anyio.sleep(min(retry.max_backoff_s, retry.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
                last = None
        assert last is not None
        error = _as_run_error(last, key, ctx.run_id, node.timeout_s)
        ctx.record(NodeReport(key, "failed", started, time.time(), attempt, error=str(error)))
        ctx.emit("node_failed", key, str(error))
        raise error

    def _cancelled(self, key: str, started: float, attempts: int) -> Any:
        self.ctx.record(NodeReport(key, "cancelled", started, time.time(), attempts))
        self.ctx.emit("node_cancelled", key)
        raise _BranchCancelled

    async def _attempt(self, node: Node, key: str, kwargs: dict[str, Any], info: dict[str, Any], attempt: int) -> Any:
        info["attempt_started"] = time.time()
        self.ctx.emit("node_started", key, None, attempt)
        if node.timeout_s is None:
            return await self._call(node.step, key, kwargs, info)
        with anyio.fail_after(node.timeout_s):
            return await self._call(node.step, key, kwargs, info)

    async def _call(self, step: Any, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
        if isinstance(step, Generate):
            return await self._generate(step, key, kwargs, info)
        if isinstance(step, Subgraph):
            level = _Level(self.ctx, step.build(kwargs), key + "/", kwargs)
            level.graph.validate()
            await level.execute()
            wanted = [level.graph.output] if level.graph.output else level.graph.sinks()
            if not any(level.status.get(n) == "done" for n in wanted):
                if "cancelled" in level.status.values() and "failed" not in level.status.values():
                    raise _BranchCancelled  # a branch inside was cancelled on purpose
                raise NodeFailedError(f"subgraph {key!r} did not produce its output", run_id=self.ctx.run_id, node=key)
            return level.output()
        if isinstance(step, Loop):
            return await self._loop(step, key, kwargs, info)
        if inspect.iscoroutinefunction(step):
            return await step(**kwargs)
        # A plain function may block (a tool doing I/O): it runs in a worker thread. On timeout or
        # cancel the node ends at once and the thread's late result is dropped.
        result = await anyio.to_thread.run_sync(lambda: step(**kwargs), abandon_on_cancel=True)
        if inspect.isawaitable(result):  # a plain function that hands back a coroutine (a wrapped async tool)
            result = await result
        return result

    async def _generate(self, step: Generate, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
        backend = self.ctx.runner.backends[step.backend]
        request = step.request(kwargs)
        completion: Completion | None = None
        first: float | None = None
        t0 = time.perf_counter()
        async with aclosing(backend.generate(request)) as stream:  # leaving early cancels the generation
            async for event in stream:
                if isinstance(event, TokenDelta):
                    if first is None:
                        first = time.perf_counter()
                    self.ctx.emit("token", key, event.text, event.index)
                elif isinstance(event, Completion):
                    completion = event
        if completion is None:
            raise NodeFailedError(f"node {key!r}: backend {backend.name} ended without a completion", run_id=self.ctx.run_id, node=key)
        t = completion.timings
        info.update(
            backend=backend.name, ttft_s=round((first or time.perf_counter()) - t0, 4), decode_tokens=t.decode_tokens,
            decode_tok_s=round(t.decode_tok_s, 1), prefill_tokens=t.prefill_tokens, prefill_reused_tokens=t.prefill_reused_tokens,
        )
        if completion.route is not None:  # a routed backend: where the node went and why
            r = completion.route
            info["route"] = {"backend": r.backend, "policy": r.policy, "reason": r.reason}
        texts = [c.text for c in completion.choices]
        return texts[0] if step.n == 1 else texts

    async def _loop(self, loop: Loop, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
        state = kwargs[loop.state_input]
        for i in range(loop.max_iterations):
            ikey = f"{key}#{i}"
            if ikey in self.ctx.committed:
                state = self._resumed(ikey)
            else:
                started = time.time()
                state = self.ctx.commit(ikey, await self._call(loop.step, ikey, {**kwargs, loop.state_input: state}, {}), started, 1, {})
            info["iterations"] = i + 1
            if loop.until(state):
                break
        return state


class _BranchCancelled(Exception):
    """This node was cancelled on its own (``RunControl.cancel_node``)."""


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _as_run_error(exc: BaseException, key: str, run_id: str, timeout_s: float | None) -> RunError:
    if isinstance(exc, RunError):
        if exc.run_id is None:
            exc.run_id = run_id
        return exc
    if isinstance(exc, TimeoutError):
        err: RunError = NodeTimeoutError(f"node {key!r} ran past its timeout of {timeout_s} s", run_id=run_id, node=key)
    elif isinstance(exc, OrchestratorError):
        err = NodeFailedError(f"node {key!r} failed: {type(exc).__name__}: {_reason(exc)}", run_id=run_id, node=key)
    else:
        err = NodeFailedError(f"node {key!r} raised {type(exc).__name__}: {_reason(exc)}", run_id=run_id, node=key)
    err.__cause__ = exc
    return err


def _json_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(to_json(dict(inputs)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run inputs must be JSON values: {exc}") from exc
