"""orchestrator bench prefix: a fresh process's time to first token, with a stored prompt prefix restored vs computed.

An app restarts and asks its first question: the prompt starts with a long system prompt (a
~1k-token house handbook, ``--prefix-tokens``) pinned by an earlier process
(``LocalEngine.pin_prefix``, stored on disk; see ``orchestrator.engine.pinning``).

1. A seed process writes the system prompt, pins it (computes it and stores its KV state in a
   temporary store folder) and exits.
2. Then, ``--reps`` times, alternating which goes first: a fresh process with the store on
   (``restored``: the engine finds the stored prefix when the request arrives, checks and loads
   it, and computes only the question) and a fresh process with the store off (``computed``: the
   whole prompt is prefilled). Both send the same greedy request.

Measured: each request's time to first token (``Timings.ttft_s``, from submit to the first
token: it includes the restore; the engine's load is reported apart, it is the same for both);
medians, and their ratio. The greedy outputs of every run must be identical. Prints a table,
then one JSON line. Target: ratio >= 10 (issue 19).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "_prefix_worker.py"
TARGET = 10.0
MODES = ("restored", "computed")


def run_worker(mode: str, model: str, store: Path, system_file: Path, threads: int, max_tokens: int, prefix_tokens: int = 0) -> dict:
    args = [sys.executable, str(WORKER), mode, model, str(store), str(system_file), str(threads), str(max_tokens), str(prefix_tokens)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def weights_path(model: str, weights: str, threads: int) -> tuple[str, str]:
    """The file both modes load (resolved once here, so no worker starts a weights tune)."""
    from orchestrator.engine.variants import resolve_weights

    got = resolve_weights(model, weights, threads=threads)
    return str(got.path), got.format


def main() -> None:
    from orchestrator.engine import EngineConfig

    ap = argparse.ArgumentParser(prog="orchestrator bench prefix")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--weights", default="auto", help="auto (the format chosen on this machine), shipped, or a .gguf path")
    ap.add_argument("--reps", type=int, default=5, help="fresh processes per mode, alternating")
    ap.add_argument("--prefix-tokens", type=int, default=1000, help="the system prompt's length, at least")
    ap.add_argument("--max-tokens", type=int, default=24, help="tokens generated per answer (compared across runs)")
    ap.add_argument("--threads", type=int, default=EngineConfig().threads)
    args = ap.parse_args()

    path, fmt = weights_path(args.model, args.weights, args.threads)
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
        store, system_file = Path(tmp) / "prefixes", Path(tmp) / "system.txt"
        seed = run_worker("seed", path, store, system_file, args.threads, args.max_tokens, args.prefix_tokens)
        print(f"seed: pinned {seed['prefix_tokens']} tokens in {seed['pin_s']:.2f} s, stored {seed['stored_bytes'] / 2**20:.1f} MiB",
              file=sys.stderr)
        for rep in range(args.reps):
            for mode in MODES if rep % 2 == 0 else MODES[::-1]:
                got = run_worker(mode, path, store, system_file, args.threads, args.max_tokens)
                runs[mode].append(got)
                print(f"  rep {rep + 1}/{args.reps} {mode:<9} ttft {got['ttft_s']:.3f} s  reused {got['reused']:>5}  "
                      f"restored {got['restored']:>5}  load {got['load_s']:.2f} s", file=sys.stderr)
    report(args, path, fmt, seed, runs)


def report(args: argparse.Namespace, path: str, fmt: str, seed: dict, runs: dict[str, list[dict]]) -> None:
    med = {m: statistics.median(r["ttft_s"] for r in runs[m]) for m in MODES}
    ratio = med["computed"] / med["restored"] if med["restored"] > 0 else 0.0
    outputs = {tuple(r["ids"]) for m in MODES for r in runs[m]}
    restored_every_time = all(r["restored"] >= seed["prefix_tokens"] for r in runs["restored"])
    print(f"\nmodel {args.model} ({fmt}), prompt {runs['computed'][0]['prompt_tokens']} tokens, "
          f"prefix {seed['prefix_tokens']} tokens, {args.reps} fresh processes per mode, {args.threads} threads")
    print(f"{'mode':<10} {'ttft median s':>14} {'min':>8} {'max':>8} {'load s':>8}")
    for m in MODES:
        t = [r["ttft_s"] for r in runs[m]]
        print(f"{m:<10} {med[m]:>14.3f} {min(t):>8.3f} {max(t):>8.3f} {statistics.median(r['load_s'] for r in runs[m]):>8.2f}")
    print(f"ratio (computed / restored): {ratio:.1f}x (target >= {TARGET:.0f}x); greedy outputs identical: {len(outputs) == 1}; "
          f"restored every time: {restored_every_time}")
    print(json.dumps({
        "bench": "prefix", "model": args.model, "weights": fmt, "path": path, "threads": args.threads, "reps": args.reps,
        "prefix_tokens": seed["prefix_tokens"], "prompt_tokens": runs["computed"][0]["prompt_tokens"],
        "stored_bytes": seed["stored_bytes"], "ttft_s": {m: round(med[m], 4) for m in MODES},
        "samples_s": {m: [round(r["ttft_s"], 4) for r in runs[m]] for m in MODES},
        "ratios": {"computed_vs_restored": round(ratio, 2)}, "target": TARGET, "met": ratio >= TARGET,
        "identical": len(outputs) == 1, "restored_every_time": restored_every_time,
    }))


if __name__ == "__main__":
    main()
