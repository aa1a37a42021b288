"""Per-token log-probabilities from the local engine, on the real smollm2-135m model.

The reference is an independent computation: llama-cpp-python's high-level ``Llama``
evaluates prompt + generated tokens with logits for every position, and we take the
log-softmax of each row in numpy. llama.cpp's kernels differ slightly by batch shape,
so engine and reference agree to a tolerance, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.sampling import log_softmax_at
from orchestrator.types import GenerationRequest, SamplingParams
from tests.exactness import reference_llama

pytestmark = pytest.mark.model

PROMPT = "The capital of France is"
# Log-probabilities of the same token, engine against reference. With batches shaped alike
# (prompt at once, then one row per step) they agree to ~1e-3. With several choices decoded in
# one batch, or verified draft rows, the kernels' sums run in another order: measured gaps
# up to ~0.14 on smollm2.
TOL = 0.05
TOL_BATCHED = 0.3


def log_softmax(rows: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=1, keepdims=True))


def reference_log_softmax(model_path, prompt: list[int], generated: tuple[int, ...]) -> np.ndarray:
    """Rows of log-softmax: row i is the distribution of generated token i."""
    tokens = list(prompt) + list(generated)
    llm = reference_llama(model_path, max(512, len(tokens) + 8))
    try:
        # batches shaped like the engine's: the prompt at once, then one token per step
        llm.eval(list(prompt))
        for token in generated[:-1]:
            llm.eval([token])
        rows = np.array(llm.scores[len(prompt) - 1 : len(tokens) - 1], dtype=np.float64)
    finally:
        llm.close()
    return log_softmax(rows)


def prompt_tokens(engine: LocalEngine, text: str) -> list[int]:
    return engine._model.tokenize(text, add_special=True, parse_special=True)


def test_log_softmax_at_is_stable_and_exact():
    logits = np.array([1000.0, 1000.0, 998.0], dtype=np.float32)  # naive exp overflows
    z = 2 + math.exp(-2)
    assert log_softmax_at(logits, 0) == pytest.approx(-math.log(z))
    assert log_softmax_at(logits, 2) == pytest.approx(-2 - math.log(z))
    assert log_softmax_at(np.zeros(4), 3) == pytest.approx(-math.log(4))


def fresh(smollm2_path) -> LocalEngine:
    """An engine with nothing cached: the prompt is prefilled in one batch, like the reference.
    (The shared engine may hold this prompt's prefix from another test, computed in batches of
    another shape: then the same token's value moved by up to ~0.1 here.)"""
    return LocalEngine(smollm2_path, EngineConfig(n_ctx=512, max_sequences=4))


def test_greedy_logprobs_are_the_max_of_each_step(smollm2_path):
    with fresh(smollm2_path) as smollm2:
        r = smollm2.generate(GenerationRequest(prompt=PROMPT, max_tokens=12, logprobs=True))
        prompt = prompt_tokens(smollm2, PROMPT)
    c = r.choices[0]
    assert c.logprobs is not None and len(c.logprobs) == c.tokens == len(c.token_ids) > 0
    assert all(lp <= 0.0 for lp in c.logprobs)
    ref = reference_log_softmax(smollm2_path, prompt, c.token_ids)
    # greedy picks the most likely token, so its log-probability is the step's maximum
    np.testing.assert_allclose(c.logprobs, ref.max(axis=1), atol=TOL)
    np.testing.assert_allclose(c.logprobs, ref[np.arange(len(c.token_ids)), c.token_ids], atol=TOL)
    assert min(c.logprobs) < -0.01  # not a degenerate all-zero answer


def test_logprobs_absent_unless_requested(smollm2):
    r = smollm2.generate(GenerationRequest(prompt=PROMPT, max_tokens=4, n=2, sampling=SamplingParams(temperature=0.8, seed=1)))
    assert all(c.logprobs is None for c in r.choices)


def test_each_sampled_choice_has_its_own_raw_logprobs(smollm2_path):
    req = GenerationRequest(
        prompt=PROMPT, max_tokens=10, n=3, logprobs=True, sampling=SamplingParams(temperature=1.5, seed=7)
    )
    with fresh(smollm2_path) as engine:  # the shared engine's cached prefix moved a first token by 0.34
        r = engine.generate(req)
        prompt = prompt_tokens(engine, PROMPT)
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.logprobs is not None and len(c.logprobs) == c.tokens == len(c.token_ids)
        assert all(lp <= 0.0 for lp in c.logprobs)
        # the raw distribution's value, not the temperature-scaled one the token was drawn from
        ref = reference_log_softmax(smollm2_path, prompt, c.token_ids)
        picked = ref[np.arange(c.tokens), c.token_ids]
        np.testing.assert_allclose(c.logprobs, picked, atol=TOL_BATCHED)
        # ... and the check tells them apart: the temperature-scaled values are far off
        hot = log_softmax(ref / 1.5)
        assert np.abs(np.array(c.logprobs) - hot[np.arange(c.tokens), c.token_ids]).mean() > 3 * TOL_BATCHED
    assert len({c.token_ids for c in r.choices}) > 1  # seeded: the choices differ, so do their logprobs
    assert len({c.logprobs for c in r.choices}) > 1


def test_grammar_does_not_change_the_logprobs(smollm2_path):
    """A grammar may force a token the model did not prefer: its raw log-probability is then below the max."""
    grammar = 'root ::= " Berlin" | " Madrid"'
    with fresh(smollm2_path) as smollm2:
        r = smollm2.generate(GenerationRequest(prompt=PROMPT, max_tokens=4, grammar=grammar, logprobs=True))
        prompt = prompt_tokens(smollm2, PROMPT)
    c = r.choices[0]
    assert c.text in (" Berlin", " Madrid") and c.logprobs is not None and len(c.logprobs) == c.tokens
    ref = reference_log_softmax(smollm2_path, prompt, c.token_ids)
    np.testing.assert_allclose(c.logprobs, ref[np.arange(c.tokens), c.token_ids], atol=TOL)
    assert c.logprobs[0] < ref[0].max() - 1.0  # " Paris" was the model's clear choice


def test_stop_strings_keep_one_logprob_per_token(smollm2):
    r = smollm2.generate(GenerationRequest(prompt="1, 2, 3, 4,", max_tokens=16, stop=(" 7",), logprobs=True))
    c = r.choices[0]
    assert c.finish_reason == "stop" and c.logprobs is not None and len(c.logprobs) == c.tokens


def test_speculative_rows_get_logprobs_too(smollm2_path):
    """Prompt lookup accepts drafted tokens from verified rows; those tokens carry their logprobs as well."""
    source = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n"
    prompt_text = f"Copy the code exactly.\n\n{source}\nCopy:\n{source[:12]}"
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=2048, prefix_cache_slots=0)) as engine:
        plain = engine.generate(GenerationRequest(prompt=prompt_text, max_tokens=32, logprobs=True))
        spec = engine.generate(
            GenerationRequest(prompt=prompt_text, max_tokens=32, logprobs=True, speculative="prompt-lookup")
        )
    assert spec.speculative is not None and spec.speculative.accepted > 0
    a, b = plain.choices[0], spec.choices[0]
    assert b.logprobs is not None and len(b.logprobs) == b.tokens
    same = next((i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids)) if x != y), min(a.tokens, b.tokens))
    assert same >= 8  # copying: the outputs agree for a good stretch (they may split at a near-tie)
    # verified rows sit in multi-row batches (their shapes follow measured timings): the batched tolerance
    np.testing.assert_allclose(b.logprobs[:same], a.logprobs[:same], atol=TOL_BATCHED)
    # a row off by one would pair each token with its neighbour's distribution: far off
    assert np.abs(np.array(b.logprobs[1:same]) - np.array(a.logprobs[: same - 1])).max() > TOL_BATCHED
