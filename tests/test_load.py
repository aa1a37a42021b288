"""Load: 64 concurrent agent runs on scripted backends finish right, in bounded memory, leaking nothing.

Each run asks its backend (small per-word delays), calls a synchronous tool (run in anyio's
worker threads), gets the tool's result back and answers with it. Memory is traced with
tracemalloc; the bounds were set at about 3x what was measured here (noted next to each).
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import tracemalloc

import anyio
import pytest

from agents.agent import Agent
from orchestrator.agent_runner import run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.types import GenerationRequest
from tools.tool import tool

pytestmark = pytest.mark.timeout(60)

N_RUNS = 64
# Measured here: a round of 64 peaks at about 2.5 MiB traced; rounds 2 and 3 together leave
# about 0.1 MiB more than round 1; keeping each run's backend and its requests (about 8 KiB a
# run) fails the bound, as checked by hand.
PEAK_BOUND = 8 << 20
GROWTH_BOUND = 512 << 10


TOOL_THREADS: set[threading.Thread] = set()


@tool
def lookup(key: str) -> str:
    """Look a key up in the table."""
    TOOL_THREADS.add(threading.current_thread())
    time.sleep(0.002)  # real blocking work, in a worker thread
    return f"value-of-{key}"


AGENT = Agent("looker", "You look keys up and answer with the value.", tools=(lookup,))


def _script(i: int) -> ScriptedBackend:
    """First a call of lookup(key-i); then, seeing the tool's result, the answer quoting it."""

    def reply(request: GenerationRequest) -> str:
        last = request.messages[-1]
        if last.role == "tool":
            return json.dumps({"answer": f"run {i}: {last.content}"})  # the tool message holds the result
        return json.dumps({"calls": [{"name": "lookup", "arguments": {"key": f"key-{i}"}}]})

    return ScriptedBackend(reply, name=f"scripted-{i}", delay=0.001)


async def _round(n: int) -> list[str | None]:
    """``n`` agent runs at once in one task group; each result lands in its own slot."""
    outputs: list[str | None] = [None] * n

    async def one(i: int) -> None:
        result = await run_agent(AGENT, f"What is the value of key-{i}?", _script(i))
        assert result.steps == 2 and [c.ok for c in result.calls] == [True]
        outputs[i] = result.output

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return outputs


def _expected(n: int) -> list[str]:
    return [f"run {i}: value-of-key-{i}" for i in range(n)]


def _join_new_threads(baseline: set[threading.Thread], timeout_s: float) -> list[threading.Thread]:
    """Waits (bounded) for threads started since ``baseline`` to end; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    for t in set(threading.enumerate()) - baseline:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in set(threading.enumerate()) - baseline if t.is_alive()]


def test_64_concurrent_runs_finish_right_in_bounded_memory_and_leak_nothing() -> None:
    baseline = set(threading.enumerate())
    pending: list[asyncio.Task[object]] = []

    async def main() -> list[str | None]:
        outputs = await _round(N_RUNS)
        pending.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())
        return outputs

    tracemalloc.start()
    try:
        start = time.monotonic()
        outputs = anyio.run(main)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outputs == _expected(N_RUNS)
    assert pending == []  # every task the runs started has ended
    assert peak < PEAK_BOUND, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert TOOL_THREADS and threading.main_thread() not in TOOL_THREADS  # the tools did run in worker threads
    assert _join_new_threads(baseline, timeout_s=5.0) == []  # and those end with the event loop
    assert elapsed < 30  # a generous sanity bound, not a speed claim


def test_repeated_rounds_do_not_grow_memory() -> None:
    baseline = set(threading.enumerate())
    after_round: list[int] = []

    async def main() -> None:
        for _ in range(3):
            assert await _round(N_RUNS) == _expected(N_RUNS)
            gc.collect()
            after_round.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        anyio.run(main)
    finally:
        tracemalloc.stop()
    # round 1 warms caches (schemas, grammars, thread pool); rounds 2 and 3 must not keep adding
    growth = after_round[2] - after_round[0]
    assert growth < GROWTH_BOUND, f"rounds left {[f'{m / 2**20:.2f} MiB' for m in after_round]}"
    assert _join_new_threads(baseline, timeout_s=5.0) == []
