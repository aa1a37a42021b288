"""orchestrator bench engine: batched decode throughput, and the engine against high-level Llama.

For each model, in one run, alternating and repeated (median reported):
- aggregate tok/s of the engine with 1, 2, 4, 8, 16 concurrent sequences;
- single-sequence tok/s of llama-cpp-python's high-level ``Llama`` (same prompts,
  same thread count, greedy) as the baseline.
Prints a table, then one JSON line. Ratios, not absolute speeds, are the result:
this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.models.catalogue import resolve_model
from orchestrator.cli.progress import StepProgress
from orchestrator.types import GenerationRequest

# Continuations rather than instructions: both models keep writing to max_tokens,
# so every sequence stays in the batch for the whole measurement.
PROMPTS = [
    "Chapter 1\n\nThe old lighthouse keeper",
    "The history of the bicycle begins",
    "Dear Anna,\n\nThis summer I",
    "Step 1: Mix the flour and water.",
    "In the heart of the busy market,",
    "The steam engine works by",
    "Once upon a time, a small robot",
    "At sunset, the sky turns red because",
]


def prompt(i: int) -> str:
    return ("Part two. " * (i // len(PROMPTS))) + PROMPTS[i % len(PROMPTS)]


def engine_rate(engine: LocalEngine, n: int, tokens: int) -> float:
    start = time.perf_counter()
    handles = [engine.submit(GenerationRequest(prompt=prompt(i), max_tokens=tokens)) for i in range(n)]
    produced = sum(h.result().tokens for h in handles)
    return produced / (time.perf_counter() - start)


_LLAMA_WORKER = r"""
import json, sys, time
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
for line in sys.stdin:
    prompt, tokens = json.loads(line)
    start = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0)
    print(out["usage"]["completion_tokens"] / (time.perf_counter() - start), flush=True)
"""


class LlamaBaseline:
    """High-level ``Llama`` in its own process.

    Two llama.cpp contexts taking turns in one process slowed each other down
    here by about a third (both of them), so the baseline runs next door and
    the two still alternate, one at a time.
    """

    def __init__(self, path: str, threads: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LLAMA_WORKER, path, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def rate(self, tokens: int) -> float:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([prompt(0), tokens]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the llama-cpp-python baseline process died")
        return float(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def bench_model(name: str, widths: list[int], reps: int, tokens: int, threads: int, steps: StepProgress) -> dict:
    path = resolve_model(name)
    cfg = EngineConfig(n_ctx=max(widths) * (tokens + 64), max_sequences=max(widths), prefix_cache_slots=0, n_threads=threads)
    samples: dict[str, list[float]] = {f"engine_{n}": [] for n in widths} | {"llama": []}
    with LocalEngine(path, cfg, name=name) as engine:
        llm = LlamaBaseline(str(path), threads)
        engine_rate(engine, 1, 8)  # warm-up both
        llm.rate(8)
        for rep in range(reps):
            for n in widths:
                samples[f"engine_{n}"].append(engine_rate(engine, n, tokens))
                if n == 1:
                    samples["llama"].append(llm.rate(tokens))
                steps.advance(f"{name} rep {rep + 1} width {n}")
            steps.note(f"  {name} rep {rep + 1}/{reps}: " + ", ".join(f"{k}={v[-1]:.0f}" for k, v in samples.items()))
        llm.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "tok_s": {k: round(v, 1) for k, v in med.items()},
        "ratio_vs_single": {str(n): round(med[f"engine_{n}"] / med["engine_1"], 2) for n in widths},
        "single_vs_llama": round(med["engine_1"] / med["llama"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench engine")
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--widths", default="1,2,4,8,16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=EngineConfig().threads)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    results = {}
    models = args.models.split(",")
    with StepProgress("bench engine", total=len(models) * args.reps * len(widths)) as steps:
        for name in models:
            results[name] = bench_model(name, widths, args.reps, args.tokens, args.threads, steps)

    print(f"\n{'model':<14} {'seqs':>5} {'tok/s':>8} {'x single':>9}")
    for name, r in results.items():
        for n in widths:
            print(f"{name:<14} {n:>5} {r['tok_s'][f'engine_{n}']:>8.1f} {r['ratio_vs_single'][str(n)]:>9.2f}")
        print(f"{name:<14} {'Llama':>5} {r['tok_s']['llama']:>8.1f}   engine single / high-level Llama = {r['single_vs_llama']:.2f}x")
    print(json.dumps({"bench": "engine", "reps": args.reps, "tokens": args.tokens, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
