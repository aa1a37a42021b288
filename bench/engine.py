"""orchestrator bench engine: batched decode throughput, and the engine against high-level Llama.

For each model and each weights file (``--weights shipped,auto``: the shipped file and
the variant this machine's tune chose, side by side), in one run, alternating and
repeated (median reported):
- aggregate tok/s of the engine with 1, 2, 4, 8, 16 concurrent sequences;
- single-sequence tok/s of llama-cpp-python's high-level ``Llama`` (same prompts,
  same thread count, greedy, same file) as the baseline;
- each weights file's tok/s against the first one's, width by width.
The weights files take turns within every repetition, each turn on a fresh engine.
Prints a table, then one JSON line. Ratios, not absolute speeds, are the result:
this machine is shared and noisy.

``--contention``: decode and prefill tok/s on an idle machine and beside one busy process
(a Python busy loop, like ``yes > /dev/null``), for the engine's thread policy
(``EngineConfig.thread_policy="adaptive"``, the default) against the old fixed default
(``"fixed"``: always the CPU count). Each policy runs in its own process with its engine kept
across loads; the loads and the policies take turns within each repetition, and each measured
request (a ~``--prompt-tokens`` prompt, then ``--tokens`` tokens) comes after ``--warmup``
requests under the same load, in which the adaptive policy can learn it. Medians are reported,
with each policy's busy rate against its own idle rate (target: >= 0.6, issue 19).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.engine import EngineConfig, LocalEngine
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


def weights_paths(name: str, choices: list[str], threads: int) -> dict[str, tuple[str, str]]:
    """label -> (path, reason) for each of ``--weights`` (``shipped``, ``auto``, or a .gguf path);
    ``auto`` is labelled with the variant it chose, and a choice that is another's file is measured once."""
    from orchestrator.engine.variants import resolve_weights

    out: dict[str, tuple[str, str]] = {}
    for choice in choices:
        got = resolve_weights(name, choice, threads=threads)
        label = choice if choice != "auto" else f"auto:{got.format}"
        if str(got.path) in {p for p, _ in out.values()}:
            print(f"  {name}: {label} is the same file as another choice; measured once", file=sys.stderr)
            continue
        out[label] = (str(got.path), got.reason)
    return out


def bench_model(name: str, weights: list[str], widths: list[int], reps: int, tokens: int, threads: int, steps: StepProgress) -> dict:
    """Each weights file of ``name``, taking turns within each repetition (a fresh engine per turn)."""
    files = weights_paths(name, weights, threads)
    cfg = EngineConfig(n_ctx=max(widths) * (tokens + 64), max_sequences=max(widths), prefix_cache_slots=0, n_threads=threads)
    samples = {label: {f"engine_{n}": [] for n in widths} | {"llama": []} for label in files}
    baselines = {label: LlamaBaseline(path, threads) for label, (path, _) in files.items()}
    try:
        for rep in range(reps):
            for label, (path, _) in files.items():
                with LocalEngine(path, cfg, name=name) as engine:
                    engine_rate(engine, 1, 8)  # warm-up both
                    baselines[label].rate(8)
                    for n in widths:
                        samples[label][f"engine_{n}"].append(engine_rate(engine, n, tokens))
                        if n == 1:
                            samples[label]["llama"].append(baselines[label].rate(tokens))
                        steps.advance(f"{name} [{label}] rep {rep + 1} width {n}")
                got = samples[label]
                steps.note(f"  {name} [{label}] rep {rep + 1}/{reps}: " + ", ".join(f"{k}={v[-1]:.0f}" for k, v in got.items()))
    finally:
        for baseline in baselines.values():
            baseline.close()
    results = {}
    for label, (path, reason) in files.items():
        med = {k: statistics.median(v) for k, v in samples[label].items()}
        results[label] = {
            "path": path,
            "why": reason,
            "tok_s": {k: round(v, 1) for k, v in med.items()},
            "ratio_vs_single": {str(n): round(med[f"engine_{n}"] / med["engine_1"], 2) for n in widths},
            "single_vs_llama": round(med["engine_1"] / med["llama"], 2),
        }
    first = next(iter(results))
    for label, r in results.items():  # every other file against the first one listed, width by width
        if label != first:
            base = results[first]["tok_s"]
            r[f"ratio_vs_{first}"] = {str(n): round(r["tok_s"][f"engine_{n}"] / base[f"engine_{n}"], 2) for n in widths}
    return results


# -- --contention: idle against one busy process, the thread policy against the fixed default ---
_CONTENTION_WORKER = r"""
import json, sys
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.types import GenerationRequest
path, name, policy = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = EngineConfig(n_ctx=4096, max_sequences=2, prefix_cache_slots=0, thread_policy=policy)
with LocalEngine(path, cfg, name=name) as engine:
    for line in sys.stdin:
        prompt, tokens = json.loads(line)
        t = engine.generate(GenerationRequest(prompt=prompt, max_tokens=tokens)).timings
        print(json.dumps({"prefill": t.prefill_tok_s, "decode": t.decode_tok_s, "prefill_tokens": t.prefill_tokens,
                          "decode_tokens": t.decode_tokens, "threads": engine.stats().step_threads}), flush=True)
"""
POLICIES = ("adaptive", "fixed")
LOADS = ("idle", "busy")
TARGET = 0.6


class PolicyWorker:
    """One engine with one thread policy, in its own process, answering requests one at a time."""

    def __init__(self, path: str, name: str, policy: str) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-c", _CONTENTION_WORKER, path, name, policy],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, prompt_text: str, tokens: int) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([prompt_text, tokens]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a contention worker died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def long_prompt(i: int, n_tokens: int) -> str:
    """A continuation prompt of about ``n_tokens`` tokens, different for every ``i`` (no prefix reuse)."""
    words, k = [f"Story {i}."], 0
    while len(words) < n_tokens * 3 // 4:  # ~1.3 tokens a word
        words += PROMPTS[(i + k) % len(PROMPTS)].split()
        k += 1
    return " ".join(words)


def busy_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def bench_contention(name: str, weights: str, reps: int, prompt_tokens: int, tokens: int, warmup: int, steps: StepProgress) -> dict:
    """Each policy's median prefill and decode tok/s, idle and beside one busy process."""
    path, _ = next(iter(weights_paths(name, [weights], EngineConfig().threads).values()))
    workers = {policy: PolicyWorker(path, name, policy) for policy in POLICIES}
    samples = {p: {load: {"prefill": [], "decode": []} for load in LOADS} for p in POLICIES}
    threads: dict[str, dict[str, dict]] = {p: {} for p in POLICIES}
    k = 0
    try:
        for rep in range(reps):
            for load in LOADS if rep % 2 == 0 else LOADS[::-1]:
                busy = busy_process() if load == "busy" else None
                try:
                    for policy in POLICIES if rep % 2 == 0 else POLICIES[::-1]:
                        for _ in range(warmup + 1):  # the last one is measured
                            k += 1
                            got = workers[policy].run(long_prompt(k, prompt_tokens), tokens)
                        samples[policy][load]["prefill"].append(got["prefill"])
                        samples[policy][load]["decode"].append(got["decode"])
                        threads[policy][load] = got["threads"]
                        steps.advance(f"{name} rep {rep + 1} {load} {policy}")
                        steps.note(f"  {name} rep {rep + 1} {load:<4} {policy:<8} prefill {got['prefill']:6.1f} "
                                   f"({got['prefill_tokens']} tokens)  decode {got['decode']:6.1f} tok/s  threads {got['threads']}")
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
    finally:
        for worker in workers.values():
            worker.close()
    out: dict = {"path": path, "threads": EngineConfig().threads}
    for policy in POLICIES:
        med = {load: {kind: round(statistics.median(v), 1) for kind, v in samples[policy][load].items()} for load in LOADS}
        out[policy] = {
            **med,
            "busy_vs_idle": {kind: round(med["busy"][kind] / med["idle"][kind], 2) for kind in ("prefill", "decode")},
            "busy_vs_fixed_idle": {kind: round(med["busy"][kind] / statistics.median(samples["fixed"]["idle"][kind]), 2)
                                   for kind in ("prefill", "decode")},
            "step_threads": threads[policy],
        }
    return out


def contention_main(args: argparse.Namespace) -> None:
    models = (args.models or "smollm2-135m").split(",")
    weights = next(w.strip() for w in args.weights.split(",") if w.strip())
    results = {}
    with StepProgress("bench engine --contention", total=len(models) * args.reps * len(LOADS) * len(POLICIES)) as steps:
        for name in models:
            results[name] = bench_contention(name, weights, args.reps, args.prompt_tokens, args.tokens, args.warmup, steps)
    print(f"\n{'model':<14} {'policy':<9} {'load':<5} {'prefill tok/s':>14} {'decode tok/s':>13}  busy / idle (prefill, decode)")
    for name, r in results.items():
        for policy in POLICIES:
            for load in LOADS:
                got, ratio = r[policy][load], r[policy]["busy_vs_idle"]
                tail = f"  {ratio['prefill']:.2f}, {ratio['decode']:.2f} (target >= {TARGET})" if load == "busy" else ""
                print(f"{name:<14} {policy:<9} {load:<5} {got['prefill']:>14.1f} {got['decode']:>13.1f}{tail}")
    print(json.dumps({"bench": "engine_contention", "reps": args.reps, "prompt_tokens": args.prompt_tokens, "tokens": args.tokens,
                      "warmup": args.warmup, "weights": weights, "target": TARGET, "results": results}))


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench engine")
    ap.add_argument("--models", default=None, help="comma-separated catalogue names (default: smollm2-135m,gemma3-270m; "
                                                    "with --contention, smollm2-135m)")
    ap.add_argument("--widths", default="1,2,4,8,16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=EngineConfig().threads)
    ap.add_argument("--weights", default="shipped,auto",
                    help="weights files side by side, comma-separated: shipped, auto (the variant chosen here), or .gguf paths; "
                         "ratios are against the first")
    ap.add_argument("--contention", action="store_true",
                    help="idle vs one busy process: the adaptive thread policy against the fixed default (see the module doc)")
    ap.add_argument("--prompt-tokens", type=int, default=644, help="with --contention: about this many prompt tokens per request")
    ap.add_argument("--warmup", type=int, default=1, help="with --contention: requests before each measured one, under the same load")
    args = ap.parse_args()
    if args.contention:
        contention_main(args)
        return
    args.models = args.models or "smollm2-135m,gemma3-270m"
    widths = [int(w) for w in args.widths.split(",")]
    weights = [w.strip() for w in args.weights.split(",") if w.strip()]
    results = {}
    models = args.models.split(",")
    with StepProgress("bench engine", total=len(models) * args.reps * len(widths) * len(weights)) as steps:
        for name in models:
            results[name] = bench_model(name, weights, widths, args.reps, args.tokens, args.threads, steps)

    print(f"\n{'model':<14} {'weights':<14} {'seqs':>5} {'tok/s':>8} {'x single':>9}  x first weights")
    for name, by_weights in results.items():
        first = next(iter(by_weights))
        for label, r in by_weights.items():
            for n in widths:
                vs = r.get(f"ratio_vs_{first}", {}).get(str(n))
                print(f"{name:<14} {label:<14} {n:>5} {r['tok_s'][f'engine_{n}']:>8.1f} {r['ratio_vs_single'][str(n)]:>9.2f}"
                      + (f"  {vs:.2f}x {first}" if vs is not None else ""))
            print(f"{name:<14} {label:<14} {'Llama':>5} {r['tok_s']['llama']:>8.1f}   engine single / high-level Llama = {r['single_vs_llama']:.2f}x")
            print(f"{'':<14} {label}: {r['why']}")
    print(json.dumps({"bench": "engine", "reps": args.reps, "tokens": args.tokens, "threads": args.threads, "weights": weights, "results": results}))


if __name__ == "__main__":
    main()
