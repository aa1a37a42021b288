"""orchestrator bench overhead: the scheduler's cost per node, against LangGraph on the same graphs.

Graphs (built identically in both frameworks, see ``bench/_overhead_worker.py``):
- ``dag``: 1000 nodes, a fixed-seed random layered DAG (50 layers of 20); every node after the
  first layer depends on 1-3 earlier nodes: one in the layer just before, the others within
  the 3 layers before it, so the graph is 20 wide and 50 deep;
- ``fanout``: one source, 100 parallel nodes that read it, one join node that reads all 100.

Every node is a generation step on a fake backend (``ScriptedBackend``, zero delay; the reply
is an 8-hex-digit hash of the prompt). Ours: a ``Generate`` node on backend ``"default"``,
prompt template ``"<name>: {a0} {a1} ..."`` over its parents' outputs, run by ``Runner`` with its
default settings (limit 16 per backend, fail-fast, no event callback). LangGraph: a
``StateGraph`` with one state key and one async node per DAG node; a node with several parents
is wired with ``add_edge([parents...], node)`` (it waits for all of them); the node body is the
very same code as ours (``Generate.request`` on its inputs, then draining the same fake
backend) and writes its own key. LangGraph runs without a checkpointer (its cheapest
configuration) and with ``recursion_limit`` above the graph's depth. Both frameworks must
produce the same outputs for every node (a checksum over all of them); the bench stops if not.

Measured: the wall time of one whole run (``await runner.run(graph)`` /
``await app.ainvoke({})``; graph construction and compilation excluded) divided by its
nodes; median over all samples. ``overhead`` subtracts the bodies' own cost: the same bodies
awaited one after another in plain asyncio, measured in the same process. Ours is measured
without a store and with an on-disk ``RunStore`` (SQLite WAL, a temp file), since committing
each output before its dependants start is part of our per-node cost.

Each framework runs in its own long-lived worker process (so imports, heap and event loop
state never mix, and warm-up helps both alike); the parent asks them for one run at a time,
rotating the order, so the two never run at once and drift on this noisy machine hits both.
LangGraph is not a project dependency: if it is not importable it is installed once, with
the venv's pip, into ``<orchestrator cache>/bench-deps/langgraph`` (``~/.cache/orchestrator/...`` on Linux), which only the LangGraph
worker gets on its ``PYTHONPATH``.

Prints a table, then one JSON line. Targets: <= 0.2 ms per node for ours, and LangGraph's
per-node time at least 5x ours (judged on wall time per node, the conservative measure).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.paths import cache_dir

WORKER = Path(__file__).resolve().parent / "_overhead_worker.py"
DEPS = cache_dir() / "bench-deps" / "langgraph"
TARGET_MS = 0.2
TARGET_RATIO = 5.0
GRAPHS = ("dag", "fanout")
OURS, STORE, LG = "ours", "ours+store", "langgraph"


def langgraph_path() -> str | None:
    """The extra ``PYTHONPATH`` entry LangGraph needs (``None``: the venv already has it)."""
    if importlib.util.find_spec("langgraph") is not None:
        return None
    if not (DEPS / "langgraph").is_dir():
        print(f"installing langgraph for this benchmark only, into {DEPS}", file=sys.stderr)
        DEPS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(DEPS), "langgraph"], check=True)
    return str(DEPS)


class Worker:
    def __init__(self, kind: str, store_dir: str, extra_path: str | None = None) -> None:
        env = dict(os.environ)
        if extra_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, str(WORKER), kind, store_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.proc.args[2]} died (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, graph: str, variant: str, **extra: object) -> dict:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"graph": graph, "variant": variant, **extra}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench overhead")
    ap.add_argument("--reps", type=int, default=5, help="rounds; each round runs every graph several times in each framework")
    ap.add_argument("--quick", action="store_true", help="2 rounds, fewer runs per round")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one run of ours on the dag (stderr)")
    args = ap.parse_args()
    reps = 2 if args.quick else args.reps
    inner = {"dag": 1, "fanout": 4} if args.quick else {"dag": 3, "fanout": 10}

    extra = langgraph_path()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        ours = Worker("ours", tmp)
        lg = Worker("langgraph", tmp, extra)
        runs = {OURS: (ours, "run"), STORE: (ours, "store"), LG: (lg, "run")}
        walls: dict[str, dict[str, list[float]]] = {g: {k: [] for k in (*runs, "bare_ours", "bare_lg")} for g in GRAPHS}
        sums: dict[str, set[str]] = {g: set() for g in GRAPHS}
        nodes: dict[str, int] = {}
        order = list(runs)
        for rep in range(-1, reps):  # round -1 is a warm-up, not recorded
            for graph in GRAPHS:
                for _ in range(inner[graph] if rep >= 0 else 1):
                    for name, (worker, variant) in [("bare_ours", (ours, "bare")), ("bare_lg", (lg, "bare"))] + [(k, runs[k]) for k in order]:
                        r = worker.ask(graph, variant)
                        sums[graph].add(r["checksum"])
                        nodes[graph] = r["nodes"]
                        if rep >= 0:
                            walls[graph][name].append(r["wall_s"])
                    order = order[1:] + order[:1]  # rotate who goes first
            if rep >= 0:
                print(f"  round {rep + 1}/{reps}: dag ms/node " + ", ".join(f"{k}={walls['dag'][k][-1] / nodes['dag'] * 1e3:.3f}" for k in runs), file=sys.stderr)
        profile = ours.ask("dag", "profile", top=25)["profile"] if args.profile else None
        lg_version = lg.hello["version"]
        libs = {"ours": ours.hello["libs"], "langgraph": lg.hello["libs"]}
        ours.close()
        lg.close()
    elapsed = time.perf_counter() - started

    for graph, found in sums.items():
        if len(found) != 1:
            raise SystemExit(f"bench overhead: the frameworks computed different outputs on {graph!r}: checksums {sorted(found)}")

    results = {}
    for graph in GRAPHS:
        n, w = nodes[graph], walls[graph]
        med = {k: statistics.median(v) for k, v in w.items()}
        per = {k: med[k] / n * 1e3 for k in runs}
        bare = {k: med["bare_lg" if k == LG else "bare_ours"] / n * 1e3 for k in runs}
        over = {k: per[k] - bare[k] for k in runs}
        results[graph] = {
            "nodes": n,
            "samples": len(w[OURS]),
            "ms_per_node": {k: round(v, 4) for k, v in per.items()},
            "body_ms_per_node": {"ours_process": round(bare[OURS], 4), "langgraph_process": round(bare[LG], 4)},
            "overhead_ms_per_node": {k: round(v, 4) for k, v in over.items()},
            "ratio_langgraph_vs": {k: round(per[LG] / per[k], 2) for k in (OURS, STORE)},
            "overhead_ratio_langgraph_vs": {k: round(over[LG] / over[k], 2) if over[k] > 0 else None for k in (OURS, STORE)},
            "checksum": next(iter(sums[graph])),
        }

    print(f"\n{'graph':<7} {'nodes':>5}  {'run':<18} {'ms/node':>8} {'overhead':>9} {'LangGraph/this':>15}")
    for graph, r in results.items():
        print(f"{graph:<7} {r['nodes']:>5}  {'(node bodies)':<18} {r['body_ms_per_node']['ours_process']:>8.4f}")
        for k, label in ((OURS, "ours"), (STORE, "ours + RunStore"), (LG, lg_version)):
            ratio = f"{r['ratio_langgraph_vs'][k]:.2f}x" if k in r["ratio_langgraph_vs"] else ""
            o = r["overhead_ratio_langgraph_vs"].get(k)
            ratio += f" ({o:.2f}x)" if o else ""
            print(f"{'':<7} {'':>5}  {label:<18} {r['ms_per_node'][k]:>8.4f} {r['overhead_ms_per_node'][k]:>9.4f} {ratio:>15}")
    print("ms/node: median wall time of a whole run / nodes; overhead: minus the node bodies run bare in the same process;")
    print("LangGraph/this: LangGraph's ms/node over this row's (overhead ratio in brackets). Outputs identical (checksums match).")

    targets = {}
    for graph, r in results.items():
        targets[graph] = {
            "ours_ms_per_node_le_0.2": r["ms_per_node"][OURS] <= TARGET_MS,
            "ours_store_ms_per_node_le_0.2": r["ms_per_node"][STORE] <= TARGET_MS,
            "langgraph_ratio_ge_5": r["ratio_langgraph_vs"][OURS] >= TARGET_RATIO,
        }
        flags = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in targets[graph].items())
        print(f"targets {graph}: {flags}")
    if libs["ours"] != libs["langgraph"]:
        print(f"note: the workers' node bodies ran on different library versions: {libs}")
    if profile:
        print(profile, file=sys.stderr)
    print(json.dumps({
        "bench": "overhead", "reps": reps, "runs_per_rep": inner, "langgraph": lg_version, "elapsed_s": round(elapsed, 1), "worker_libs": libs,
        "results": results, "targets": targets,
    }))


if __name__ == "__main__":
    main()
