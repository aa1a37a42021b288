"""Speculation's costs for one model pair on this machine: measured once, then kept.

Draft lengths decide the shape of every verify step, and batch shapes can move a
near-tie between two tokens. So the same request must meet the same decisions in
every run: the speculator decides by ``SpeculationCosts`` fixed when the engine
starts, never by live timings. The first engine on a machine measures them (a
few decode steps, well under a second for a small model) and stores them here;
every later engine with the same files, threads and llama.cpp reads them back.

The record is data, read as untrusted: a stored file that does not parse, holds
costs out of range, or names other files is ignored with a log line and measured
again. Costs measured while the machine is busy, or whose rounds disagree, are used
by that engine but not stored (``measure_costs``: a one-row step slowed by a moment of
contention made every ratio to it look small, drafts look cheap, and the stored record
then lost speed for every later engine). The record holds the table of step costs by rows
(``SpeculationCosts.step_costs``) and the draft model's measured acceptance
(``SpeculationCosts.draft_acceptance``);
``orchestrator models tune`` step times give the average cost of a row when they exist
(``variants.measured_step_costs``). Deleting the folder measures again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.speculative import SpeculationCosts
from orchestrator.models.catalogue import cache_dir_for
from orchestrator.models.variants import Machine, write_atomic
from orchestrator.models.weight_choice import StepCosts

__all__ = ["CostsRecord", "costs_path", "file_identity", "load_costs", "machine_busy", "measure_costs", "save_costs",
           "target_identity"]

log = logging.getLogger(__name__)

_MAX_RECORD_BYTES = 4096
_ROUNDS = 5
_STEADY_SPREAD = 1.3  # one-row steps of the rounds further apart than this: the machine was not steady


def file_identity(path: str | os.PathLike[str] | None) -> str:
    """A model file as the costs depend on it: its resolved path, size and change time ('' for none)."""
    if path is None:
        return ""
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"


def target_identity(path: str | os.PathLike[str], config: EngineConfig) -> str:
    """A target as its step costs depend on it: the file, and the attention its steps run
    (flash attention or not, the KV cache's types: at 1,400 cached tokens an 8-row step costs 3.9
    one-row steps with flash attention, 3.3 without, 4.8 with a q8_0 cache)."""
    return f"{file_identity(path)} attention={config.flash} kv={config.type_k}/{config.type_v}"


def machine_busy() -> bool:
    """Whether other work keeps the CPUs busy now (1-minute load average above one per CPU)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1) > 1.0
    except OSError:  # no load average on this platform: trust the measurement
        return False


class CostsRecord(BaseModel):
    """One stored calibration: what it was measured on, and the costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    draft: str
    machine: Machine
    extra_row_cost: float = Field(ge=0.0, le=4.0)
    draft_cost: float = Field(ge=0.0, le=16.0)
    draft_prefill_cost: float = Field(ge=0.0, le=16.0)
    step_costs: tuple[Annotated[float, Field(ge=0.0, le=64.0)], ...] = Field((), max_length=64)
    draft_acceptance: float = Field(0.0, ge=0.0, le=1.0)

    def costs(self) -> SpeculationCosts:
        return SpeculationCosts(self.extra_row_cost, self.draft_cost, self.draft_prefill_cost, self.step_costs,
                                self.draft_acceptance)


def costs_path(target: str, draft: str, machine: Machine, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    # "4": tables timed after a context, medians of rounds, and the draft's acceptance (older
    # records, timed on an empty cache with the least of 3 samples, are not looked at)
    key = hashlib.sha256(f"4\n{target}\n{draft}\n{machine.model_dump_json()}".encode()).hexdigest()[:20]
    return cache_dir_for(cache_dir) / "calibration" / f"speculation-{key}.json"


def load_costs(
    target: str, draft: str, machine: Machine, cache_dir: str | os.PathLike[str] | None = None
) -> SpeculationCosts | None:
    """The stored costs for these files on this machine, or None (none stored, or not to be trusted)."""
    path = costs_path(target, draft, machine, cache_dir)
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes")
        record = CostsRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:
        log.warning("ignoring the stored speculation costs %s (measuring again): %s", path, str(exc).splitlines()[0])
        return None
    if (record.target, record.draft, record.machine) != (target, draft, machine):
        log.warning("ignoring the stored speculation costs %s: they were measured for other files", path)
        return None
    return record.costs()


def save_costs(
    target: str, draft: str, machine: Machine, costs: SpeculationCosts, cache_dir: str | os.PathLike[str] | None = None
) -> None:
    """Stores the costs; a folder that cannot be written only costs the next engine a calibration."""
    record = CostsRecord(
        target=target, draft=draft, machine=machine, extra_row_cost=costs.extra_row_cost,
        draft_cost=costs.draft_cost, draft_prefill_cost=costs.draft_prefill_cost, step_costs=costs.step_costs,
        draft_acceptance=costs.draft_acceptance,
    )
    try:
        write_atomic(costs_path(target, draft, machine, cache_dir), record.model_dump_json(indent=1).encode())
    except OSError as exc:
        log.warning("could not store the speculation costs: %s", exc)


def measure_costs(
    time_target: Callable[[int], float],
    time_draft: Callable[[int], float] | None,
    *,
    rows: Sequence[int],
    max_rows: int,
    extra_row_cost: float | None = None,
    rounds: int = _ROUNDS,
) -> tuple[SpeculationCosts, bool]:
    """Speculation's costs from timed steps, and whether the machine was steady while they were timed.

    ``time_target(n)``: seconds of one target step of ``n`` rows; ``time_draft(n)``: of one draft
    step of ``n`` tokens (1: a draft token, 32: a prompt chunk), None without a draft model.
    Each round times every size once, between two one-row steps, and prices each size in
    the round's own one-row steps; the costs are the medians over the rounds, so a moment of
    contention moves one round, not the result. Sizes between those in ``rows`` are
    interpolated up to ``max_rows``. ``extra_row_cost``: the average cost of a row where the
    weights tune measured it, else from the 1-row and 8-row steps here. Steady: the rounds'
    one-row steps lie within ``_STEADY_SPREAD`` of one another.
    """
    ratios: dict[str, list[float]] = {}
    one_rows: list[float] = []
    for _ in range(rounds):
        before = time_target(1)
        timed = {str(n): time_target(n) for n in rows if n > 1}
        if time_draft is not None:
            timed |= {"d1": time_draft(1), "d32": time_draft(32) / 32}
        one_row = (before + time_target(1)) / 2
        one_rows.append(one_row)
        for key, seconds in timed.items():
            ratios.setdefault(key, []).append(seconds / one_row)
    cost = {key: statistics.median(values) for key, values in ratios.items()} | {"1": 1.0}
    table = tuple(float(np.interp(n, list(rows), [cost[str(r)] for r in rows])) for n in range(1, max_rows + 1))
    if extra_row_cost is None:
        extra_row_cost = StepCosts(step_s={1: 1.0, 8: cost["8"]}).extra_row_cost if "8" in cost else 0.0
    steady = max(one_rows) <= _STEADY_SPREAD * min(one_rows)
    if time_draft is None:
        return SpeculationCosts(extra_row_cost, step_costs=table).quantized(), steady
    return SpeculationCosts(extra_row_cost, cost["d1"], cost["d32"], table).quantized(), steady
