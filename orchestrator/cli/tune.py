"""``orchestrator models tune NAME``: measure which weight format runs best here, and say why.

    orchestrator models tune smollm2-135m            # about a minute on two cores
    orchestrator models tune smollm2-135m --reps 3 --json

makes the candidate formats from the shipped file, measures fidelity and step times,
stores the decision in the cache (``orchestrator.engine.variants``) and prints the
figures. ``weights_summary`` is the line ``orchestrator models`` prints per model, and
``chosen_weights`` resolves a model's weights for the CLI (the demo, ``generate``), with
progress on a terminal when the first use tunes.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, TextIO

from orchestrator.cli.flag_errors import positive_float, positive_int
from orchestrator.cli.progress import StepProgress

__all__ = ["TuneBar", "add_parser", "chosen_weights", "prepared_path", "run", "weights_line", "weights_summary"]


def add_parser(msub: Any) -> None:
    """Adds ``tune`` to the ``models`` subcommands."""
    p = msub.add_parser("tune", help="measure which weight format of a catalogue model runs best on this machine")
    p.add_argument("name", help="a catalogue model name")
    p.add_argument("--threads", type=positive_int, default=None, help="threads to measure with (default: the engine's)")
    p.add_argument("--reps", type=positive_int, default=5, help="timing repetitions (medians; default 5)")
    p.add_argument("--timing-budget", type=positive_float, default=60.0, metavar="SECONDS",
                   help="start no timing repetition after this many seconds (default 60; one always runs)")
    p.add_argument("--formats", default=None, help="candidate formats, comma-separated (default: q8_0,q4_0,f16)")
    p.add_argument("--keep-all", action="store_true", help="keep every candidate file, not only the chosen one")
    p.add_argument("--json", action="store_true", help="print the stored record as one JSON object")


class TuneBar:
    """A tune's ``progress(done, total, detail)`` drawn as a ``StepProgress`` (on a terminal only).

    The one place the CLI turns tune progress into a drawing: swap the drawing here."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._steps: StepProgress | None = None

    def __call__(self, done: int, total: int, detail: str) -> None:
        if self._steps is None:
            self._steps = StepProgress(self.label, total, stream=self.stream)
        self._steps.advance(detail, steps=done - self._steps.done)

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()


def run(args: argparse.Namespace) -> int:
    from orchestrator.engine.variants import tune_model

    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()] if args.formats else None
    bar = TuneBar(f"tuning {args.name}")
    try:
        record = tune_model(args.name, threads=args.threads, reps=args.reps, timing_budget_s=args.timing_budget, formats=formats,
                            keep_all=args.keep_all, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(record.model_dump_json())
        return 0
    rows = record.rule.rows
    print(f"{record.model} on {record.machine.describe()}: {record.text_tokens} tokens of text, {record.reps} timing repetitions")
    print(f"{'weights':<16} {'size':>8} {'1 row tok/s':>12} {f'{rows} rows tok/s':>13} {'x shipped':>10} {'top-1':>7} {'mean KL':>9}")
    base = record.shipped.tok_s(rows)
    for m in (record.shipped, *record.candidates):
        label = f"{m.file_type}" + (" (shipped)" if m.format == "shipped" else "")
        print(f"{label:<16} {m.size / 2**20:>4.0f} MiB {m.tok_s(1):>12.0f} {m.tok_s(rows):>13.0f} {m.tok_s(rows) / base:>9.2f}x "
              f"{m.fidelity.top1:>7.1%} {m.fidelity.mean_kl:>9.4f}")
    for v in record.choice.verdicts:
        print(f"  {v.format}: {'within the bound' if v.passed else 'refused'}: {v.reason}")
    print(f"chosen: {record.choice.format} ({record.choice.reason})")
    if record.contended:
        print(f"note: measured under load ({record.load:.1f} per CPU); run it again on a quiet machine for timings that hold")
    return 0


def weights_summary(name: str) -> str:
    """Which weights ``EngineConfig(weights="auto")`` uses for catalogue model ``name`` here, and why."""
    from orchestrator.engine.variants import stored_record
    from orchestrator.models.variants import weights_override

    if weights_override() == "shipped":
        return "shipped file ($ORCHESTRATOR_WEIGHTS=shipped)"
    record = stored_record(name)
    if record is None:
        return f"shipped file until measured: the first engine measures once (or `orchestrator models tune {name}`)"
    when = datetime.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d")
    load = f", under load {record.load:.1f} per CPU" if record.contended else ""
    chosen = "shipped file" if record.choice.format == "shipped" else f"{record.choice.file_type} variant"
    return f"{chosen}, measured {when}{load}: {record.choice.reason}"


def chosen_weights(model: str, stream: TextIO | None = None) -> Any:
    """``resolve_weights(model, "auto")`` with a progress bar while a first use tunes (a ``ResolvedWeights``)."""
    from orchestrator.engine.variants import resolve_weights

    bar = TuneBar(f"choosing the weights of {model} for this machine (once)", stream)
    try:
        return resolve_weights(model, "auto", progress=bar)
    finally:
        bar.close()



def prepared_path(model: str) -> Any:
    """The file to load for ``model``, with progress bars: a first use may assemble a catalogue model
    from parts or check its sha256, then choose its weights for this machine (a path is used as given)."""
    from orchestrator.cli.progress import ProgressBar
    from orchestrator.models.catalogue import resolve_model

    bar = ProgressBar(f"preparing {model}")
    try:
        resolve_model(model, progress=bar)
    finally:
        bar.close()
    return chosen_weights(model).path


def weights_line(model: str, stream: TextIO | None = None) -> str:
    """One line for people: the weights ``model`` runs from here and the measured reason (tunes on first use)."""
    chosen = chosen_weights(model, stream)
    if chosen.format == "given":
        return f"{chosen.path.name} ({chosen.reason})"
    what = "the shipped file" if chosen.format == "shipped" else f"the {chosen.format.upper()} variant, chosen on this machine"
    reason = chosen.reason.removeprefix(f"{what}: ")  # a reason may already name the file
    return f"{what}: {reason}"
