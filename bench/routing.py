"""orchestrator bench routing: how well routers predict the small model's mistakes, and what
escalating them buys, on a labelled task set (``bench/routing_tasks.py``: 132 tasks).

One process, one ``LocalEngine`` per model, raw few-shot completion prompts cut at a newline:
- the small tier: smollm2-135m, greedy, with token log-probabilities;
- real larger tiers: gemma3-270m greedy, and smollm2-135m self-consistency (``--samples``
  answers at temperature 0.7 in one batched request, majority vote over normalised answers);
- a stand-in large tier: answers taken from the answer key, right with probability
  ``--large-accuracy`` (default 0.95, seeded). It is a labelled stand-in for a cloud model,
  not a measurement of one.

Routers, each a score per task computed without the answer key (low score = escalate):
- ``cascade``: ``policies.cascade.confidence`` of the small answer's logprobs (geometric
  mean token probability); ``cascade-min``: the least likely token's probability;
- ``learned-pre``: ``policies.learned.LogisticRouter`` on what is known before the small model
  runs (estimated prompt tokens, task kind); ``learned-post``: the same plus the small
  answer's logprob features (mean, min, first token, length); ``learned-post+copy``: plus
  whether the answer appears word for word in the task's own text (a grounded answer). Both are scored out of fold
  (``--folds``-fold cross-validation, so no task is scored by a model trained on it); the
  threshold for a 30% escalation target comes from ``calibrate_threshold`` on the training
  folds and the held-out share it gives is reported;
- ``learned-pre+emb`` / ``learned-post+emb``: the same two plus the small model's own embedding
  (``LocalEngine.embed``: mean-pooled, L2-normalised, 576 numbers for smollm2) of the task's
  text without the few-shot prefix (what a chat app's last user message would be),
  reduced to ``--emb-components`` numbers (default 8) by a ``PCAProjection`` fitted inside each
  training fold only, so the held-out fold leaks nothing into it;
- ``vote-agreement``: the share of the self-consistency samples that agree with the vote
  (costs the extra samples);
- ``prompt-length``: longer prompts escalate first; ``random``: seeded uniform.

Reported: the small model's accuracy per kind and level; each router's AUROC for "the small
answer is right" (random = 0.5); quality vs escalation share (lowest-scored tasks escalated,
shares 0..1, ties split evenly) against each larger tier, and APGR (average share of the
quality gap recovered, random = 0.5) where that tier is better than the small one alone, with
the APGR of an oracle that reads the key (the ceiling: at share s it can only have escalated s
of the tasks, so it stays below 1 when many tasks need escalating);
the policy decision's overhead (privacy + connectivity + budget + learned threshold, and the
cascade's answer check), median and p99 of many, no model call. Targets: best router
AUROC >= 0.75 and APGR >= 0.7 against the stand-in; decision < 5 ms.

Nothing is cached between runs. ``--quick`` takes every third task and 3 samples; ``--limit``
cuts the list further (for development). Each engine runs llama.cpp on one thread by default
(``--threads``): quality is measured, not speed, and one thread degrades gracefully when other
processes share the cores (two threads waiting on each other slowed a quick run ~4x here).
Measured here (shared 2 cores): quick ~1 min, full ~2.5 min (of which ~20 s embed the 132 tasks:
an embedding costs a prefill of the text, not the sub-millisecond policy decision timed below).
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.patterns import majority_vote  # noqa: E402
from bench.routing_tasks import KINDS, TASKS, Task, check, normalise, prompt_for  # noqa: E402
from orchestrator.engine import EngineConfig, LocalEngine  # noqa: E402
from orchestrator.types import Completion, GenerationRequest, SamplingParams  # noqa: E402
from policies.cascade import CascadePolicy, CascadeSettings, confidence, judge_answer, logprob_stats  # noqa: E402
from policies.evaluation import DEFAULT_SHARES, apgr, auroc, quality_curve  # noqa: E402
from policies.learned import LearnedPolicy, LogisticRouter, calibrate_threshold, local_features  # noqa: E402
from policies.projection import PCAProjection  # noqa: E402

__all__ = ["bench", "main"]

SMALL, LARGER = "smollm2-135m", "gemma3-270m"
MAX_TOKENS = 16
STOP = ("\n",)
TARGET_SHARE = 0.3  # escalation share the learned router's threshold is calibrated for
SHOW_SHARES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
TARGETS = {"auroc": 0.75, "apgr": 0.7, "decision_ms": 5.0}


# -- running the tiers ------------------------------------------------------------------------
def run_greedy(engine: LocalEngine, tasks: list[Task], logprobs: bool) -> tuple[list[Completion], float]:
    """Every task at once (the engine batches them; prompts of one kind share their few-shot prefix)."""
    t0 = time.perf_counter()
    handles = [engine.submit(GenerationRequest(prompt=prompt_for(t), max_tokens=MAX_TOKENS, stop=STOP, logprobs=logprobs)) for t in tasks]
    return [h.result() for h in handles], time.perf_counter() - t0


def vote_key(task: Task, text: str) -> str:
    """What self-consistency votes on: the number for arithmetic, else the normalised answer line."""
    line = text.strip().split("\n", 1)[0]
    if task.kind == "arithmetic":
        m = re.search(r"-?\d+", line.replace(",", ""))
        return m.group() if m else ""
    return normalise(line)


def run_votes(engine: LocalEngine, tasks: list[Task], samples: int) -> tuple[list[tuple[str, float]], float]:
    """Self-consistency: ``samples`` answers per task in one request; returns (voted answer, agreement)."""
    t0 = time.perf_counter()
    handles = [
        engine.submit(GenerationRequest(
            prompt=prompt_for(t), max_tokens=MAX_TOKENS, stop=STOP, n=samples,
            sampling=SamplingParams(temperature=0.7, seed=1000 + i),
        ))
        for i, t in enumerate(tasks)
    ]
    out = []
    for task, h in zip(tasks, handles):
        texts = [c.text for c in h.result().choices]
        keys = [vote_key(task, x) for x in texts]
        winner, count = majority_vote(keys)
        # the voted answer is the first sample that gave the winning key (or the first sample)
        text = next((x for x, k in zip(texts, keys) if k == winner and winner), texts[0])
        out.append((text, count / samples))
    return out, time.perf_counter() - t0


# -- routers ------------------------------------------------------------------------------------
def prompt_tokens_estimate(task: Task) -> int:
    """What the router sees before any model runs: about 4 characters per token (as RouteRequest.of)."""
    return math.ceil(len(prompt_for(task)) / 4)


def pre_features(task: Task) -> np.ndarray:
    return local_features(prompt_tokens_estimate(task), task.kind, KINDS)


def post_features(task: Task, logprobs: tuple[float, ...]) -> np.ndarray:
    st = logprob_stats(logprobs)
    first = logprobs[0] if logprobs else -20.0
    floor = -20.0  # an empty answer's -inf, clipped so the features stay finite
    extra = [max(st.mean_logprob, floor), max(st.min_logprob, floor), first, math.log1p(st.tokens)]
    return np.concatenate([pre_features(task), extra])


def copied(task: Task, answer: str) -> float:
    """1 when the small answer appears word for word in the task's own text (a grounded answer)."""
    a = " ".join(answer.split()).casefold().strip(" .")
    return float(bool(a) and a in " ".join(task.body.split()).casefold())


def embed_text(task: Task) -> str:
    """What the embedding router embeds: the task itself, without its kind's few-shot prefix."""
    return task.body.replace(" | ", "\n")


def embed_tasks(engine: LocalEngine, tasks: list[Task]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    return engine.embed([embed_text(t) for t in tasks]), time.perf_counter() - t0


def cross_validated(
    X: np.ndarray, y: np.ndarray, folds: int, seed: int, *, embeddings: np.ndarray | None = None, components: int = 0
) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold P(small right) for every task, and the held-out escalation share of a threshold
    calibrated on each training fold for ``TARGET_SHARE``. With ``embeddings``, each fold appends
    their projection on ``components`` principal components fitted on its training tasks only."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    scores = np.zeros(len(y))
    shares = []
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        Xk = X
        if embeddings is not None:
            projection = PCAProjection(components).fit(embeddings[train])
            Xk = np.hstack([X, projection.transform(embeddings)])
        model = LogisticRouter(l2=1.0).fit(Xk[train], y[train])
        threshold = calibrate_threshold(model.predict_proba(Xk[train]), TARGET_SHARE)
        scores[test] = model.predict_proba(Xk[test])
        shares.append(float(np.mean(scores[test] < threshold)))
    return scores, shares


# -- decision overhead --------------------------------------------------------------------------
def decision_overhead(tasks: list[Task], small: list[Completion], y: np.ndarray, rounds: int) -> dict[str, float]:
    """Median and p99 ms of the pure policy decisions, over ``rounds`` requests (tasks in rotation)."""
    from policies.budgets import BudgetPolicy
    from policies.connectivity import ConnectivityPolicy
    from policies.privacy import PrivacyPolicy
    from policies.routing import Candidate, RouteRequest, decide

    X = np.stack([pre_features(t) for t in tasks])
    model = LogisticRouter().fit(X, y)
    learned = LearnedPolicy(model, calibrate_threshold(model.predict_proba(X), TARGET_SHARE))
    policies = [PrivacyPolicy(allow_egress=True), ConnectivityPolicy(), BudgetPolicy(max_latency_s=30.0), learned]
    candidates = [
        Candidate(SMALL, ttft_s=0.1, tok_s=100.0, energy_j_per_token=0.05),
        Candidate(LARGER, ttft_s=0.3, tok_s=40.0, energy_j_per_token=0.12),
        Candidate("cloud", location="remote", ttft_s=0.6, tok_s=60.0, cost_per_token=1e-6),
    ]
    requests = [GenerationRequest(prompt=prompt_for(t), max_tokens=MAX_TOKENS, stop=STOP) for t in tasks]
    cascade = CascadePolicy(CascadeSettings(threshold=0.5))
    route_ns, judge_ns = [], []
    for i in range(rounds):
        task, req, done = tasks[i % len(tasks)], requests[i % len(tasks)], small[i % len(tasks)]
        t0 = time.perf_counter_ns()
        # before the model: the route (features computed here too)
        route = RouteRequest.of(req, task_type=task.kind, features=pre_features(task))
        decide(route, candidates, policies)
        t1 = time.perf_counter_ns()
        # after the small model's answer: the cascade's keep-or-escalate
        verdict = cascade.consult(route, tuple(candidates[:2]))
        judge_answer(done.choices[0].logprobs, CascadeSettings(threshold=verdict.escalate_below or 0.5))
        t2 = time.perf_counter_ns()
        route_ns.append(t1 - t0)
        judge_ns.append(t2 - t1)

    def ms(values: list[int], q: float) -> float:
        return float(np.quantile(values, q)) / 1e6

    return {"route_median_ms": ms(route_ns, 0.5), "route_p99_ms": ms(route_ns, 0.99),
            "cascade_median_ms": ms(judge_ns, 0.5), "cascade_p99_ms": ms(judge_ns, 0.99), "rounds": rounds}


# -- the benchmark ------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> dict[str, Any]:
    tasks = list(TASKS[:: 3 if args.quick else 1])[: args.limit or None]
    samples = args.samples or (3 if args.quick else 5)
    timings: dict[str, float] = {}
    cfg = EngineConfig(n_ctx=8192, max_sequences=16, n_threads=args.threads)
    log(f"{len(tasks)} tasks; loading {SMALL} and {LARGER}")
    with LocalEngine(SMALL, cfg, name=SMALL) as small_engine, LocalEngine(LARGER, cfg, name=LARGER) as large_engine:
        small, timings["small_s"] = run_greedy(small_engine, tasks, logprobs=True)
        log(f"{SMALL} greedy: {timings['small_s']:.1f}s")
        embeddings, timings["embed_s"] = embed_tasks(small_engine, tasks)
        log(f"{SMALL} embeddings of {len(tasks)} tasks: {timings['embed_s']:.1f}s")
        votes, timings["vote_s"] = run_votes(small_engine, tasks, samples)
        log(f"{SMALL} self-consistency x{samples}: {timings['vote_s']:.1f}s")
        larger, timings["larger_s"] = run_greedy(large_engine, tasks, logprobs=False)
        log(f"{LARGER} greedy: {timings['larger_s']:.1f}s")

    # 1. Right or wrong, per tier.
    small_ok = np.array([check(t, c.text) for t, c in zip(tasks, small)], dtype=float)
    rng = np.random.default_rng(args.seed)
    tiers = {
        LARGER: np.array([check(t, c.text) for t, c in zip(tasks, larger)], dtype=float),
        f"self-consistency x{samples}": np.array([check(t, text) for t, (text, _) in zip(tasks, votes)], dtype=float),
        f"stand-in {args.large_accuracy:.0%}": (rng.random(len(tasks)) < args.large_accuracy).astype(float),
    }
    # 2. Each router's score (no answer key involved, except as training labels of other folds).
    logprobs = [c.choices[0].logprobs or () for c in small]
    pre = np.stack([pre_features(t) for t in tasks])
    post = np.stack([post_features(t, lp) for t, lp in zip(tasks, logprobs)])
    post_copy = np.column_stack([post, [copied(t, c.text) for t, c in zip(tasks, small)]])
    scores: dict[str, np.ndarray] = {
        "cascade": np.array([confidence(lp) for lp in logprobs]),
        "cascade-min": np.array([logprob_stats(lp).min_token_prob for lp in logprobs]),
    }
    held_out_shares: dict[str, list[float]] = {}
    both = 0.0 < small_ok.mean() < 1.0
    if both:
        scores["learned-pre"], held_out_shares["learned-pre"] = cross_validated(pre, small_ok, args.folds, args.seed)
        scores["learned-post"], held_out_shares["learned-post"] = cross_validated(post, small_ok, args.folds, args.seed)
        emb = {"embeddings": embeddings, "components": args.emb_components}
        scores["learned-pre+emb"], held_out_shares["learned-pre+emb"] = cross_validated(pre, small_ok, args.folds, args.seed, **emb)
        scores["learned-post+emb"], held_out_shares["learned-post+emb"] = cross_validated(post, small_ok, args.folds, args.seed, **emb)
        scores["learned-post+copy"], held_out_shares["learned-post+copy"] = cross_validated(post_copy, small_ok, args.folds, args.seed)
    scores["vote-agreement"] = np.array([agree for _, agree in votes])
    scores["prompt-length"] = -np.array([prompt_tokens_estimate(t) for t in tasks], dtype=float)
    scores["random"] = np.random.default_rng(args.seed + 1).random(len(tasks))
    # 3. AUROC, curves and APGR.
    routers: dict[str, Any] = {}
    for name, s in scores.items():
        entry: dict[str, Any] = {"auroc": auroc(s, small_ok) if both else None, "tiers": {}}
        for tier, ok in tiers.items():
            curve = quality_curve(s, small_ok, ok, DEFAULT_SHARES)
            gap = float(ok.mean() - small_ok.mean())
            entry["tiers"][tier] = {
                "curve": {f"{sh:.2f}": round(float(q), 4) for sh, q in zip(DEFAULT_SHARES, curve)},
                "apgr": apgr(s, small_ok, ok) if gap > 0 else None,
            }
        if name in held_out_shares:
            entry["held_out_share_at_target"] = round(statistics.mean(held_out_shares[name]), 3)
        routers[name] = entry
    # 4. The ceiling: an oracle that reads the key escalates exactly where it helps first.
    oracle = {t: (apgr(small_ok - ok, small_ok, ok) if ok.mean() > small_ok.mean() else None) for t, ok in tiers.items()}
    # its curve too (small wrong and larger right first, small right and larger wrong last), for the plot
    oracle_curve = {t: {f"{sh:.2f}": round(float(q), 4) for sh, q in zip(DEFAULT_SHARES, quality_curve(small_ok - ok, small_ok, ok, DEFAULT_SHARES))}
                    for t, ok in tiers.items()}
    overhead = decision_overhead(tasks, small, small_ok, args.decisions) if both else {}
    out = summarise(args, tasks, samples, small, small_ok, tiers, routers, oracle, overhead, timings)
    out["oracle_curve"] = oracle_curve
    return out


def summarise(args, tasks, samples, small, small_ok, tiers, routers, oracle, overhead, timings) -> dict[str, Any]:
    by_group: dict[str, list[float]] = {}
    for t, ok in zip(tasks, small_ok):
        by_group.setdefault(f"{t.kind}/{t.level}", []).append(float(ok))
    stand_in = next(k for k in tiers if k.startswith("stand-in"))
    ranked = [(k, v) for k, v in routers.items() if k != "random" and v["auroc"] is not None]
    best_auroc = max(ranked, key=lambda kv: kv[1]["auroc"], default=(None, None))
    with_apgr = [(k, v["tiers"][stand_in]["apgr"]) for k, v in ranked if v["tiers"][stand_in]["apgr"] is not None]
    best_apgr = max(with_apgr, key=lambda kv: kv[1], default=(None, None))
    return {
        "bench": "routing",
        "quick": args.quick,
        "tasks": len(tasks),
        "small_model": SMALL,
        "samples": samples,
        "large_accuracy": args.large_accuracy,
        "seed": args.seed,
        "folds": args.folds,
        "emb_components": args.emb_components,
        "accuracy": {"small": round(float(small_ok.mean()), 4), **{k: round(float(v.mean()), 4) for k, v in tiers.items()}},
        "small_by_group": {k: f"{int(sum(v))}/{len(v)}" for k, v in sorted(by_group.items())},
        "small_answer_tokens_mean": round(statistics.mean(c.tokens for c in small), 2),
        "routers": routers,
        "oracle_apgr": oracle,
        "best_auroc": {"router": best_auroc[0], "value": best_auroc[1]["auroc"] if best_auroc[1] else None},
        "best_apgr_stand_in": {"router": best_apgr[0], "value": best_apgr[1]},
        "decision": overhead,
        "targets": TARGETS,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def print_table(out: dict[str, Any]) -> None:
    acc = out["accuracy"]
    print(f"\nRouting on {out['tasks']} labelled tasks{' (quick)' if out['quick'] else ''}; small tier {out['small_model']}")
    print("accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    print("small model by kind/level: " + ", ".join(f"{k} {v}" for k, v in out["small_by_group"].items()))
    tiers = list(next(iter(out["routers"].values()))["tiers"])
    print(f"\n{'router':<16} {'AUROC':>6}  " + "  ".join(f"{'APGR ' + t[:18]:>24}" for t in tiers))
    for name, r in out["routers"].items():
        au = f"{r['auroc']:.3f}" if r["auroc"] is not None else "  -  "
        cells = []
        for t in tiers:
            v = r["tiers"][t]["apgr"]
            cells.append(f"{v:>24.3f}" if v is not None else f"{'no gap':>24}")
        print(f"{name:<16} {au:>6}  " + "  ".join(cells))
    print(f"{'oracle (key)':<16} {'-':>6}  " + "  ".join(f"{v:>24.3f}" if v is not None else f"{'no gap':>24}" for v in out["oracle_apgr"].values()))
    for t in tiers:
        print(f"\nquality vs escalation share, larger tier {t} (small alone {acc['small']:.1%}, {t} alone {acc[t]:.1%}):")
        print(f"{'router':<16} " + " ".join(f"{s:>6.0%}" for s in SHOW_SHARES))
        for name, r in out["routers"].items():
            curve = r["tiers"][t]["curve"]
            print(f"{name:<16} " + " ".join(f"{curve[f'{s:.2f}']:>6.1%}" for s in SHOW_SHARES))
    for name, r in out["routers"].items():
        if "held_out_share_at_target" in r:
            print(f"{name}: threshold calibrated for {TARGET_SHARE:.0%} escalation escalated {r['held_out_share_at_target']:.1%} of held-out tasks")
    d = out["decision"]
    if d:
        print(f"\ndecision overhead, no model call ({d['rounds']} requests): route (privacy + connectivity + budget + learned) "
              f"median {d['route_median_ms']:.3f} ms, p99 {d['route_p99_ms']:.3f} ms; cascade check median {d['cascade_median_ms']:.3f} ms")
    ba, bp = out["best_auroc"], out["best_apgr_stand_in"]
    if ba["router"]:
        print(f"best AUROC {ba['value']:.3f} ({ba['router']}; target >= {TARGETS['auroc']}); "
              f"best APGR vs stand-in {bp['value']:.3f} ({bp['router']}; target >= {TARGETS['apgr']})")
    print("times: " + ", ".join(f"{k} {v}" for k, v in out["timings_s"].items()))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="orchestrator bench routing", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="every third task, 3 self-consistency samples")
    p.add_argument("--limit", type=int, default=0, help="at most this many tasks (after --quick's selection)")
    p.add_argument("--samples", type=int, default=0, help="self-consistency samples per task (default 5, quick 3)")
    p.add_argument("--large-accuracy", type=float, default=0.95, help="accuracy of the stand-in large tier")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the learned routers")
    p.add_argument("--emb-components", type=int, default=8, help="principal components of the task embedding kept by the +emb routers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads per engine (1: robust on a shared machine; quality, not speed, is measured)")
    p.add_argument("--decisions", type=int, default=5000, help="policy decisions timed")
    args = p.parse_args()
    if not 0.0 < args.large_accuracy <= 1.0 or args.folds < 2 or args.samples < 0 or args.limit < 0 or args.emb_components < 1:
        p.error("need 0 < --large-accuracy <= 1, --folds >= 2, --samples >= 0, --limit >= 0, --emb-components >= 1")
    t0 = time.perf_counter()
    out = bench(args)
    out["timings_s"]["total"] = round(time.perf_counter() - t0, 1)
    print_table(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
