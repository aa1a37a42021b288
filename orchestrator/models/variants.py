"""Weight variants in the cache: their files, the tune records, and the machine they were measured on.

File work only (no llama.cpp). A variant is a catalogue model's shipped file in another
format (``orchestrator.models.weight_choice``), made once by the engine's quantizer and
kept in ``<cache>/variants/``:

- ``<name>-<sha16>.<format>.gguf``: the variant, keyed by the shipped file's sha256 (its
  content depends only on that file, the format and llama.cpp, whose version is part of
  the record's machine key); a ``.trusted`` sidecar remembers its sha256, size and mtime
  as written, so the engine needs no probe load for a file it made itself;
- ``<name>-<sha16>-<machine>.tune.json``: a ``TuneRecord``, the measurements and the
  decision on one machine (CPU model, thread count, llama-cpp-python version).

Records and sidecars are untrusted input: a record that does not parse, or whose
contents do not match its key, is ignored (and measured again); paths are never read
from a record, only built here from validated names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ConfigError, DiskSpaceError
from orchestrator.models.catalogue import cache_dir_for
from orchestrator.models.weight_choice import SHIPPED, DecisionRule, VariantMeasurement, WeightChoice

__all__ = [
    "WEIGHTS_ENV",
    "Machine",
    "TuneRecord",
    "check_free_space",
    "estimated_size",
    "find_record",
    "load_record",
    "parse_variant_name",
    "record_path",
    "save_record",
    "trust_variant",
    "trusted_variant",
    "variant_path",
    "variants_dir",
    "weights_override",
    "write_atomic",
]

log = logging.getLogger(__name__)

WEIGHTS_ENV = "ORCHESTRATOR_WEIGHTS"
"""``shipped`` makes ``EngineConfig(weights="auto")`` use the shipped files (tests and CI pin it)."""

_FORMAT_RE = re.compile(r"^[a-z0-9_]{2,8}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VARIANT_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<sha>[0-9a-f]{16})\.(?P<format>[a-z0-9_]{2,8})\.gguf$")
_CHUNK = 1 << 20
# Bytes per weight of what the tune writes (block sizes from ggml: Q8_0 34 bytes per 32, Q4_0 18 per 32).
_BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
_SLACK = 64 << 20  # headers, a file being renamed, the record


class Machine(BaseModel):
    """What a step-time measurement depends on besides the file."""

    model_config = ConfigDict(frozen=True)

    cpu: str
    threads: int = Field(ge=1)
    llama_cpp: str

    @classmethod
    def here(cls, threads: int) -> Machine:
        """This machine, running with ``threads`` threads."""
        try:
            version = metadata.version("llama_cpp_python")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return cls(cpu=_cpu_model(), threads=threads, llama_cpp=version)

    @property
    def key(self) -> str:
        """A short stable key for file names."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.cpu}, {self.threads} threads, llama-cpp-python {self.llama_cpp}"


class TuneRecord(BaseModel):
    """The measurements of one shipped model's variants on one machine, and the decision."""

    model_config = ConfigDict(frozen=True)

    model: str
    shipped_sha256: str
    machine: Machine
    rule: DecisionRule
    shipped: VariantMeasurement
    candidates: tuple[VariantMeasurement, ...]
    choice: WeightChoice
    text_tokens: int
    reps: int
    created: float = Field(default_factory=time.time)
    tune_s: float = 0.0
    load: float | None = None  # 1-minute load average per CPU when the tune ended: above ~1, timings are contended

    @property
    def contended(self) -> bool:
        """Measured while other work kept the CPUs busy: the step times (and so the choice) may not hold."""
        return self.load is not None and self.load > 1.0

    def measurement(self, fmt: str) -> VariantMeasurement | None:
        """The measurement of ``fmt`` (``shipped`` or a candidate format)."""
        if fmt == SHIPPED:
            return self.shipped
        return next((c for c in self.candidates if c.format == fmt), None)


def weights_override() -> str | None:
    """``shipped`` when ``$ORCHESTRATOR_WEIGHTS`` pins the shipped files; None when unset or ``auto``."""
    value = os.environ.get(WEIGHTS_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value != SHIPPED:
        raise ConfigError(f"${WEIGHTS_ENV} must be 'auto' or 'shipped', not {value!r}")
    return SHIPPED


def variants_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return cache_dir_for(cache_dir) / "variants"


def variant_path(name: str, sha256: str, fmt: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the ``fmt`` variant of the shipped file with ``sha256`` lives."""
    _check_name(name)
    if not _FORMAT_RE.match(fmt):
        raise ConfigError(f"not a weight format: {fmt!r}")
    return variants_dir(cache_dir) / f"{name}-{_sha16(sha256)}.{fmt}.gguf"


def parse_variant_name(path: Path) -> tuple[str, str, str] | None:
    """``(name, sha16, format)`` of a variant file's name, or None if it is not one."""
    m = _VARIANT_RE.match(path.name)
    return (m["name"], m["sha"], m["format"]) if m else None


def record_path(name: str, sha256: str, machine: Machine, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    _check_name(name)
    return variants_dir(cache_dir) / f"{name}-{_sha16(sha256)}-{machine.key}.tune.json"


def load_record(name: str, sha256: str, machine: Machine, cache_dir: str | os.PathLike[str] | None = None) -> TuneRecord | None:
    """The stored record for this model file and machine; None if absent, unreadable or not matching its key."""
    record = _read_record(record_path(name, sha256, machine, cache_dir), name, machine)
    return record if record is not None and record.shipped_sha256 == sha256 else None


def find_record(variant: Path, machine: Machine, cache_dir: str | os.PathLike[str] | None = None) -> TuneRecord | None:
    """The record on this machine of the shipped file a variant file (by its name) was made from."""
    parsed = parse_variant_name(variant)
    if parsed is None:
        return None
    name, sha16, _ = parsed
    record = _read_record(variants_dir(cache_dir) / f"{name}-{sha16}-{machine.key}.tune.json", name, machine)
    return record if record is not None and record.shipped_sha256.startswith(sha16) else None


def _read_record(path: Path, name: str, machine: Machine) -> TuneRecord | None:
    try:
        record = TuneRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        log.warning("ignoring the unreadable tune record %s: %s", path, str(exc).splitlines()[0])
        return None
    if record.model != name or record.machine != machine:
        log.warning("ignoring the tune record %s: it belongs to another model or machine", path)
        return None
    return record


def save_record(record: TuneRecord, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Writes the record atomically; returns its path."""
    path = record_path(record.model, record.shipped_sha256, record.machine, cache_dir)
    write_atomic(path, record.model_dump_json(indent=1).encode())
    return path


def estimated_size(n_params: int, fmt: str) -> int:
    """Bytes a file of ``n_params`` weights takes in ``fmt`` (an estimate for the disk check)."""
    return int(n_params * _BYTES_PER_WEIGHT.get(fmt.lower(), 4.0))


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """``DiskSpaceError`` unless ``folder`` (or its nearest existing parent) has ``needed`` bytes free, plus slack."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + _SLACK:
        raise DiskSpaceError(
            f"{what} needs about {(needed + _SLACK) / 2**20:.0f} MiB free in {folder}; {free / 2**20:.0f} MiB are free "
            f"(free some space, point $ORCHESTRATOR_CACHE_DIR elsewhere, or use EngineConfig(weights='shipped'))",
            folder=str(folder), needed=needed + _SLACK, free=free,
        )


def trust_variant(path: Path) -> str:
    """Hashes a variant file just written by the tune and records it as trusted; returns its sha256."""
    digest = _hash_file(path)
    st = path.stat()
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    write_atomic(_sidecar(path), json.dumps(record).encode())
    return digest


def trusted_variant(path: Path, cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The sha256 of a variant file in the cache that is unchanged since the tune wrote it (size and
    mtime, as the catalogue's sha256 sidecars check); None for any other file. The engine made a
    trusted variant itself from a verified file, so it needs no probe load."""
    try:
        if path.resolve().parent != variants_dir(cache_dir).resolve() or parse_variant_name(path) is None:
            return None
        st = path.stat()
        data = json.loads(_sidecar(path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("size") != st.st_size or data.get("mtime_ns") != st.st_mtime_ns:
        return None
    digest = data.get("sha256")
    return digest if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".trusted")


def _sha16(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ConfigError(f"not a sha256: {sha256!r}")
    return sha256[:16]


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(f"not a model name: {name!r}")


def _cpu_model() -> str:
    """The CPU's model string (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
