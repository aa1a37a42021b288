"""``orchestrator models check FILE``: is this model file safe to load here?

    orchestrator models check ~/Downloads/some-model.gguf --json

reads the header in pure Python, says whether the file is a catalogue model matching
its pinned sha256, and probe-loads it in a child process (``orchestrator.engine.probe``)
so that a file that would crash llama.cpp is reported instead of crashing anything.
Exit status: 0 when it loads, 1 when the header or the probe fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.flag_errors import positive_float
from orchestrator.errors import ModelError

__all__ = ["add_parser", "check_model", "run"]


def add_parser(msub: Any) -> None:
    """Adds ``check`` to the ``models`` subcommands."""
    p = msub.add_parser("check", help="validate a GGUF file's header and probe-load it in a child process")
    p.add_argument("model", help="a .gguf path or a catalogue name")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS", help="probe time limit (default 120)")


def check_model(model: str, *, timeout_s: float | None = None) -> dict[str, Any]:
    """The report: ``header`` facts, the ``pinned`` catalogue name (or None), the ``probe`` facts, and ``error``."""
    from orchestrator.models.catalogue import pinned_model, resolve_model
    from orchestrator.models.gguf import read_gguf
    from orchestrator.engine.probe import DEFAULT_TIMEOUT_S, probe_load

    report: dict[str, Any] = {"model": model, "header": None, "pinned": None, "probe": None, "error": None}
    try:
        path = resolve_model(model)
        info = read_gguf(path)
        report["header"] = info.model_dump(
            include={"path", "file_size", "version", "architecture", "name", "n_params", "file_type",
                     "vocab_size", "context_length", "embedding_length", "block_count"},
        )  # fmt: skip
        known = pinned_model(Path(path))
        report["pinned"] = known.name if known else None
        report["probe"] = probe_load(path, info=info, timeout_s=timeout_s or DEFAULT_TIMEOUT_S).model_dump()
    except ModelError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    return report


def run(args: argparse.Namespace) -> int:
    report = check_model(args.model, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(report))
        return 0 if report["error"] is None else 1
    header, probe = report["header"], report["probe"]
    if header is not None:
        print(f"header:  {header['architecture']} {header['file_type']}, {header['n_params'] / 1e6:.0f}M parameters, "
              f"vocabulary {header['vocab_size']}, context {header['context_length']}, {header['file_size'] / 2**20:.0f} MiB")
        pinned = f"catalogue model {report['pinned']} (sha256 matches its pin)" if report["pinned"] else "not a catalogue model: untrusted"
        print(f"trust:   {pinned}")
    if probe is not None:
        print(f"probe:   loads ({probe['description']}; {probe['load_s']:.2f} s in the child, {probe['wall_s']:.2f} s in all)")
        return 0
    print(f"error:   {report['error']}", file=sys.stderr)
    return 1
