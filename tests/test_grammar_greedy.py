"""Greedy decoding under a grammar tries the argmax first; the result must equal the full chain's."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.sampling import Sampler
from orchestrator.types import GenerationRequest
from tools.grammar import schema_to_gbnf

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 24}, "days": {"type": "integer", "minimum": 1, "maximum": 14},
                   "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "days", "unit"],
    "additionalProperties": False,
}
PROMPTS = ["Weather in Paris for 3 days as JSON:", "Forecast JSON for Tokyo, a week, fahrenheit:", "JSON:"]


@pytest.mark.model
@pytest.mark.timeout(240)
def test_the_argmax_first_path_gives_the_chains_own_choice(smollm2_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    grammar = schema_to_gbnf(SCHEMA)
    refused = {"n": 0}
    real = Sampler._grammar_allows

    def counting(self: Sampler, token: int, logit: float) -> bool:
        ok = real(self, token, logit)
        refused["n"] += not ok
        return ok

    def run() -> list[tuple[int, ...]]:
        with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024, max_sequences=4, n_threads=2)) as engine:
            return [engine.generate(GenerationRequest(prompt=p, grammar=grammar, max_tokens=48)).choices[0].token_ids for p in PROMPTS]

    monkeypatch.setattr(Sampler, "_grammar_allows", counting)
    fast = run()
    monkeypatch.setattr(Sampler, "_grammar_allows", lambda self, token, logit: False)  # always the whole-vocabulary chain
    full = run()
    assert fast == full
    assert refused["n"] > 0  # the model's argmax was refused at some steps: both branches of the fast path ran
