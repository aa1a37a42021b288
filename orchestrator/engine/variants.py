"""The weights a catalogue model runs in on this machine: measured once, then remembered.

``tune_model`` makes the candidate formats from the shipped file (llama.cpp's quantizer,
requantizing: each tensor is dequantized to F32 and quantized again), measures them
and the shipped file, decides with ``orchestrator.models.weight_choice.choose_weights``
and stores the record and the chosen file in the cache (``orchestrator.models.variants``):

1. a full-precision reference: the shipped file dequantized to F32;
2. fidelity: each file's next-token top-1 agreement and mean KL against the reference
   over a fixed English text (``fidelity.py``);
3. speed: median one-row and k-row decode steps of each file (``step_timing.py``);
4. the decision, the record, and clean-up (the reference and the candidates not chosen
   are deleted; the chosen file stays, marked trusted).

``resolve_weights`` is what ``LocalEngine`` calls: for ``weights="auto"`` and a catalogue
name it returns the stored choice, tuning first when there is none (about a minute
for smollm2-135m on two cores, once per machine). ``measured_step_costs`` hands the
stored step times of a file to the speculator's cost model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.fidelity import fidelity_tokens, measure_fidelity
from orchestrator.engine.native import NativeModel
from orchestrator.engine.quantize import quantize_model
from orchestrator.engine.step_timing import time_steps
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.models.catalogue import KNOWN_MODELS, get_known_model, pinned_model, resolve_model
from orchestrator.models.gguf import read_gguf
from orchestrator.models.variants import (
    Machine,
    TuneRecord,
    check_free_space,
    estimated_size,
    find_record,
    load_record,
    parse_variant_name,
    save_record,
    trust_variant,
    trusted_variant,
    variant_path,
    variants_dir,
    weights_override,
)
from orchestrator.models.weight_choice import (
    CANDIDATE_FORMATS,
    SHIPPED,
    DecisionRule,
    Fidelity,
    StepCosts,
    VariantMeasurement,
    candidate_formats,
    choose_weights,
)

__all__ = [
    "DEFAULT_ROWS",
    "ResolvedWeights",
    "TuneProgress",
    "measured_step_costs",
    "resolve_weights",
    "stored_record",
    "tune_model",
]

log = logging.getLogger(__name__)

TuneProgress = Callable[[int, int, str], None]
"""Called as ``progress(done, total, detail)`` after each step of a tune (the CLI draws it)."""

DEFAULT_ROWS = (1, 4, 8, 16)
_TEXT_TOKENS = 1536
_PROMPT_TOKENS = 32  # each timed sequence's context
_GIVEN = "given"
_tune_lock = threading.Lock()  # two engines starting at once tune a model once


class ResolvedWeights(BaseModel):
    """The file an engine loads for a model, which variant it is, and why."""

    model_config = ConfigDict(frozen=True)

    path: Path
    format: str  # "shipped", a variant format ("q8_0", ...), or "given" (a path used as given)
    reason: str


def tune_model(
    name: str,
    *,
    threads: int | None = None,
    reps: int = 5,
    timing_budget_s: float | None = 60.0,
    formats: Sequence[str] | None = None,
    text_tokens: int = _TEXT_TOKENS,
    rows: Sequence[int] = DEFAULT_ROWS,
    rule: DecisionRule | None = None,
    keep_all: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: TuneProgress | None = None,
) -> TuneRecord:
    """Measures the candidate formats of catalogue model ``name`` and stores the decision (see the module).

    ``reps`` timing repetitions, fewer when they pass ``timing_budget_s`` (one always runs).
    """
    started = time.perf_counter()
    known = get_known_model(name)
    rule = rule or DecisionRule()
    if 1 not in rows or rule.rows not in rows:
        raise ConfigError(f"rows must include 1 and the rule's {rule.rows}, got {list(rows)}")
    if reps < 1:
        raise ConfigError(f"reps must be at least 1, got {reps}")
    threads = threads or EngineConfig().threads
    shipped = resolve_model(name, cache_dir=cache_dir)
    info = read_gguf(shipped)
    fmts = candidate_formats(info.file_type, formats if formats is not None else CANDIDATE_FORMATS)
    folder = variants_dir(cache_dir)
    need = estimated_size(info.n_params, "f32") + sum(estimated_size(info.n_params, f) for f in fmts)
    check_free_space(folder, need, f"tuning the weights of {name}")
    steps = _Steps(progress, total=1 + len(fmts) + 1 + reps)

    reference = variant_path(name, known.sha256, "f32", cache_dir)
    files: dict[str, Path] = {SHIPPED: shipped}
    try:
        # 1. the full-precision reference, and the candidates, all made from the shipped file
        quantize_model(shipped, reference, "f32", overwrite=True)
        steps.advance("made the F32 reference")
        digests = {SHIPPED: known.sha256}
        for fmt in fmts:
            files[fmt], digests[fmt] = _make_variant(shipped, name, known.sha256, fmt, cache_dir)
            steps.advance(f"made {fmt.upper()}")
        fidelity, step_s, done_reps = _measure(reference, files, threads, text_tokens, rows, reps, timing_budget_s, steps)
    finally:
        _remove(reference)
    # 4. decide, store, clean up
    measured = {key: _measurement(key, path, digests[key], step_s[key], fidelity[key]) for key, path in files.items()}
    machine = Machine.here(threads)
    earlier = load_record(name, known.sha256, machine, cache_dir)  # a re-run keeps its choice unless clearly beaten
    choice = choose_weights(measured[SHIPPED], [measured[f] for f in fmts], rule, earlier.choice.format if earlier else None)
    record = TuneRecord(
        model=name, shipped_sha256=known.sha256, machine=machine, rule=rule,
        shipped=measured[SHIPPED], candidates=tuple(measured[f] for f in fmts), choice=choice,
        text_tokens=next(iter(fidelity.values())).positions, reps=done_reps, tune_s=time.perf_counter() - started,
        load=_load_per_cpu(),
    )
    save_record(record, cache_dir)
    for fmt in fmts:
        if fmt != choice.format and not keep_all:
            _remove(files[fmt])
    log.info("weights of %s on this machine: %s (%s)", name, choice.format, choice.reason)
    if record.contended:
        log.warning("the weights tune of %s ran on a busy machine (load %.1f per CPU): its timings may not hold; "
                    "`orchestrator models tune %s` measures again", name, record.load, name)
    return record


def _measure(
    reference: Path,
    files: dict[str, Path],
    threads: int,
    text_tokens: int,
    rows: Sequence[int],
    reps: int,
    budget_s: float | None,
    steps: _Steps,
) -> tuple[dict[str, Fidelity], dict[str, dict[int, float]], int]:
    """Steps 2 and 3 of a tune: each file's fidelity, its step times, and the timing repetitions run."""
    # 2. fidelity against the reference, every file over the same tokens
    fidelity = measure_fidelity(
        reference, files, threads=threads, max_tokens=text_tokens,
        on_chunk=lambda done, total: steps.note(f"measuring fidelity, {done}/{total} chunks of text"),
    )
    steps.advance("measured fidelity")
    # 3. step times, the files taking turns
    model = NativeModel(files[SHIPPED])
    try:
        prompt = fidelity_tokens(model, _PROMPT_TOKENS)
    finally:
        model.free()
    done_reps: list[int] = []

    def on_rep(done: int, total: int) -> None:
        done_reps.append(done)
        steps.advance(f"timed steps, repetition {done}/{total}")

    step_s = time_steps(files, prompt=prompt, rows=rows, reps=reps, threads=threads, budget_s=budget_s, on_rep=on_rep)
    return fidelity, step_s, len(done_reps)


def stored_record(name: str, threads: int | None = None, cache_dir: str | os.PathLike[str] | None = None) -> TuneRecord | None:
    """The stored tune record of catalogue model ``name`` on this machine, if any (hashes nothing new:
    the shipped file's sha256 is the catalogue's pin)."""
    known = get_known_model(name)
    return load_record(name, known.sha256, Machine.here(threads or EngineConfig().threads), cache_dir)


def resolve_weights(
    model: str | os.PathLike[str],
    weights: str = "auto",
    *,
    threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: TuneProgress | None = None,
) -> ResolvedWeights:
    """The file to load for ``model`` under ``EngineConfig.weights`` (see ``EngineConfig``).

    A catalogue name with ``auto`` gets the stored choice for this machine, tuned now if there
    is none; a tune that cannot run (disk space, a quantizer failure) logs why and keeps the
    shipped file. ``$ORCHESTRATOR_WEIGHTS=shipped`` turns ``auto`` into ``shipped``.
    """
    if weights not in ("auto", SHIPPED):
        return ResolvedWeights(path=resolve_model(Path(weights)), format=_GIVEN, reason="the weights file EngineConfig.weights names")
    catalogue = isinstance(model, str) and model in KNOWN_MODELS
    if not catalogue:
        return ResolvedWeights(path=resolve_model(model, cache_dir=cache_dir), format=_GIVEN, reason="a model file is used as given")
    name = str(model)
    shipped = resolve_model(name, cache_dir=cache_dir)
    if weights == SHIPPED or weights_override() == SHIPPED:
        why = "EngineConfig(weights='shipped')" if weights == SHIPPED else "$ORCHESTRATOR_WEIGHTS=shipped"
        return ResolvedWeights(path=shipped, format=SHIPPED, reason=f"the shipped file, as {why} asks")
    threads = threads or EngineConfig().threads
    with _tune_lock:
        record = stored_record(name, threads, cache_dir)
        if record is None:
            log.warning("choosing the weights format of %s for this machine: measuring once (about a minute)", name)
            try:
                record = tune_model(name, threads=threads, cache_dir=cache_dir, progress=progress)
            except (OrchestratorError, OSError) as exc:  # disk space, a quantizer failure: the engine still starts
                log.warning("weights tune of %s failed, using the shipped file: %s", name, exc)
                return ResolvedWeights(path=shipped, format=SHIPPED, reason=f"the shipped file: the weights tune failed ({exc})")
        return _chosen_file(record, shipped, cache_dir)


def measured_step_costs(model_path: str | os.PathLike[str], threads: int, cache_dir: str | os.PathLike[str] | None = None) -> StepCosts | None:
    """The stored step times of this weights file on this machine at ``threads`` threads, or None.

    Found for a catalogue model's shipped file and for the variants the tune made; any other
    file, one not tuned on this machine, or one whose tune ran under load, has none. The speculator starts its cost model
    from these instead of its constant prior (see ``Speculator``).
    """
    path = Path(model_path)
    machine = Machine.here(threads)
    parsed = parse_variant_name(path)
    measurement: VariantMeasurement | None = None
    if parsed is not None and trusted_variant(path, cache_dir) is not None:
        record = find_record(path, machine, cache_dir)
        measurement = record.measurement(parsed[2]) if record is not None else None
    else:
        known = pinned_model(path, cache_dir=cache_dir)
        record = load_record(known.name, known.sha256, machine, cache_dir) if known is not None else None
        measurement = record.shipped if record is not None else None
    if record is None or record.contended or measurement is None or len(measurement.step_s) < 2:
        return None  # a tune on a busy machine timed the contention, not the file: the engine calibrates itself
    return StepCosts(step_s=dict(measurement.step_s))


def _chosen_file(record: TuneRecord, shipped: Path, cache_dir: str | os.PathLike[str] | None) -> ResolvedWeights:
    """The chosen file of a record; a deleted variant is made again (the same bytes: same file, same llama.cpp)."""
    choice = record.choice
    if choice.format == SHIPPED:
        return ResolvedWeights(path=shipped, format=SHIPPED, reason=choice.reason)
    path = variant_path(record.model, record.shipped_sha256, choice.format, cache_dir)
    expected = record.measurement(choice.format)
    if trusted_variant(path, cache_dir) is None:
        log.info("making the %s variant of %s again", choice.format, record.model)
        _, digest = _make_variant(shipped, record.model, record.shipped_sha256, choice.format, cache_dir, reuse=False)
        if expected is None or digest != expected.sha256:
            _remove(path)
            return ResolvedWeights(path=shipped, format=SHIPPED, reason=(
                f"the shipped file: the {choice.format} variant made again differs from the one measured; "
                f"`orchestrator models tune {record.model}` measures again"))
    return ResolvedWeights(path=path, format=choice.format, reason=choice.reason)


def _make_variant(
    shipped: Path, name: str, sha256: str, fmt: str, cache_dir: str | os.PathLike[str] | None, *, reuse: bool = True
) -> tuple[Path, str]:
    """The ``fmt`` variant's path and sha256, made now unless a trusted one is there."""
    path = variant_path(name, sha256, fmt, cache_dir)
    digest = trusted_variant(path, cache_dir) if reuse else None
    if digest is not None:
        return path, digest
    quantize_model(shipped, path, fmt, overwrite=True)
    return path, trust_variant(path)


def _measurement(fmt: str, path: Path, sha256: str, step_s: dict[int, float], fidelity: Fidelity) -> VariantMeasurement:
    info = read_gguf(path)
    return VariantMeasurement(
        format=fmt, file_type=info.file_type, size=info.file_size, sha256=sha256, step_s=step_s, fidelity=fidelity,
    )


def _load_per_cpu() -> float | None:
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 2)
    except (OSError, AttributeError):  # no load average on this platform
        return None


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".trusted")):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s: %s", p, exc)


class _Steps:
    """Counts a tune's steps for its progress callback."""

    def __init__(self, progress: TuneProgress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def advance(self, detail: str) -> None:
        self.done += 1
        log.info("weights tune %d/%d: %s", self.done, self.total, detail)
        self.note(detail)

    def note(self, detail: str) -> None:
        """A new detail for the step under way (the count stays)."""
        if self.progress is not None:
            self.progress(self.done, self.total, detail)
