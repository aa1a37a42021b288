"""One graph being executed: the top graph of a run, or a subgraph inside a node.

There are no supersteps and no polling. Each node waits for a count of unfinished inputs;
when a node settles (done, skipped, cancelled or failed) its successors count down, and those
that reach zero start at once in the level's task group, the first of them in the same task.
A node whose input will never come (a skipped or failed branch) is skipped in turn.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from orchestrator.errors import NodeFailedError, RunError
from orchestrator.taskgraph.attempt import run_node
from orchestrator.taskgraph.graph import Input, Node, Ref, TaskGraph
from orchestrator.taskgraph.runs import NodeReport
from orchestrator.taskgraph.state import BranchCancelled, RunState, as_run_error

__all__ = ["Level", "run_subgraph"]


class _Skip(Exception):
    """A node that will not run: a branch not taken, or an input that did not finish."""


class Level:
    """One graph being executed: the top graph, or a subgraph inside a node."""

    def __init__(self, run: RunState, graph: TaskGraph, prefix: str, inputs: Mapping[str, Any]) -> None:
        self.run, self.graph, self.prefix, self.inputs = run, graph, prefix, inputs
        self.values: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        self._waiting = {n: len(graph.predecessors(n)) for n in graph.nodes}
        self._tg: TaskGroup | None = None

    async def execute(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for name, count in self._waiting.items():
                if count == 0:
                    tg.start_soon(self._node, name, name=f"{self.run.run_id}:{self.prefix}{name}")

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
            if self.run.control.stopping:
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
                        self._tg.start_soon(self._node, succ, name=f"{self.run.run_id}:{self.prefix}{succ}")
            current = ready

    async def _settle(self, name: str) -> None:
        """Runs one node to its end state: done, skipped, cancelled or failed."""
        node = self.graph.nodes[name]
        key = self.prefix + name
        try:
            kwargs = self._gather(node)
            if node.map_over is not None:
                value = await self._map(node, key, kwargs)
            else:
                value = await run_node(self.run, node, key, kwargs)
        except _Skip as why:
            self.status[name] = "skipped"
            self.run.record(NodeReport(key, "skipped", error=str(why)))
            self.run.emit("node_skipped", key, str(why))
            return
        except BranchCancelled:
            self.status[name] = "cancelled"
            return
        except RunError as exc:
            self.status[name] = "failed"
            if self.run.reports.get(key) is None or self.run.reports[key].status != "failed":
                self.run.record_failure(key, exc)  # failed before it could start
            if self.run.fail_fast:
                self.run.fail(exc)
            return
        except anyio.get_cancelled_exc_class():
            if key not in self.run.reports:  # stopped by a fail-fast or a cancelled run: say so
                self.run.record(NodeReport(key, "cancelled", finished=time.time()))
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
                raise NodeFailedError(f"node {node.name!r} maps over a {type(items).__name__}, not a list", run_id=self.run.run_id, node=node.name)
            kwargs[node.map_item] = items
        if node.when is not None:
            params = inspect.signature(node.when).parameters
            try:
                go = node.when(**{k: v for k, v in kwargs.items() if k in params})
            except Exception as exc:
                raise as_run_error(exc, node.name, self.run.run_id, None) from exc
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
        """Runs one instance per item at once (``key[i]``); the output is their list, in order."""
        if key in self.run.committed:
            return self.run.resumed(key)
        items = kwargs.pop(node.map_item)
        results: list[Any] = [None] * len(items)
        failures: list[str] = []
        cancelled = 0

        async def instance(i: int, item: Any) -> None:
            nonlocal cancelled
            try:
                results[i] = await run_node(self.run, node, f"{key}[{i}]", {**kwargs, node.map_item: item})
            except BranchCancelled:
                cancelled += 1
                failures.append(f"{key}[{i}] cancelled")
            except anyio.get_cancelled_exc_class():
                if f"{key}[{i}]" not in self.run.reports:
                    self.run.record(NodeReport(f"{key}[{i}]", "cancelled", finished=time.time()))
                raise
            except RunError as exc:
                failures.append(str(exc))
                if self.run.fail_fast:
                    self.run.fail(exc)

        started = time.time()
        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                tg.start_soon(instance, i, item)
        if failures and cancelled == len(failures):  # only cancelled branches: the map is cancelled
            self.run.record(NodeReport(key, "cancelled", started, time.time()))
            raise BranchCancelled
        if failures:
            error = NodeFailedError(f"node {key!r}: {len(failures)} of {len(items)} instances failed; first: {failures[0]}", run_id=self.run.run_id, node=key)
            self.run.record(NodeReport(key, "failed", started, time.time(), error=failures[0], exception=error))
            raise error
        value = self.run.commit(key, results, started, 1, {"instances": len(items)})
        self.run.record(NodeReport(key, "done", started, time.time(), 1, info={"instances": len(items)}))
        return value


async def run_subgraph(run: RunState, graph: TaskGraph, key: str, inputs: Mapping[str, Any]) -> Any:
    """Runs ``graph`` as the step of node ``key``: its nodes are keyed ``key/name``."""
    level = Level(run, graph, key + "/", inputs)
    graph.validate()
    await level.execute()
    wanted = [graph.output] if graph.output else graph.sinks()
    if not any(level.status.get(n) == "done" for n in wanted):
        if "cancelled" in level.status.values() and "failed" not in level.status.values():
            raise BranchCancelled  # a branch inside was cancelled on purpose
        raise NodeFailedError(f"subgraph {key!r} did not produce its output", run_id=run.run_id, node=key)
    return level.output()
