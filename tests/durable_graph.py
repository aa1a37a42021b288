"""A graph for the kill -9 tests: every node logs that it ran, then takes a little time.

``main(STORE, RUN_ID)`` starts a durable run. Import it rather than running the file as
``__main__``: a graph's fingerprint names its functions by module, and ``__main__`` is not the
module that a resuming process imports.
"""

from __future__ import annotations

import os
import time
from functools import partial

import anyio

from orchestrator.taskgraph.graph import Input, TaskGraph
from orchestrator.taskgraph.scheduler import Runner
from orchestrator.taskgraph.store import RunStore


def _log(key: str) -> None:
    with open(os.environ["DURABLE_LOG"], "a", encoding="utf-8") as f:
        f.write(f"ran {key}\n")
        f.flush()
        os.fsync(f.fileno())


def _work(name: str, **inputs: int) -> int:
    _log(name)
    time.sleep(0.02)
    return (sum(inputs.values()) * 31 + len(name)) % 1_000_003


def _item(item: int, seed: int) -> int:
    _log(f"item {item}")
    time.sleep(0.02)
    return item * item + seed


def _send(total: int) -> str:
    _log("send")  # the side effect: must never be repeated silently
    time.sleep(0.05)
    return f"sent {total}"


def build() -> TaskGraph:
    g = TaskGraph("durable", output="send")
    g.add("n0", partial(_work, "n0"), inputs={"seed": Input("seed")})
    for i in range(1, 16):
        deps = {f"n{j}": f"n{j}" for j in (i - 1, i // 2) if j < i}
        g.add(f"n{i}", partial(_work, f"n{i}"), inputs=deps)
    g.add("items", lambda n3: list(range(12)), inputs={"n3": "n3"})
    g.map("squares", _item, over="items", inputs={"seed": Input("seed")})
    g.add("total", lambda a, b: a + sum(b), inputs={"a": "n15", "b": "squares"})
    g.add("send", _send, inputs={"total": "total"}, idempotent=False)
    return g


def main(store: str, run_id: str) -> None:
    anyio.run(lambda: Runner({}, store=RunStore(store)).run(build(), {"seed": 7}, run_id=run_id, factory="tests.durable_graph:build"))

