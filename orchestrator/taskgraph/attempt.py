"""One node (or one map instance) from its first attempt to a committed output, or a failure.

Each attempt runs the step in its own cancel scope (``RunControl.cancel_node``), inside the
node's concurrency slot and under its timeout. A failure is retried as the node's ``Retry``
allows, after a backoff with full jitter; a success is committed before anything that needs
it may start. Whatever happens, the node ends with exactly one report: done, failed or
cancelled.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

import anyio

from orchestrator.backends.retry import backoff_delay
from orchestrator.errors import RunError, UnsafeResumeError
from orchestrator.taskgraph.graph import Node
from orchestrator.taskgraph.runs import NodeReport
from orchestrator.taskgraph.state import BranchCancelled, RunState, as_run_error, reason
from orchestrator.taskgraph.steps import call_step

__all__ = ["run_node"]


async def run_node(run: RunState, node: Node, key: str, kwargs: dict[str, Any]) -> Any:
    """Runs ``node`` as ``key`` with its retries, timeout and limit; commits and returns its output.

    Raises the node's ``RunError`` when its last attempt failed, ``BranchCancelled`` when it was
    cancelled on its own."""
    if key in run.committed:
        return run.resumed(key)
    _refuse_unsafe_resume(run, node, key)
    policy, started = node.retry, time.time()
    attempt, error = 0, None
    for attempt in range(1, policy.attempts + 1):
        # 1. A branch cancelled while it waited does not start again.
        if run.control.node_cancelled(key):
            _cancelled(run, key, started, attempt - 1)
        # 2. One try of the step.
        error, value, info = await _attempt(run, node, key, kwargs, attempt, started)
        # 3. Success: commit it (an output that is not JSON fails the node; no retry helps).
        if error is None:
            try:
                return _commit(run, key, value, attempt, info)
            except RunError as exc:
                error = exc
                break
        # 4. Failure: try again if the policy says so, after a jittered backoff.
        if isinstance(error, UnsafeResumeError) or not policy.retries(error) or attempt == policy.attempts:
            break
        run.emit("node_retrying", key, f"attempt {attempt} failed: {reason(error)}")
        await anyio.sleep(backoff_delay(policy, attempt - 1, run.rng))
    assert error is not None
    failure = as_run_error(error, key, run.run_id, node.timeout_s)
    run.record_failure(key, failure, started, attempt)
    raise failure


def _refuse_unsafe_resume(run: RunState, node: Node, key: str) -> None:
    """A side effect that started before the run stopped but never committed may have happened."""
    if key in run.uncertain and not node.idempotent:
        exc = UnsafeResumeError(
            f"node {key!r} has side effects and started before the run stopped, but never committed: it may have run. "
            f"Check, then resume with rerun_uncertain=[{key!r}] (CLI: --rerun {key})", run_id=run.run_id, node=key)
        run.record_failure(key, exc)
        raise exc


async def _attempt(run: RunState, node: Node, key: str, kwargs: dict[str, Any], attempt: int,
                   started: float) -> tuple[Exception | None, Any, dict[str, Any]]:
    """One attempt: (the exception it raised or None, its value, its report info)."""
    if not node.idempotent:
        run.mark_started(key, attempt)
    info: dict[str, Any] = {}
    error: Exception | None = None
    value = None
    with run.control.node_scope(key) as scope:
        try:
            value = await _in_slot(run, node, key, kwargs, info, attempt)
        except BranchCancelled:  # a subgraph whose inner branch was cancelled
            _cancelled(run, key, started, attempt)
        except Exception as exc:
            error = exc
    if scope.cancelled_caught:
        _cancelled(run, key, started, attempt)
    return error, value, info


async def _in_slot(run: RunState, node: Node, key: str, kwargs: dict[str, Any], info: dict[str, Any], attempt: int) -> Any:
    """Calls the step in a place under the node's concurrency limit, if it has one."""
    limiter = run.limiter(node.limit_key)
    if limiter is None:
        return await _in_time(run, node, key, kwargs, info, attempt)
    try:
        limiter.acquire_nowait()  # a free slot costs no trip through the event loop
    except anyio.WouldBlock:
        await limiter.acquire()
    try:
        return await _in_time(run, node, key, kwargs, info, attempt)
    finally:
        limiter.release()


async def _in_time(run: RunState, node: Node, key: str, kwargs: dict[str, Any], info: dict[str, Any], attempt: int) -> Any:
    """Calls the step under the node's timeout, if it has one (the wait for a slot is not counted)."""
    info["attempt_started"] = time.time()
    run.emit("node_started", key, None, attempt)
    if node.timeout_s is None:
        return await call_step(run, node.step, key, kwargs, info)
    with anyio.fail_after(node.timeout_s):
        return await call_step(run, node.step, key, kwargs, info)


def _commit(run: RunState, key: str, value: Any, attempt: int, info: dict[str, Any]) -> Any:
    attempt_started = info.pop("attempt_started")
    out = run.commit(key, value, attempt_started, attempt, info)
    run.record(NodeReport(key, "done", attempt_started, time.time(), attempt, info=info))
    run.emit("node_finished", key)
    return out


def _cancelled(run: RunState, key: str, started: float, attempts: int) -> NoReturn:
    raise run.cancelled(key, started, attempts)
