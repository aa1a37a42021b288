"""Worker process for ``orchestrator bench overhead``: runs one framework, one run at a time.

    python bench/_overhead_worker.py ours|langgraph STORE_DIR

It builds the benchmark graphs once, prints one JSON line (ready), then answers one JSON line
per request read from stdin: ``{"graph": "dag"|"fanout", "variant": V}`` ->
``{"wall_s": ..., "checksum": ...}``. Variants: ``bare`` (the node bodies alone, awaited one
after another in topological order: what the nodes cost without any framework), ``run``
(the framework), ``store`` (ours with an on-disk ``RunStore``), ``profile`` (ours under
cProfile; the reply carries the top entries as text).

Every node body, in every variant and both frameworks, is the same code: build the
``GenerationRequest`` with ``Generate.request`` (the prompt template over the node's inputs) and
drain ``ScriptedBackend.generate`` (zero delay; the reply is an 8-hex-digit hash of the prompt,
so every output depends on the whole upstream DAG and a checksum of all outputs checks that
both frameworks computed the same thing).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import random
import sys
import time
import typing
from contextlib import aclosing
from pathlib import Path
from typing import Any

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.taskgraph.graph import Generate
from orchestrator.types import Completion, GenerationRequest

Spec = dict[str, list[str]]  # node -> its parents, in topological order


def dag_spec(layers: int = 50, width: int = 20, window: int = 3, seed: int = 20240607) -> Spec:
    """A layered random DAG (layers x width nodes). Every node past the first layer depends on
    one node of the layer just before (so the depth is exactly ``layers``) and on 0-2 more
    random nodes of the ``window`` layers before it."""
    rng = random.Random(seed)
    spec: Spec = {}
    rows: list[list[str]] = []
    for layer in range(layers):
        row = [f"n{layer * width + i:04d}" for i in range(width)]
        for name in row:
            if layer == 0:
                spec[name] = []
                continue
            first = rng.choice(rows[-1])
            pool = [p for r in rows[max(0, layer - window):] for p in r if p != first]
            spec[name] = [first, *rng.sample(pool, rng.randint(0, 2))]
        rows.append(row)
    return spec


def fanout_spec(width: int = 100) -> Spec:
    spec: Spec = {"src": []}
    leaves = [f"f{i:03d}" for i in range(width)]
    spec.update({leaf: ["src"] for leaf in leaves})
    spec["join"] = leaves
    return spec


SPECS = {"dag": dag_spec(), "fanout": fanout_spec()}


def step_for(name: str, parents: list[str]) -> Generate:
    return Generate(f"{name}:" + "".join(f" {{a{j}}}" for j in range(len(parents))))


def reply(request: GenerationRequest) -> str:
    return hashlib.blake2s((request.prompt or "").encode(), digest_size=4).hexdigest()


def checksum(outputs: dict[str, Any], spec: Spec) -> str:
    missing = [n for n in spec if n not in outputs]
    if missing:
        return f"missing {len(missing)} outputs, e.g. {missing[:3]}"
    blob = json.dumps([[n, outputs[n]] for n in spec])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


async def body(backend: ScriptedBackend, step: Generate, inputs: dict[str, Any]) -> str:
    """One node's work: what ``Runner`` does for a ``Generate`` node, minus the framework."""
    completion = None
    async with aclosing(backend.generate(step.request(inputs))) as stream:
        async for event in stream:
            if isinstance(event, Completion):
                completion = event
    assert completion is not None
    return completion.choices[0].text


class Bench:
    def __init__(self, store_dir: Path) -> None:
        self.backend = ScriptedBackend(reply, name="fake")
        self.steps = {g: {n: step_for(n, ps) for n, ps in spec.items()} for g, spec in SPECS.items()}
        self.store_dir = store_dir

    async def bare(self, graph: str) -> dict[str, Any]:
        spec, steps, out = SPECS[graph], self.steps[graph], {}
        for name, parents in spec.items():
            out[name] = await body(self.backend, steps[name], {f"a{j}": out[p] for j, p in enumerate(parents)})
        return out

    def measure(self, graph: str, variant: str) -> dict[str, Any]:
        run = self.bare if variant == "bare" else (lambda g: self.run(g, variant))
        gc.collect()
        box: dict[str, Any] = {}

        async def timed() -> None:
            t0 = time.perf_counter()
            box["out"] = await run(graph)
            box["wall"] = time.perf_counter() - t0

        asyncio.run(timed())
        self.backend.requests.clear()  # the fake keeps every request; do not let it grow the heap
        return {"wall_s": box["wall"], "checksum": checksum(box["out"], SPECS[graph]), "nodes": len(SPECS[graph])}

    async def run(self, graph: str, variant: str) -> dict[str, Any]:
        raise NotImplementedError


class Ours(Bench):
    def __init__(self, store_dir: Path) -> None:
        super().__init__(store_dir)
        from orchestrator.taskgraph.graph import TaskGraph
        from orchestrator.taskgraph.scheduler import Runner
        from orchestrator.taskgraph.store import RunStore

        self.graphs = {}
        for g, spec in SPECS.items():
            tg = TaskGraph(g)
            for name, parents in spec.items():
                tg.add(name, self.steps[g][name], inputs={f"a{j}": p for j, p in enumerate(parents)})
            self.graphs[g] = tg
        self.plain = Runner(self.backend)
        self.store = RunStore(store_dir / "runs.db")
        self.durable = Runner(self.backend, store=self.store)
        self.version = "orchestrator"

    async def run(self, graph: str, variant: str) -> dict[str, Any]:
        runner = self.durable if variant == "store" else self.plain
        result = await runner.run(self.graphs[graph])
        if result.status != "done":
            raise RuntimeError(f"our run ended {result.status}: {result.errors}")
        return dict(result.outputs)

    def profile(self, graph: str, top: int) -> dict[str, Any]:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        gc.collect()
        prof.enable()
        asyncio.run(self.run(graph, "run"))
        prof.disable()
        self.backend.requests.clear()
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return {"profile": text.getvalue()}


class LangGraph(Bench):
    def __init__(self, store_dir: Path) -> None:
        super().__init__(store_dir)
        from importlib.metadata import version

        from langgraph.graph import START, StateGraph

        self.version = f"langgraph {version('langgraph')}"
        self.apps = {}
        for g, spec in SPECS.items():
            # One state key per node, written only by that node (LastValue channels).
            state = typing.TypedDict(f"{g}_state", {n: str for n in spec}, total=False)  # type: ignore[operator]
            sg = StateGraph(state)
            for name, parents in spec.items():
                sg.add_node(name, self._node(name, parents, self.steps[g][name]))
                if not parents:
                    sg.add_edge(START, name)
                elif len(parents) == 1:
                    sg.add_edge(parents[0], name)
                else:
                    sg.add_edge(parents, name)  # waits for all of them
            self.apps[g] = sg.compile()
        # LangGraph counts supersteps against recursion_limit (default 25); a 50-layer DAG needs
        # 50+, so allow one per node: the limit never cuts a run short (checked by the checksum).
        self.config = {g: {"recursion_limit": len(spec) + 10} for g, spec in SPECS.items()}

    def _node(self, name: str, parents: list[str], step: Generate):
        keys = [(f"a{j}", p) for j, p in enumerate(parents)]
        backend = self.backend

        async def node(state: dict[str, Any]) -> dict[str, str]:
            return {name: await body(backend, step, {k: state[p] for k, p in keys})}

        return node

    async def run(self, graph: str, variant: str) -> dict[str, Any]:
        return await self.apps[graph].ainvoke({}, self.config[graph])


def main() -> None:
    kind, store_dir = sys.argv[1], Path(sys.argv[2])
    t0 = time.perf_counter()
    bench: Bench = Ours(store_dir) if kind == "ours" else LangGraph(store_dir)
    from importlib.metadata import version

    libs = {lib: version(lib) for lib in ("anyio", "pydantic")}  # the node bodies' libraries: must match across workers
    print(json.dumps({"ready": True, "version": bench.version, "libs": libs, "build_s": round(time.perf_counter() - t0, 3)}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["variant"] == "profile":
            answer = bench.profile(req["graph"], int(req.get("top", 25)))  # type: ignore[attr-defined]
        else:
            answer = bench.measure(req["graph"], req["variant"])
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
