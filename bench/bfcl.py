"""orchestrator bench bfcl: tool calls on the Berkeley Function Calling Leaderboard's data (first turn).

An external set no one here wrote: BFCL v4's ``simple_python`` (400), ``multiple`` (200) and
``irrelevance`` (240) categories, read from the ``bfcl-eval`` package's JSON files (installed
``--no-deps`` into ``<cache>/bench/bfcl``, never imported), scored by BFCL's AST rules
(``bench/_bfcl_data.py``). Each BFCL function becomes one of our tools with ``Tool.from_schema``
(BFCL's ``dict``/``float``/``tuple``/``any`` mapped to JSON schema); the functions our machinery
refuses are counted, with the reason, and their items are scored as wrong.

Modes, per model:

- ``scored``: ``agents.decide`` (which tool or none by scores, arguments from grounded
  candidates, calibrated confidence), run by ``orchestrator.tool_decisions.EngineScorer``;
- ``free``: the agent's first turn as it was before (``agents.loop``, grammar-constrained JSON,
  ``ground_arguments=True``): the baseline.

``--models`` (default ``smollm2-135m,gemma3-270m``; gemma3-270m is a base model, so its prompt
is a plain transcript with worked format examples). The **cascade** is computed from the two
scored runs: smollm2's decision when its confidence is at least the threshold, else gemma's
(escalated). The threshold is chosen on the tuning half: the one that recovers the most of the
gap while escalating at most 40% of the requests there.

The split is fixed: even id suffixes are the tuning half, odd the evaluation half. ``--fit``
refits the decision weights (tool choice, relevance, optional fields, confidence) on the tuning
half of the recorded run and prints them; ``--from-records FILES --fit-calibration W.json`` refits
only what replays exactly from recorded decisions (relevance, threshold, confidence and its
cross-fitted Platt map, ``_bfcl_calibrate``); ``--weights FILE`` runs with such a file. Figures are
given for the evaluation half and the full set, with the expected calibration error and the
reliability curve of the confidence on the evaluation half.

``--own`` also decides the project's own 160 requests (``bench/_own_decisions.py``: the tools
bench's 48 and 16 that no tool fits, then 72 and 24 more written later) with smollm2-135m: held
out from every fit, like the evaluation half, and reported as run ``smollm2-135m/own`` (its ``all``
column).

Model scores are kept in ``--cache`` (a small SQLite file; default under the bench's cache
folder), so a rerun with other weights only computes what it has not seen. Prints a table, then
one JSON line.

    orchestrator bench bfcl [--limit N] [--half eval|tune|all] [--modes scored,free] [--fit] [--wheel FILE]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/bfcl.py`: import our `tools`, not bench/tools.py
sys.path.append(str(Path(__file__).resolve().parent))  # after the repo: bench/tools.py must not shadow our `tools`

import _bfcl_data as B  # noqa: E402
from _bfcl_fit import cascade_report, fit_calibration, fit_settings, load_settings, reweigh, save_settings, summary  # noqa: E402

SMALL, LARGE = "smollm2-135m", "gemma3-270m"


class SqliteCache(MutableMapping[str, str]):
    """A persistent str -> str mapping in one SQLite file (scores by prompt and continuation)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")

    def __getitem__(self, key: str) -> str:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
        self.db.commit()

    def __delitem__(self, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE k = ?", (key,))

    def __iter__(self) -> Iterator[str]:
        return (r[0] for r in self.db.execute("SELECT k FROM kv"))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM kv").fetchone()[0]


def make_tool(name: str, description: str, schema: dict[str, Any]) -> Any:
    from tools.tool import Tool

    return Tool.from_schema(name, description, schema, lambda **kw: None)


def run_scored(engine: Any, items: list[B.Item], settings: Any, cache: MutableMapping[str, str], plain: bool,
               refused: dict[str, str], progress: str) -> list[dict[str, Any]]:
    from orchestrator.tool_decisions import EngineScorer
    from orchestrator.types import ChatMessage

    scorer = EngineScorer(engine, cache=cache, plain=plain)
    out = []
    started = time.perf_counter()
    for n, item in enumerate(items, 1):
        record: dict[str, Any] = {"id": item.id, "category": item.category, "half": B.half_of(item)}
        if any(f["name"] in refused for f in item.functions):
            record.update(calls=[], error="a function was refused", right=False, confidence=0.0, seconds=0.0)
            out.append(record)
            continue
        tools = [make_tool(*B.convert_function(f)) for f in item.functions]
        t0 = time.perf_counter()
        decision = scorer.decide(tools, [ChatMessage(role="user", content=item.question)], settings)
        why = B.score_item(item, decision.calls)
        would = B.score_item(item, [(decision.tool, decision.trace["arguments"])]) if item.answer else "irrelevance"
        record.update(calls=[list(c) for c in decision.calls], right=why is None, why=why, confidence=decision.confidence,
                      call_right=would is None, _item=item,
                      relevance=decision.relevance, tool=decision.tool, features=dict(decision.features), trace=decision.trace,
                      seconds=time.perf_counter() - t0, expected=next(iter(item.answer)) if item.answer else None)
        out.append(record)
        if n % 10 == 0 or n == len(items):
            print(f"  {progress}: {n}/{len(items)}, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def run_free(engine: Any, items: list[B.Item], refused: dict[str, str], progress: str) -> list[dict[str, Any]]:
    """The agent's first turn as before (grammar-constrained JSON, grounded arguments)."""
    import anyio

    from agents.agent import Agent
    from agents.loop import ModelTurn, RunTools, agent_loop
    from orchestrator.backends.base import complete
    from orchestrator.backends.local import LocalBackend

    out = []
    started = time.perf_counter()
    for n, item in enumerate(items, 1):
        record: dict[str, Any] = {"id": item.id, "category": item.category, "half": B.half_of(item), "confidence": 1.0}
        if any(f["name"] in refused for f in item.functions):
            record.update(calls=[], right=False, why="refused", seconds=0.0)
            out.append(record)
            continue
        agent = Agent("bfcl", "You are a helpful assistant.", tools=tuple(make_tool(*B.convert_function(f)) for f in item.functions),
                      max_tokens=256, ground_arguments=True)
        t0 = time.perf_counter()
        loop = agent_loop(agent, item.question)
        need = next(loop)
        assert isinstance(need, ModelTurn)
        completion = anyio.run(complete, LocalBackend(engine), need.request)  # the backend compiles the grammar, reads calls back
        calls: list[Any] = []
        try:
            after = loop.send(completion)
            if isinstance(after, RunTools):
                calls = [(c.tool.name, dict(c.arguments)) for c in after.calls]
        except StopIteration:
            pass
        finally:
            loop.close()
        why = B.score_item(item, calls)
        record.update(calls=[list(c) for c in calls], right=why is None, why=why, seconds=time.perf_counter() - t0)
        out.append(record)
        if n % 10 == 0 or n == len(items):
            print(f"  {progress}: {n}/{len(items)}, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def main() -> None:  # noqa: C901 - one flat sequence of steps
    ap = argparse.ArgumentParser(prog="orchestrator bench bfcl")
    ap.add_argument("--limit", type=int, default=None, help="at most N items per category (of the chosen half)")
    ap.add_argument("--half", choices=("eval", "tune", "all"), default="all")
    ap.add_argument("--categories", default=",".join(B.CATEGORIES))
    ap.add_argument("--models", default=f"{SMALL},{LARGE}")
    ap.add_argument("--modes", default="scored", help="scored, free, or both (comma-separated)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="SQLite file of model scores (default: under the bench cache)")
    ap.add_argument("--wheel", default=None, help="install this bfcl-eval wheel file instead of the package by name")
    ap.add_argument("--data", type=Path, default=None, help="read BFCL's JSON files from here (no install)")
    ap.add_argument("--weights", type=Path, default=None, help="decision weights (JSON written by --fit)")
    ap.add_argument("--fit", type=Path, default=None, metavar="OUT.json", help="refit the weights on the tuning half, write them here")
    ap.add_argument("--record", type=Path, default=None, help="write every decision (JSON lines) here")
    ap.add_argument("--no-arg-descriptions", action="store_true", help="the tool list without what each argument means")
    ap.add_argument("--no-embeddings", action="store_true", help="tool choice and relevance without embeddings")
    ap.add_argument("--own", action="store_true", help="also decide the project's own 160 requests (bench/tools.py's 48, "
                    "16 no tool fits, and bench/_own_more.py's 96) with smollm2-135m, reported as run smollm2-135m/own")
    ap.add_argument("--app", action="store_true", help="also decide the app-style tuning set (bench/_app_tune.py: 8 other "
                    "tools, 96 calls and 32 no tool fits) with smollm2-135m, run smollm2-135m/app; --fit-calibration fits on "
                    "it beside BFCL's tuning half")
    ap.add_argument("--fit-calibration", type=Path, default=None, metavar="OUT.json",
                    help="with --from-records: refit only relevance, threshold, confidence and its Platt map on the tuning "
                         "half (exact from the records), write them here, and report the records under them")
    ap.add_argument("--platt-from", type=int, default=40, metavar="N",
                    help="with --fit-calibration: the Platt map learns from tuning items N and later of each category "
                         "(the tool, value and optional-field weights were fit on the first 40)")
    ap.add_argument("--from-records", type=Path, nargs="+", default=None, metavar="FILE",
                    help="report (and --fit) from recorded runs, without running a model")
    args = ap.parse_args()
    if args.from_records:
        return _report_records(args)

    from agents.decide import DecisionSettings
    from orchestrator.engine import EngineConfig, LocalEngine

    root = B.default_cache()
    data = B.data_dir(args.data) if args.data else B.install(root, args.wheel)
    cache = SqliteCache(args.cache or root / "scores.sqlite")
    categories = [c for c in args.categories.split(",") if c]
    items: list[B.Item] = []
    everything: list[B.Item] = []
    for category in categories:
        loaded = B.load_category(data, category)
        everything += loaded
        chosen = [i for i in loaded if args.half == "all" or B.half_of(i) == args.half]
        items += chosen[: args.limit]
    refused = B.refusals(everything, make_tool)
    print(f"BFCL: {len(items)} items; {len(refused)} of {len({f['name'] for i in everything for f in i.functions})} "
          f"functions refused by Tool.from_schema", file=sys.stderr)
    base = load_settings(args.weights) if args.weights else DecisionSettings()
    base = _with(base, describe_arguments=not args.no_arg_descriptions, embeddings=not args.no_embeddings)
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for model in models:
        plain = model == LARGE  # a base model: plain transcript, with worked format examples
        settings = base if not plain else _with(base, examples=True)
        with LocalEngine(model, EngineConfig(n_ctx=16384, max_sequences=16, n_threads=args.threads), name=model) as engine:
            if "scored" in modes:
                runs[f"{model}/scored"] = run_scored(engine, items, settings, cache, plain, refused, f"{model} scored")
            if args.own and model == SMALL:
                from _own_decisions import run_own

                runs[f"{SMALL}/own"] = run_own(engine, settings, cache)
            if args.app and model == SMALL:
                from _own_decisions import run_app

                runs[f"{SMALL}/app"] = run_app(engine, settings, cache)
            if "free" in modes and not plain:
                runs[f"{model}/free"] = run_free(engine, items, refused, f"{model} free")
    if args.record:
        with args.record.open("w") as f:
            for name, records in runs.items():
                for r in records:
                    f.write(json.dumps({"run": name, **{k: v for k, v in r.items() if k != "_item"}}, default=str) + "\n")
    fitted = None
    if args.fit and f"{SMALL}/scored" in runs:
        fitted = fit_settings(runs[f"{SMALL}/scored"], base)
        save_settings(fitted, args.fit)
        print(f"fitted weights written to {args.fit}; rerun with --weights {args.fit}", file=sys.stderr)
    report = {name: summary(records) for name, records in runs.items()}
    cascade = cascade_report(runs.get(f"{SMALL}/scored"), runs.get(f"{LARGE}/scored"))
    _print(report, cascade, refused)
    print(json.dumps({"bench": "bfcl", "items": len(items), "half": args.half, "limit": args.limit,
                      "refused": len(refused), "refused_reasons": refused, "results": report, "cascade": cascade,
                      "fitted": fitted is not None, "wall_s": round(time.perf_counter() - started, 1)}))


def _report_records(args: argparse.Namespace) -> None:
    """Tables and the cascade from ``--record`` files of earlier runs (same run names merge)."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for path in args.from_records:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            runs.setdefault(r.pop("run"), {})[r["id"]] = r
    records = {name: list(by_id.values()) for name, by_id in runs.items()}
    if args.fit and f"{SMALL}/scored" in records:
        from agents.decide import DecisionSettings

        data = B.data_dir(args.data) if args.data else B.install(B.default_cache(), args.wheel)
        items = {i.id: i for c in B.CATEGORIES for i in B.load_category(data, c)}
        for r in records[f"{SMALL}/scored"]:
            r["_item"] = items[r["id"]]
        base = load_settings(args.weights) if args.weights else DecisionSettings()
        save_settings(fit_settings(records[f"{SMALL}/scored"], base), args.fit)
        print(f"fitted weights written to {args.fit}", file=sys.stderr)
    if args.fit_calibration and f"{SMALL}/scored" in records:
        from agents.decide import DecisionSettings

        base = load_settings(args.weights) if args.weights else DecisionSettings()
        fitted = fit_calibration(records[f"{SMALL}/scored"] + records.get(f"{SMALL}/app", []), base, fresh_from=args.platt_from)
        save_settings(fitted, args.fit_calibration)
        print(f"calibration written to {args.fit_calibration}", file=sys.stderr)
        for name in (f"{SMALL}/scored", f"{SMALL}/own", f"{SMALL}/app"):
            if name in records:
                records[name] = reweigh(records[name], fitted)
    elif args.weights and not args.fit:  # the recorded decisions under other relevance/confidence weights
        records = {name: (reweigh(rows, load_settings(args.weights)) if name.endswith(("/scored", "/own", "/app")) else rows) for name, rows in records.items()}
    report = {name: summary(rows) for name, rows in records.items()}
    cascade = cascade_report(records.get(f"{SMALL}/scored"), records.get(f"{LARGE}/scored"))
    _print(report, cascade, {})
    print(json.dumps({"bench": "bfcl", "from_records": [str(p) for p in args.from_records], "results": report, "cascade": cascade}))


def _with(settings: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(settings, **changes)


def _print(report: dict[str, Any], cascade: dict[str, Any] | None, refused: dict[str, str]) -> None:
    print(f"\n{'run':<28} {'half':<5} {'simple':>8} {'multiple':>9} {'irrel.':>7} {'all':>6} {'ECE':>6} {'ECE*':>11} {'AUROC':>6} {'s/item':>7}")
    for name, halves in report.items():
        for half, r in halves.items():
            cats = r["categories"]
            cells = [f"{cats[c]['accuracy']:.1%}" if c in cats else "-" for c in B.CATEGORIES]
            print(f"{name:<28} {half:<5} {cells[0]:>8} {cells[1]:>9} {cells[2]:>7} {r['accuracy']:>6.1%} "
                  f"{r['ece']:>6.3f} {'%.3f-%.3f' % tuple(r['ece_if_calibrated']):>11} {r['auroc']:>6.3f} {r['s_per_item']:>7.2f}")
    print("ECE*: the ECE a perfectly calibrated model stating the same confidences would show (median-95th percentile)")
    if cascade:
        for half, r in cascade.items():
            print(f"cascade ({half}): threshold {r['threshold']:.2f}, escalated {r['escalated']:.1%}, accuracy {r['accuracy']:.1%} "
                  f"(small {r['small']:.1%}, large {r['large']:.1%}), gap recovered {r['recovered']:.0%}")
    if refused:
        print(f"refused functions: {len(refused)}; e.g. " + "; ".join(f"{k}: {v}" for k, v in list(refused.items())[:3]))


if __name__ == "__main__":
    main()
