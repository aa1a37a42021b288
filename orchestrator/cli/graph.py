"""The task-graph commands of the CLI: ``run``, ``resume``, ``runs`` and ``graph show``.

``orchestrator run sot "question"`` runs a built-in pattern on a local model with a durable
store; if it is killed, ``orchestrator resume RUN_ID`` finishes it. The run records how to
rebuild its graph (a factory reference and its arguments, as JSON), never pickled code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cli.flag_errors import FlagError, positive_int
from orchestrator.errors import StoreError
from orchestrator.paths import state_dir

__all__ = ["COMMANDS", "add_parsers", "build_from_factory", "default_store_path"]

_PATTERN_FACTORIES = {
    "sot": ("orchestrator.taskgraph.patterns:skeleton_of_thought", "question"),
    "map-reduce": ("orchestrator.taskgraph.patterns:map_reduce", "documents"),
    "vote": ("orchestrator.taskgraph.patterns:self_consistency", "question"),
}


def default_store_path() -> Path:
    """``runs.sqlite3`` in the state folder (``$ORCHESTRATOR_STATE_DIR``, else the platform's:
    ``~/.local/state/orchestrator`` on Linux; see ``orchestrator.paths``)."""
    return state_dir() / "runs.sqlite3"


_EXAMPLES = """\
examples:
  orchestrator run sot "Why is the sky blue?" --points 4
  orchestrator run map-reduce "The cat sat on the mat." "Dogs bark at night." --json
  orchestrator runs && orchestrator resume RUN_ID
"""


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="run a built-in graph pattern on a local model, durably", epilog=_EXAMPLES)
    run.add_argument("pattern", choices=sorted(_PATTERN_FACTORIES),
                     help="sot: skeleton-of-thought; map-reduce: summarise documents; vote: self-consistency")
    run.add_argument("text", nargs="+", help="the question (sot, vote) or the documents (map-reduce)")
    run.add_argument("--model", default=None, help="catalogue name or .gguf path (default: the embedded default)")
    run.add_argument("--points", type=positive_int, default=None, help="sot: number of outline points (default: the pattern's)")
    run.add_argument("--samples", type=positive_int, default=None, help="vote: number of samples (default: the pattern's)")
    run.add_argument("--run-id", default=None, help="the run's id in the store (default: a new random one)")
    run.add_argument("--larger", default=None, metavar="MODEL",
                     help="route each generation: --model first, escalated to MODEL below --cascade confidence")
    run.add_argument("--cascade", type=float, default=0.5, metavar="T", help="with --larger: the confidence threshold (0-1)")
    _common(run)

    resume = sub.add_parser("resume", help="finish a run that was interrupted or failed")
    resume.add_argument("run_id", help="the id of a stored run (see `orchestrator runs`)")
    resume.add_argument("--rerun", action="append", default=[], metavar="NODE",
                        help="re-run a side-effecting node that may have run before the crash (after checking)")
    _common(resume)

    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--store", type=Path, default=None, help=f"run store (default {default_store_path()})")
    runs.add_argument("--limit", type=positive_int, default=20, help="show at most this many runs, newest first")

    graph = sub.add_parser("graph", help="pictures of stored runs")
    gsub = graph.add_subparsers(dest="graph_command", required=True, metavar="SUBCOMMAND", help="one of:")
    show = gsub.add_parser("show", help="a stored run as Mermaid text, or an SVG/PNG picture with timings")
    show.add_argument("run_id", help="the id of a stored run")
    show.add_argument("--format", choices=("mermaid", "svg", "png"), default="mermaid", help="what to draw")
    show.add_argument("--out", type=Path, default=None, help="write to this file (required for png)")
    show.add_argument("--store", type=Path, default=None, help=f"run store (default {default_store_path()})")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, default=None, help=f"run store (default {default_store_path()})")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_from_factory(factory: str) -> tuple[Any, dict[str, Any]]:
    """Rebuilds a graph from a run's factory record: ``{"ref": NAME, "kwargs": {...},
    "backends": {"default": MODEL}}`` (or a bare ``NAME``). Only registered factories are used
    (``orchestrator.taskgraph.factories``); nothing the record names is imported."""
    from orchestrator.taskgraph.factories import build_from_record

    return build_from_record(factory)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.models.catalogue import DEFAULT_MODEL

    ref, input_name = _PATTERN_FACTORIES[args.pattern]
    kwargs: dict[str, Any] = {}
    if args.points is not None:
        kwargs["points"] = args.points
    if args.samples is not None:
        if args.samples > 64:  # the samples are one request's n
            raise FlagError("--samples", f"at most 64, got {args.samples}")
        kwargs["n"] = args.samples
    model = args.model or DEFAULT_MODEL
    if not 0.0 <= args.cascade <= 1.0:
        raise FlagError("--cascade", "must lie between 0 and 1")
    backend: Any = {"route": [model, args.larger], "cascade": args.cascade} if args.larger else model
    factory = json.dumps({"ref": ref, "kwargs": kwargs, "backends": {"default": backend}})
    graph, _ = build_from_factory(factory)
    value: Any = args.text if input_name == "documents" else " ".join(args.text)
    return _drive(args, {"default": backend}, lambda orch, **kw: orch.run_graph(
        graph, {input_name: value}, run_id=args.run_id, factory=factory, **kw))


def _resume(args: argparse.Namespace) -> int:
    from orchestrator.taskgraph.store import RunStore

    with RunStore(args.store or default_store_path()) as store:
        record = store.run(args.run_id)
    if not record.factory:
        raise StoreError(f"run {args.run_id!r} was started from code without a factory; resume it from that code with Runner.resume")
    graph, backends = build_from_factory(record.factory)
    return _drive(args, backends, lambda orch, **kw: orch.resume_graph(args.run_id, graph, rerun_uncertain=args.rerun, **kw))


def _drive(args: argparse.Namespace, models: dict[str, Any], start: Callable[..., Any]) -> int:
    """Loads the models, runs or resumes (``start(orch, **Orchestrator.run_graph options)``), prints
    the output (and the summary with --json).

    A backend is a model (catalogue name or path), or ``{"route": [small, larger], "cascade": T}``:
    a ``Router`` that runs ``small`` and escalates answers below confidence ``T`` to ``larger``."""
    import anyio

    from orchestrator.engine import EngineConfig
    from orchestrator.facade import Orchestrator
    from orchestrator.taskgraph.store import RunStore

    t0 = time.perf_counter()

    def on_event(event: Any) -> None:
        if args.quiet or event.kind in ("token", "node_started"):
            return
        detail = f" ({event.text})" if event.text and event.kind != "run_started" else ""
        print(f"[{time.perf_counter() - t0:6.2f}s] {event.kind.replace('_', ' ')} {event.node or event.run_id}{detail}", file=sys.stderr)

    wanted = [m for spec in models.values() for m in (spec["route"] if isinstance(spec, dict) else [spec])]

    async def drive() -> Any:
        # No model named (a graph of plain functions): the default model, loaded only if used.
        async with Orchestrator({m: m for m in wanted} or None, engine_config=EngineConfig(n_ctx=8192, max_sequences=16)) as orch:
            backends = {name: await _backend(orch, spec) for name, spec in models.items()}
            with RunStore(args.store or default_store_path()) as store:
                return await start(orch, models=[], backends=backends, store=store, on_event=on_event)

    result = anyio.run(drive)
    if args.json:
        print(json.dumps({**result.summary(), "output": result.output}, ensure_ascii=False))
    else:
        out = result.output
        print(out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, indent=2))
        for key, node in result.nodes.items():
            if "route" in node.info:
                r = node.info["route"]
                print(f"route {key}: {r['backend']} ({r['policy']}: {r['reason']})", file=sys.stderr)
        print(f"run {result.run_id}: {result.status} in {result.wall_s:.1f} s; prefill {result.prefill_computed} tokens computed, "
              f"{result.prefill_reused} reused; critical path {' -> '.join(result.critical_path)}", file=sys.stderr)
    return 0


async def _backend(orch: Any, spec: Any) -> Any:
    """The backend for one graph backend spec: a model of ``orch`` (loaded now), or a router over them."""
    from orchestrator.routing.router import tiered_router

    if not isinstance(spec, dict):
        return await orch.backend(spec)
    return tiered_router([await orch.backend(m) for m in spec["route"]], cascade=float(spec["cascade"]))


def _runs(args: argparse.Namespace) -> int:
    from orchestrator.taskgraph.store import RunStore

    with RunStore(args.store or default_store_path()) as store:
        rows = store.runs(args.limit)
    print(f"{'run id':<14} {'graph':<22} {'status':<12} {'started':<19}")
    for r in rows:
        print(f"{r.run_id:<14} {r.graph:<22} {r.status:<12} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.created))}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from orchestrator.taskgraph.export import show_run
    from orchestrator.taskgraph.store import RunStore

    with RunStore(args.store or default_store_path()) as store:
        text = show_run(store, args.run_id, args.format, args.out)  # writes --out itself
    print(args.out if args.out is not None else text)
    return 0


COMMANDS = {"run": _run, "resume": _resume, "runs": _runs, "graph": _graph}
