"""Probe-load an untrusted GGUF in a child process before the application loads it.

llama.cpp is C++: a hostile or broken file that gets past the pure-Python header
check can still abort the process (a failed ``GGML_ASSERT`` is ``SIGABRT``) or
fault in a kernel. ``probe_load`` first validates the header in Python
(``ModelFileError``), then loads the file in ``python -m
orchestrator.engine._probe_child`` (weights memory-mapped, a 64-cell context, one
decoded token) under a time and address-space limit. A crash, a timeout or a
refusal becomes ``ModelLoadError`` naming the signal or reason; the child is
killed and reaped on every path out, so none is left behind.

Cost, measured on this 2-core machine: about 0.7 s for smollm2-135m and 1.1 s
for gemma3-270m (half of it is the child importing llama.cpp). Catalogue models
are pinned by sha256 and need no probe; ``needs_probe`` says which files do.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ConfigError, ModelLoadError
from orchestrator.models.catalogue import pinned_model
from orchestrator.models.gguf import GGUFInfo, read_gguf
from orchestrator.models.variants import trusted_variant

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ProbeMode",
    "ProbeResult",
    "check_loadable",
    "default_memory_limit",
    "needs_probe",
    "probe_load",
]

log = logging.getLogger(__name__)

ProbeMode = Literal["auto", "on", "off"]
DEFAULT_TIMEOUT_S = 120.0
_TAIL_BYTES = 4096  # of the child's stderr, for the reason
_TELLING = re.compile(r"GGML_ASSERT|GGML_ABORT|error|failed|Error")
_BUILD_PATH = re.compile(r"^\S*/(?=[^/\s]+:\d+:)")  # "/tmp/build/.../llama-vocab.cpp:2544: ..." -> "llama-vocab.cpp:2544: ..."
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # so the child imports this very orchestrator


class ProbeResult(BaseModel):
    """What the child saw when llama.cpp loaded the file."""

    model_config = ConfigDict(frozen=True)

    path: str
    description: str
    n_params: int
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    load_s: float  # inside the child: load, context and one token
    wall_s: float  # for the caller: the child's start and import included


def default_memory_limit(file_size: int) -> int:
    """Address space for the child: the mapped file twice over plus 1 GiB for llama.cpp and Python."""
    return 2 * file_size + (1 << 30)


def probe_load(
    path: str | os.PathLike[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_limit: int | None = None,
    info: GGUFInfo | None = None,
) -> ProbeResult:
    """Loads ``path`` with llama.cpp in a child process; ``ModelLoadError`` unless it loaded cleanly.

    A malformed header raises ``ModelFileError`` before any child starts.
    ``memory_limit`` caps the child's address space in bytes (default: see
    ``default_memory_limit``; 0 for none). ``info`` skips re-reading a header already read.
    """
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
    p = str(path)
    # 1. Pure-Python header check first: malformed files never reach llama.cpp, even in a child.
    info = info or read_gguf(p)
    limit = default_memory_limit(info.file_size) if memory_limit is None else memory_limit
    if limit < 0:
        raise ConfigError(f"memory_limit must be >= 0, got {limit}")
    cmd = [sys.executable, "-m", "orchestrator.engine._probe_child", p, *([str(limit)] if limit else [])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
    env["GGML_NO_BACKTRACE"] = "1"  # ggml would otherwise attach a debugger to print one
    # 2. Run the child with its output in files (bounded memory here, whatever it prints);
    #    subprocess.run kills and reaps it on a timeout and on any other way out.
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ModelLoadError(f"{p}: probe load timed out after {timeout_s:g} s (the child was killed)") from None
        except OSError as exc:
            raise ModelLoadError(f"{p}: cannot start the probe process: {exc}") from exc
        wall = time.perf_counter() - start
        stdout, reason = _tail(out), _reason(_tail(err))
    # 3. Map how the child ended to a result or a typed error.
    rc = proc.returncode
    if rc < 0:
        raise ModelLoadError(f"{p}: llama.cpp crashed loading this file ({_signal_name(-rc)}){_colon(reason)}")
    if rc != 0:
        raise ModelLoadError(f"{p}: llama.cpp could not load this file (exit {rc}){_colon(reason)}")
    try:
        facts = json.loads(stdout.strip().splitlines()[-1])
        return ProbeResult(path=p, wall_s=round(wall, 3), **{k: v for k, v in facts.items() if k != "ok"})
    except (ValueError, IndexError, TypeError) as exc:
        raise ModelLoadError(f"{p}: the probe process exited cleanly but reported nothing readable") from exc


def needs_probe(path: str | os.PathLike[str], mode: ProbeMode = "auto") -> bool:
    """``on``: always; ``off``: never; ``auto``: unless the file is a catalogue model matching its pinned
    sha256, or a weights variant the engine made from one (unchanged since, see ``trusted_variant``)."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"probe must be 'auto', 'on' or 'off', not {mode!r}")
    if mode != "auto":
        return mode == "on"
    return pinned_model(Path(path)) is None and trusted_variant(Path(path)) is None


def check_loadable(path: str | os.PathLike[str], mode: ProbeMode = "auto", *, info: GGUFInfo | None = None) -> ProbeResult | None:
    """Probes ``path`` when ``mode`` asks for it (see ``needs_probe``); the result, or None when skipped."""
    if not needs_probe(path, mode):
        return None
    result = probe_load(path, info=info)
    log.info("probe-loaded %s in a child process (%.2f s)", path, result.wall_s)
    return result


def _tail(f: IO[bytes]) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - _TAIL_BYTES))
    return f.read().decode("utf-8", "replace")


def _reason(text: str) -> str:
    """The most telling line of the child's stderr: llama.cpp's first error or failed assertion, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if _TELLING.search(line)]
    line = (telling or lines or [""])[0 if telling else -1]
    return _BUILD_PATH.sub("", line)[:500]


def _colon(reason: str) -> str:
    return f": {reason}" if reason else ""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

