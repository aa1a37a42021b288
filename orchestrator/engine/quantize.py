"""Requantize a GGUF model: a cheaper draft of a model, or a full-precision target.

The source is validated in pure Python first; the result is written next to the
destination and renamed into place only when llama.cpp succeeded and the new
file's header reads back, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import ConfigError, ModelFileError
from orchestrator.models.catalogue import resolve_model
from orchestrator.models.gguf import GGUFInfo, read_gguf

__all__ = ["QUANT_TYPES", "quantize_model"]

# Names a user types -> llama.cpp's llama_ftype.
QUANT_TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "bf16": 32,
    "q8_0": 7,
    "q6_k": 18,
    "q5_k_m": 17,
    "q5_k_s": 16,
    "q5_1": 9,
    "q5_0": 8,
    "q4_k_m": 15,
    "q4_k_s": 14,
    "q4_1": 3,
    "q4_0": 2,
    "q3_k_m": 12,
    "q2_k": 10,
}


def quantize_model(src: str | Path, dst: str | Path, qtype: str, *, threads: int | None = None, overwrite: bool = False,
                   progress: Callable[[int, int, str], None] | None = None) -> GGUFInfo:
    """Writes ``src`` (a catalogue name or a .gguf path) to ``dst`` in ``qtype``; returns the new header.

    ``progress(done, total, tensor_name)`` follows the tensors as llama.cpp writes them (a CLI draws
    it; this function never prints)."""
    key = qtype.lower()
    if key not in QUANT_TYPES:
        raise ConfigError(f"unknown quantization type {qtype!r}; choose one of {', '.join(QUANT_TYPES)}")
    source = resolve_model(src)
    read_gguf(source)  # a hostile or truncated source fails here, before llama.cpp opens it
    target = Path(dst).expanduser()
    if target.suffix != ".gguf":
        raise ConfigError(f"the destination must end in .gguf: {target}")
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} exists; pass overwrite=True (--force) to replace it")
    if target.resolve() == source.resolve():
        raise ConfigError("the destination is the source file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")

    from orchestrator.engine.native import quantize_file

    try:
        quantize_file(str(source), str(partial), QUANT_TYPES[key], threads or max(1, os.cpu_count() or 1), progress=progress)
        info = read_gguf(partial)
        if info.file_type.lower() != key:
            raise ModelFileError(target, f"asked for {qtype} but llama.cpp wrote {info.file_type}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return info.model_copy(update={"path": str(target)})
