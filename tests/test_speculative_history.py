"""Drafts from a tenant's earlier requests, on the real smollm2-135m model: exact, and per tenant."""

from __future__ import annotations

import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.types import ChatMessage, GenerationRequest, ResponseFormat
from tests.exactness import same_or_near_tie
from tools.output_spec import format_grammar

pytestmark = pytest.mark.model

SYSTEM = "You turn a request into a weather query. Answer with JSON only."
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 24}, "unit": {"enum": ["celsius", "fahrenheit"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
GRAMMAR = format_grammar(ResponseFormat(type="json_schema", json_schema=SCHEMA))
TASKS = ["What's the weather in Paris this week?", "Forecast for Oslo, please.",
         "What's the weather in Paris this week?"]  # agents repeat themselves: the first one again


def request(text: str, mode: str, user: str | None) -> GenerationRequest:
    messages = (ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=text))
    return GenerationRequest(messages=messages, grammar=GRAMMAR, max_tokens=48, speculative=mode, user=user)


def history(done) -> tuple[int, int]:
    counts = done.speculative.sources.get("history")
    return (counts.drafted, counts.accepted) if counts is not None else (0, 0)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_history_drafts_are_exact_and_never_cross_tenants(smollm2_path):
    drafted = accepted = 0
    cfg = EngineConfig(n_ctx=4096, prefix_cache_slots=0, n_threads=1)  # one thread: steadier on a busy machine
    with LocalEngine(smollm2_path, cfg) as engine:
        for text in TASKS:
            plain = engine.generate(request(text, "off", None)).choices[0].token_ids
            prompt = engine.prompt_tokens(request(text, "off", None))
            for mode in ("prompt-lookup", "auto"):
                spec = engine.generate(request(text, mode, f"alice-{mode}"))
                assert same_or_near_tie(smollm2_path, prompt, spec.choices[0].token_ids, plain), (text, mode)
                d, a = history(spec)
                drafted, accepted = drafted + d, accepted + a
                s = spec.speculative
                assert sum(c.drafted for c in s.sources.values()) == s.drafted  # every draft has its source
                assert sum(c.accepted for c in s.sources.values()) == s.accepted
        anonymous = engine.generate(request(TASKS[0], "prompt-lookup", None))
        # bob asks what alice asked twice: her text is in the index, but not in bob's part of it
        bob = engine.generate(request(TASKS[0], "prompt-lookup", "bob"))
        again = engine.generate(request(TASKS[0], "prompt-lookup", "bob"))
        tenants = set(engine._spec.history.tenants())
    assert accepted > 0 and drafted >= accepted
    assert history(anonymous) == (0, 0)  # no tenant: its own text only
    assert history(bob) == (0, 0) and bob.choices[0].token_ids == again.choices[0].token_ids
    assert history(again)[1] > 0  # ...until bob has said it himself
    assert tenants == {"alice-prompt-lookup", "alice-auto", "bob"}  # the anonymous request left nothing behind
