"""Admission counts the choices a request will fan out to (smollm2-135m)."""

from __future__ import annotations

import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.types import GenerationRequest, SamplingParams

pytestmark = pytest.mark.model


def test_many_multi_choice_requests_at_once_stay_within_max_sequences(smollm2_path):
    """Each request's n choices start only when its prompt is prefilled; admitting on the live
    count alone once let 6 requests of n=3 fan out to 18 sequences on 8 slots (IndexError)."""
    cfg = EngineConfig(n_ctx=2048, max_sequences=8, prefix_cache_slots=2)
    prompts = [f"Question {i}: name a colour.\nAnswer:" for i in range(6)]
    with LocalEngine(smollm2_path, cfg) as engine:
        handles = [
            engine.submit(GenerationRequest(prompt=p, max_tokens=3, n=3, sampling=SamplingParams(temperature=0.7, seed=i)))
            for i, p in enumerate(prompts)
        ]
        results = [h.result(timeout=120) for h in handles]
        assert engine.stats().live_sequences == 0
    assert [len(r.choices) for r in results] == [3] * 6
    assert all(c.finish_reason in ("stop", "length") for r in results for c in r.choices)
