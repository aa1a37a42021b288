"""orchestrator bench speculative: speculative decoding against plain decoding of the same target.

For each target (the shipped smollm2-135m Q4_1, and its F32 requantization,
made once into the model cache), each task and each mode, in one run,
alternating in a rotating order and repeated (median reported):
- plain: the engine's greedy decoding;
- prompt-lookup, draft (the F32 target only, drafted by the shipped Q4_1) and
  auto: the engine with speculation on;
- llama-cpp-python's ``LlamaPromptLookupDecoding`` (num_pred_tokens=10, its
  default), run in its own process, as the state of the art baseline.
Tasks are input-grounded (the answer copies from the prompt) or open-ended,
each one user message in the model's chat template; the baseline gets the same
prompt tokens. The "bound" column is the most prompt lookup could gain on the
plain output at the row cost measured in the run (every draft length chosen
knowing the output): what the drafter and this CPU leave to gain.
Greedy identity of the speculative output against plain is checked in the
same run. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.prompt_lookup import lookup_speedup_bound
from orchestrator.errors import ModelNotFoundError
from orchestrator.engine.variants import resolve_weights
from orchestrator.models.catalogue import cache_dir_for, resolve_model
from orchestrator.engine.quantize import quantize_model
from orchestrator.types import ChatMessage, GenerationRequest

CODE = '''def summarize_orders(orders):
    totals = {}
    for order in orders:
        customer = order["customer"]
        amount = order["price"] * order["quantity"]
        if customer not in totals:
            totals[customer] = 0
        totals[customer] += amount
    best = max(totals, key=totals.get)
    return totals, best
'''
REPORT = (
    "The survey team visited Alder Creek on 12 March and counted 41 herons, 17 egrets and 6 kingfishers. "
    "On 19 March they returned to Birch Hollow, where they counted 23 herons and 2 otters. "
    "The final visit, to Cedar Marsh on 26 March, recorded 58 herons, 11 egrets and a single bittern. "
    "Water levels were high at Cedar Marsh and low at Alder Creek."
)
# One user message each, in the model's chat template: that is how an instruct model is
# used, and only then does smollm2-135m actually do the grounded tasks (quote, copy).
TASKS = {
    "code-edit": ("grounded", f"Rename the variable `totals` to `spend` in this Python function. Reply with the full code only.\n\n```python\n{CODE}```"),
    "extraction": ("grounded", f"List every visit in this report with its place, date and counts, copying the report's wording.\n\nReport:\n{REPORT}"),
    "quote-summary": ("grounded", f"Summarise this text by quoting its sentences in order.\n\nText:\n{REPORT}"),
    "story": ("open", "Write a short story about a fox who learns to sail."),
    "explain": ("open", "Explain why the seasons change over a year."),
}


def request(task: str, tokens: int, speculative: str = "off") -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage(role="user", content=TASKS[task][1]),), max_tokens=tokens, speculative=speculative
    )


_LLAMA_PLD = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
path, threads = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False,
            draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10))
for line in sys.stdin:
    prompt, tokens = json.loads(line)
    start = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0)
    print(json.dumps([out["usage"]["completion_tokens"] / (time.perf_counter() - start)]), flush=True)
"""


class LlamaPromptLookup:
    """llama-cpp-python's built-in prompt lookup, in its own process (one llama.cpp context per process)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LLAMA_PLD, str(path), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def rate(self, prompt: list[int], tokens: int) -> float:
        """Tokens per second for this prompt (token ids, exactly what our engine reads)."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([prompt, tokens]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the llama-cpp-python baseline process died")
        return float(json.loads(line)[0])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def f32_target() -> Path:
    """smollm2-135m requantized to F32 (the dequantized Q4_1 weights), made once into the cache."""
    try:
        return resolve_model("smollm2-135m-f32")
    except ModelNotFoundError:
        dst = cache_dir_for() / "smollm2-135m-f32.gguf"
        print(f"  making {dst} (once)", file=sys.stderr)
        return Path(quantize_model("smollm2-135m", dst, "f32").path)


def bench_target(label: str, path: Path, draft: str | None, reps: int, tokens: int, threads: int) -> dict:
    modes = ["plain", "prompt-lookup", *(["draft"] if draft else []), "auto", "llama-pld"]
    rates: dict[str, dict[str, list[float]]] = {t: {m: [] for m in modes} for t in TASKS}
    stats: dict[str, dict] = {}
    identical: dict[str, bool] = {}
    plain_out: dict[str, list[int]] = {}
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, n_threads=threads, draft_model=draft)
    baseline = LlamaPromptLookup(path, threads)
    with LocalEngine(path, cfg, name=label) as engine:
        engine.generate(GenerationRequest(prompt="warm up", max_tokens=4))
        baseline.rate(engine.tokenize("warm up"), 4)
        for rep in range(reps):
            for task in TASKS:
                outputs = {}
                shift = (rep + list(TASKS).index(task)) % len(modes)  # each mode takes every place in the order
                for mode in modes[shift:] + modes[:shift]:
                    if mode == "llama-pld":
                        rates[task][mode].append(baseline.rate(engine.prompt_tokens(request(task, tokens)), tokens))
                        continue
                    spec = "off" if mode == "plain" else mode
                    start = time.perf_counter()
                    done = engine.generate(request(task, tokens, spec))
                    rates[task][mode].append(done.tokens / (time.perf_counter() - start))
                    outputs[mode] = done.choices[0].token_ids
                    if done.speculative is not None:
                        s = done.speculative
                        stats.setdefault(task, {})[mode] = {
                            "drafted": s.drafted, "accepted": s.accepted, "tokens_per_step": round(s.tokens_per_step, 2)
                        }
                # identical in every repetition, not only the last
                identical[task] = identical.get(task, True) and all(out == outputs["plain"] for out in outputs.values())
                plain_out[task] = outputs["plain"]
            print(f"  {label} rep {rep + 1}/{reps} done", file=sys.stderr)
        row_cost = engine.step_costs.extra_row_cost()
        # what prompt lookup could do at best on each plain output, at the row cost measured in this run
        bounds = {t: lookup_speedup_bound(engine.prompt_tokens(request(t, tokens)), out, row_cost) for t, out in plain_out.items()}
    baseline.close()
    result = {}
    for task, per_mode in rates.items():
        med = {m: statistics.median(v) for m, v in per_mode.items()}
        result[task] = {
            "kind": TASKS[task][0],
            "tok_s": {m: round(v, 1) for m, v in med.items()},
            "x_plain": {m: round(v / med["plain"], 2) for m, v in med.items()},
            "prompt_lookup_bound": round(bounds[task], 2),
            "extra_row_cost": round(row_cost, 3),
            "greedy_identical": identical[task],
            "speculation": stats[task],
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench speculative")
    ap.add_argument("--targets", default="q4_1,f32",
                    help="q4_1 (shipped smollm2-135m), auto (the weights variant chosen on this machine) and/or f32 (its requantization)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=EngineConfig().threads)
    args = ap.parse_args()
    # target -> (model file, draft model): the F32 target gets the shipped Q4_1 as its draft
    targets = {
        "q4_1": (lambda: resolve_model("smollm2-135m"), None),
        "auto": (lambda: resolve_weights("smollm2-135m", "auto", threads=args.threads).path, None),
        "f32": (f32_target, "smollm2-135m"),
    }
    results = {}
    for target in args.targets.split(","):
        make_path, draft = targets[target]
        label = f"smollm2-135m-{target}"
        results[label] = bench_target(label, make_path(), draft, args.reps, args.tokens, args.threads)

    print(f"\n{'target':<18} {'task':<14} {'kind':<9} {'plain tok/s':>11}  x plain (median)                                         bound  identical")
    for target, tasks in results.items():
        for task, r in tasks.items():
            ratios = "  ".join(f"{m}={x:.2f}x" for m, x in r["x_plain"].items() if m != "plain")
            print(f"{target:<18} {task:<14} {r['kind']:<9} {r['tok_s']['plain']:>11.1f}  {ratios:<56} {r['prompt_lookup_bound']:.2f}x  {r['greedy_identical']}")
    print(json.dumps({"bench": "speculative", "reps": args.reps, "tokens": args.tokens, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
