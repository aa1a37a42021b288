"""``orchestrator doctor draft``: can DRAFT speak for TARGET, and will speculation with it pay?

Loads the pair (the vocabulary check refuses an incompatible draft with the
reason), measures the draft's acceptance on a few short prompts and the costs
that decide the gain (a target step, one more verify row, a draft step), and
predicts the speedup with the rule the engine uses to pick a draft length. It
also times the probe prompts with and without the draft, alternating, so the
prediction can be checked against a measurement.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.engine import LocalEngine
from orchestrator.types import GenerationRequest

__all__ = ["DraftReport", "diagnose_draft", "measure_draft", "probe_config"]

_PROMPTS = (
    "The history of the bicycle begins",
    "def fibonacci(n):\n",
    "Dear Anna,\n\nThis summer I",
    "Step 1: Mix the flour and water.",
)


class DraftReport(BaseModel):
    """What the doctor measured, and the speedup it predicts from that."""

    model_config = ConfigDict(frozen=True)

    target: str
    draft: str
    acceptance_rate: float
    target_step_s: float
    extra_row_cost: float  # one more verify row, as a fraction of a one-row target step
    draft_step_s: float
    draft_cost: float  # one draft step, as a fraction of a one-row target step
    best_draft_length: int
    predicted_speedup: float
    measured_speedup: float  # at the probe's fixed draft length, on the probe prompts


def probe_config(draft: str | Path, probe_length: int = 4) -> EngineConfig:
    """The engine settings the doctor measures a target with: ``draft`` as its draft model at a
    fixed draft length, and no prefix cache (every probe prompt is computed)."""
    return EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(draft), draft_length=probe_length)


def diagnose_draft(target: str | Path, draft: str | Path, *, probe_length: int = 4, tokens: int = 48) -> DraftReport:
    """Loads ``target`` with ``draft`` (``probe_config``) and measures the pair (``measure_draft``).
    Raises IncompatibleDraftError (naming the mismatch) for a pair that cannot work."""
    with LocalEngine(target, probe_config(draft, probe_length), name=str(target)) as engine:
        return measure_draft(engine, tokens=tokens)


def measure_draft(engine: LocalEngine, *, tokens: int = 48) -> DraftReport:
    """Measures an engine loaded with ``probe_config``: the draft's acceptance, the costs, the
    predicted and the measured speedup. ``ModelLoadError`` if its draft did not load."""
    if engine.draft_error:
        from orchestrator.errors import ModelLoadError

        raise ModelLoadError(engine.draft_error)
    # the costs the speculator sizes its drafts by, fixed when the engine starts: measured (or read)
    # now, so that the calibration is not timed as part of the first draft request
    costs = engine.speculator.fixed_costs()
    for mode in ("off", "draft"):  # one untimed request each: first-use costs are not the pair's
        engine.generate(GenerationRequest(prompt=_PROMPTS[0], max_tokens=4, speculative=mode))
    drafted = accepted = 0
    spent = {"off": 0.0, "draft": 0.0}
    made = {"off": 0, "draft": 0}
    for prompt in _PROMPTS:
        for mode in ("off", "draft"):  # alternating, so both see the same machine
            start = time.perf_counter()
            done = engine.generate(GenerationRequest(prompt=prompt, max_tokens=tokens, speculative=mode))
            spent[mode] += time.perf_counter() - start
            made[mode] += done.tokens
            if done.speculative is not None:
                drafted += done.speculative.drafted
                accepted += done.speculative.accepted
    one_row = spent["off"] / made["off"] if made["off"] else 0.0  # plain decoding: one step per token
    draft_step = engine.speculator.draft_seconds_per_token or 0.0
    alpha = accepted / drafted if drafted else 0.0
    row_cost, draft_cost = costs.extra_row_cost, costs.draft_cost
    best = costs.draft_length(alpha, 12, drafted_by_model=True, min_gain=1.0)
    speedup = costs.gain(alpha, best, drafted_by_model=True) if best else 1.0
    return DraftReport(
        target=engine.name,
        draft=str(engine.config.draft_model),
        acceptance_rate=round(alpha, 3),
        target_step_s=round(one_row, 4),
        extra_row_cost=round(row_cost, 3),
        draft_step_s=round(draft_step, 4),
        draft_cost=round(draft_cost, 3),
        best_draft_length=best,
        predicted_speedup=round(speedup, 2),
        measured_speedup=round((made["draft"] / spent["draft"]) / (made["off"] / spent["off"]), 2),
    )
