"""``orchestrator doctor draft``: can DRAFT speak for TARGET, and will speculation with it pay?

Loads the pair (the vocabulary check refuses an incompatible draft with the
reason) with the engine's own settings for it, and reads the costs the engine
sizes its drafts by (``Speculator.fixed_costs``, measured or stored): a verify
step's rows and a draft step. It times draft mode as users run it (the engine
choosing the draft lengths) against plain decoding on a few short prompts,
alternating, and measures how often the draft's greedy token is the target's
along the plain outputs. From the costs and that agreement it predicts the
speedup with the rule the engine uses to pick a draft length, so the prediction
can be checked against the measurement on the same texts.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.engine import LocalEngine
from orchestrator.engine.speculator import MAX_DRAFT
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
    acceptance_rate: float  # the draft's greedy token is the target's, along the target's own text
    target_step_s: float
    extra_row_cost: float  # one more verify row, as a fraction of a one-row target step
    draft_step_s: float
    draft_cost: float  # one draft step, as a fraction of a one-row target step
    best_draft_length: int
    predicted_speedup: float
    measured_speedup: float  # decode speed in draft mode as users run it, over plain, on the probe prompts
    request_speedup: float  # the same for whole requests (their prompt prefill, and the draft's, counted)
    tokens_per_target_step: float  # in those draft-mode requests


def probe_config(draft: str | Path) -> EngineConfig:
    """The engine settings the doctor measures a target with: ``draft`` as its draft model, and no
    prefix cache (every probe prompt is computed)."""
    return EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(draft))


def diagnose_draft(target: str | Path, draft: str | Path, *, tokens: int = 48) -> DraftReport:
    """Loads ``target`` with ``draft`` (``probe_config``) and measures the pair (``measure_draft``).
    Raises IncompatibleDraftError (naming the mismatch) for a pair that cannot work."""
    with LocalEngine(target, probe_config(draft), name=str(target)) as engine:
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
    steps = 0
    plain_texts: list[tuple[list[int], list[int]]] = []
    spent = {"off": 0.0, "draft": 0.0}
    decoding = {"off": 0.0, "draft": 0.0}
    made = {"off": 0, "draft": 0}
    for prompt in _PROMPTS:
        for mode in ("off", "draft"):  # alternating, so both see the same machine
            request = GenerationRequest(prompt=prompt, max_tokens=tokens, speculative=mode)
            start = time.perf_counter()
            done = engine.generate(request)
            spent[mode] += time.perf_counter() - start
            made[mode] += done.tokens
            decoding[mode] += done.timings.decode_tokens / done.timings.decode_tok_s if done.timings.decode_tok_s else 0.0
            if done.speculative is not None:
                steps += done.speculative.target_steps
            if mode == "off":
                plain_texts.append((engine.prompt_tokens(request), list(done.choices[0].token_ids)))
    one_row = spent["off"] / made["off"] if made["off"] else 0.0  # plain decoding: one step per token
    alpha = engine.speculator.draft_agreement(plain_texts)  # on the very texts timed
    best = costs.draft_length(alpha, MAX_DRAFT, drafted_by_model=True, min_gain=1.0)
    speedup = costs.gain(alpha, best, drafted_by_model=True) if best else 1.0
    return DraftReport(
        target=engine.name,
        draft=str(engine.config.draft_model),
        acceptance_rate=round(alpha, 3),
        target_step_s=round(one_row, 4),
        extra_row_cost=round(costs.extra_row_cost, 3),
        draft_step_s=round(engine.speculator.draft_seconds_per_token or 0.0, 4),
        draft_cost=round(costs.draft_cost, 3),
        best_draft_length=best,
        predicted_speedup=round(speedup, 2),
        measured_speedup=round(decoding["off"] / decoding["draft"], 2) if decoding["draft"] else 0.0,
        request_speedup=round(spent["off"] / spent["draft"], 2),
        tokens_per_target_step=round(made["draft"] / steps, 2) if steps else 0.0,
    )
