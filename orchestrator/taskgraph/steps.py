"""Calling one step of a node: a function, a ``Generate``, a ``Subgraph`` or a ``Loop``.

This is one try of the step, nothing around it: the attempt (``taskgraph.attempt``) gives it
its cancel scope, concurrency slot and timeout, retries it and commits what it returns.
``info`` collects what the node's report shows (backend, timings, route, iterations).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import anyio

from orchestrator.backends.base import complete
from orchestrator.taskgraph.graph import Generate, Loop, Subgraph
from orchestrator.taskgraph.state import RunState
from orchestrator.types import TokenDelta

__all__ = ["call_step"]


async def call_step(run: RunState, step: Any, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
    """Runs ``step`` once on ``kwargs`` and returns its output (not yet committed)."""
    if isinstance(step, Generate):
        return await _generate(run, step, key, kwargs, info)
    if isinstance(step, Subgraph):
        return await run.run_subgraph(run, step.build(kwargs), key, kwargs)
    if isinstance(step, Loop):
        return await _loop(run, step, key, kwargs, info)
    return await _function(step, kwargs)


async def _function(fn: Any, kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    # A plain function may block (a tool doing I/O): it runs in a worker thread. On timeout or
    # cancel the node ends at once and the thread's late result is dropped.
    result = await anyio.to_thread.run_sync(lambda: fn(**kwargs), abandon_on_cancel=True)
    if inspect.isawaitable(result):  # a plain function that hands back a coroutine (a wrapped async tool)
        result = await result
    return result


async def _generate(run: RunState, step: Generate, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
    backend = run.backends[step.backend]
    request = step.request(kwargs)
    first: float | None = None
    t0 = time.perf_counter()

    def on_delta(delta: TokenDelta) -> None:
        nonlocal first
        if first is None:
            first = time.perf_counter()
        run.emit("token", key, delta.text, delta.index)

    completion = await complete(backend, request, on_delta=on_delta)  # leaving early cancels the generation
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


async def _loop(run: RunState, loop: Loop, key: str, kwargs: dict[str, Any], info: dict[str, Any]) -> Any:
    """Each iteration is committed on its own (``key#i``), so a resumed run goes on from the last one."""
    state = kwargs[loop.state_input]
    for i in range(loop.max_iterations):
        ikey = f"{key}#{i}"
        if ikey in run.committed:
            state = run.resumed(ikey)
        else:
            started = time.time()
            state = run.commit(ikey, await call_step(run, loop.step, ikey, {**kwargs, loop.state_input: state}, {}), started, 1, {})
        info["iterations"] = i + 1
        if loop.until(state):
            break
    return state
