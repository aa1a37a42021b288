"""The ``orchestrator`` command line. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.cli import graph as cli_graph
from orchestrator.cli import models_check as cli_models_check
from orchestrator.cli import route as cli_route
from orchestrator.cli import serve as cli_serve
from orchestrator.cli import tune as cli_tune
from orchestrator.errors import ConfigError, OrchestratorError, RequestError
from orchestrator.types import ChatMessage, Completion, GenerationRequest, SamplingParams, TokenDelta

__all__ = ["completion_json", "main"]

log = logging.getLogger("orchestrator.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="On-device agent orchestrator.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for llama.cpp's own log)")
    sub = p.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list, inspect or fetch catalogue models")
    msub = models.add_subparsers(dest="models_command")
    msub.add_parser("list", help="known models and where they are installed")
    pull = msub.add_parser("pull", help="fetch a known model into the cache")
    pull.add_argument("name")
    info = msub.add_parser("info", help="GGUF metadata, read without loading the model")
    info.add_argument("model")
    info.add_argument("--json", action="store_true")
    cli_models_check.add_parser(msub)
    cli_tune.add_parser(msub)

    gen = sub.add_parser("generate", help="generate text with a local model")
    gen.add_argument("model", help="catalogue name or path to a .gguf file")
    gen.add_argument("prompt")
    gen.add_argument("--chat", action="store_true", help="format the prompt as a user message with the model's chat template")
    gen.add_argument("--system", help="system message (with --chat)")
    gen.add_argument("--max-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--min-p", type=float, default=0.0)
    gen.add_argument("--repeat-penalty", type=float, default=1.0)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--n", type=int, default=1, help="sample N completions in one batch, sharing the prompt's KV")
    gen.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    gen.add_argument("--grammar", type=Path, help="GBNF grammar file constraining the output")
    gen.add_argument("--n-ctx", type=int, default=4096, help="KV cells shared by all sequences")
    gen.add_argument("--kv-type", choices=["f16", "q8_0", "q4_0"], default="f16", help="KV cache type (K and V)")
    gen.add_argument(
        "--speculative", default="off", metavar="off|prompt-lookup|draft=MODEL|auto",
        help="speculative decoding: drafts verified in one batched step, output identical to plain greedy",
    )
    gen.add_argument("--json", action="store_true", help="print one JSON object")
    gen.add_argument("--logprobs", action="store_true", help="with --json: each generated token's log-probability")

    quant = sub.add_parser("quantize", help="requantize a GGUF model (llama.cpp's quantizer)")
    quant.add_argument("src", help="catalogue name or .gguf path")
    quant.add_argument("dst", help="output .gguf path")
    quant.add_argument("--type", required=True, help="f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, q4_1, q4_0, ...")
    quant.add_argument("--force", action="store_true", help="replace an existing destination")

    doctor = sub.add_parser("doctor", help="check a setup before using it")
    dsub = doctor.add_subparsers(dest="doctor_command", required=True)
    dd = dsub.add_parser("draft", help="can DRAFT draft for TARGET, and what speedup to expect")
    dd.add_argument("target")
    dd.add_argument("draft")
    dd.add_argument("--json", action="store_true")

    sub.add_parser("demo", help="a tour of the engine on the embedded default model")
    cli_graph.add_parsers(sub)
    cli_serve.add_parsers(sub)
    cli_route.add_parsers(sub)

    bench = sub.add_parser("bench", help="run a benchmark from bench/")
    bench.add_argument("--plot", metavar="FILE.png", help="draw the ratios of the bench's final JSON line as a bar chart (also after NAME)")
    bench.add_argument("name")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        logging.getLogger("orchestrator.llama_cpp").setLevel(logging.ERROR)
    try:
        return _COMMANDS[args.command](args)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _models(args: argparse.Namespace) -> int:
    from orchestrator.models.catalogue import list_models
    from orchestrator.cli.progress import ProgressBar

    if args.models_command == "pull":
        from orchestrator.models.pull import pull_model

        bar = ProgressBar(f"pull {args.name}")
        try:
            path = pull_model(args.name, progress=bar)
        finally:
            bar.close()
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
            raise ConfigError("--speculative draft=MODEL needs a model name or .gguf path")
    elif args.speculative not in ("off", "prompt-lookup", "auto"):
        raise ConfigError(f"--speculative must be off, prompt-lookup, draft=MODEL or auto, not {args.speculative!r}")
    request = _request_from_args(args)
    config = EngineConfig(
        n_ctx=args.n_ctx, type_k=args.kv_type, type_v=args.kv_type, max_sequences=max(16, args.n), draft_model=draft
    )
    with SyncOrchestrator({model_name(args.model): _prepared(args.model)}, engine_config=config) as orch:
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


def _prepared(model: str) -> Path:
    """Resolves a model with a progress bar: a first use may assemble it from parts or check its sha256."""
    from orchestrator.models.catalogue import resolve_model
    from orchestrator.cli.progress import ProgressBar

    bar = ProgressBar(f"preparing {model}")
    try:
        resolve_model(model, progress=bar)
    finally:
        bar.close()
    return cli_tune.chosen_weights(model).path  # a catalogue model's variant for this machine; a path as given


def _request_from_args(args: argparse.Namespace) -> GenerationRequest:
    try:
        grammar = args.grammar.read_text() if args.grammar else None
    except OSError as exc:
        raise ConfigError(f"cannot read grammar file: {exc}") from None
    try:
        sampling = SamplingParams(
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            min_p=args.min_p,
            seed=args.seed,
            repeat_penalty=args.repeat_penalty,
        )
        if args.chat:
            messages = [ChatMessage(role="user", content=args.prompt)]
            if args.system:
                messages.insert(0, ChatMessage(role="system", content=args.system))
            return GenerationRequest(
                messages=tuple(messages), max_tokens=args.max_tokens, sampling=sampling,
                stop=tuple(args.stop), grammar=grammar, n=args.n, speculative=args.speculative,
                logprobs=args.logprobs,
            )
        return GenerationRequest(
            prompt=args.prompt, max_tokens=args.max_tokens, sampling=sampling,
            stop=tuple(args.stop), grammar=grammar, n=args.n, speculative=args.speculative,
            logprobs=args.logprobs,
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "loc": ()}
        where = ".".join(str(x) for x in first.get("loc", ())) or "request"
        raise RequestError(f"invalid {where}: {first['msg']}") from None


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
    from orchestrator.cli.progress import Activity

    print(f"quantizing {args.src} to {args.type} ...", file=sys.stderr)
    with Activity(f"quantizing {args.src} to {args.type}"):  # a spinner and the time: llama.cpp reports no fraction
        info = quantize_model(args.src, args.dst, args.type, overwrite=args.force)
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
    print(f"acceptance:   {report.acceptance_rate:.0%} of drafted tokens (greedy, draft length 4)")
    print(
        f"costs:        target step {report.target_step_s * 1000:.1f} ms, one more verify row "
        f"{report.extra_row_cost:.2f} of it, a draft step {report.draft_cost:.2f} of it"
    )
    if report.best_draft_length:
        print(f"prediction:   {report.predicted_speedup:.2f}x at draft length {report.best_draft_length}")
    else:
        print("prediction:   no draft length pays off; speculation with this pair would switch itself off")
    print(f"measured:     {report.measured_speedup:.2f}x on the probe prompts (draft length 4)")
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
        raise ConfigError(f"no benchmark named {args.name!r} (known: {', '.join(known) or 'none; run from a source checkout'})")
    from orchestrator.cli.plots import plot_ratios, pop_plot_flag, run_capturing_json

    plot, rest = pop_plot_flag(args.args, args.plot)  # checked before a long run starts
    sys.argv = [str(script), *rest]
    if plot is None:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    result = run_capturing_json(lambda: runpy.run_path(str(script), run_name="__main__"))
    print(f"plot: {plot_ratios(result, plot)}", file=sys.stderr)
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
}
