"""Speculation's pure decisions, with plain data."""

from __future__ import annotations

import pytest

from orchestrator.engine.speculative import (
    Acceptance,
    PromptLookupDrafter,
    StepCostModel,
    choose_draft_length,
    expected_tokens,
)


def test_prompt_lookup_proposes_what_followed_the_last_ngram():
    d = PromptLookupDrafter(max_ngram=3)
    history = [1, 2, 3, 4, 5, 6, 9, 1, 2, 3]
    assert d.propose(history, 3) == [4, 5, 6]
    assert d.propose(history, 10) == [4, 5, 6, 9, 1, 2, 3]
    assert d.propose(history, 0) == []


def test_prompt_lookup_prefers_the_longest_and_latest_match():
    d = PromptLookupDrafter(max_ngram=2)
    # "7 8" occurs twice; the later occurrence wins. "8" alone would match position 1 too.
    assert d.propose([7, 8, 1, 7, 8, 2, 5, 7, 8], 1) == [2]
    assert d.propose([3, 8, 1, 9, 8], 2) == [1, 9]  # falls back to the unigram "8"


def test_prompt_lookup_without_a_match_proposes_nothing():
    assert PromptLookupDrafter().propose([1, 2, 3, 4], 4) == []
    assert PromptLookupDrafter().propose([], 4) == []


def test_expected_tokens():
    assert expected_tokens(0.0, 5) == 1.0
    assert expected_tokens(1.0, 5) == 6.0
    assert expected_tokens(0.5, 2) == pytest.approx(1.75)


def test_draft_length_follows_acceptance_and_cost():
    assert choose_draft_length(0.95, 0.1, 8) == 8  # cheap rows, good drafts: draft a lot
    assert choose_draft_length(0.2, 0.55, 8) == 0  # poor drafts and costly rows: do not draft
    mid = choose_draft_length(0.8, 0.55, 8)
    assert 1 <= mid < 8
    assert choose_draft_length(0.99, 2.0, 8) == 0  # rows costlier than a whole step never pay


def test_step_cost_model_fits_a_line_and_falls_back_to_its_prior():
    m = StepCostModel(prior=0.5)
    for _ in range(20):
        m.observe(1, 0.010)
    assert m.extra_row_cost() == 0.5  # all steps one row: no slope to fit
    for rows in (1, 2, 4, 8, 16) * 6:
        m.observe(rows, 0.006 + 0.004 * rows)
    assert m.extra_row_cost() == pytest.approx(0.004 / 0.010, rel=0.05)


def test_acceptance_forgets_old_drafts():
    a = Acceptance()
    a.update(60, 60)
    assert a.rate > 0.9
    for _ in range(10):
        a.update(8, 0)
    assert a.rate < 0.3


def test_speculative_sampling_preserves_the_target_distribution():
    """Whatever the draft proposes, accepted-or-resampled tokens follow the target's probabilities."""
    import numpy as np

    from orchestrator.engine.speculative import accept_or_resample

    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.15, 0.1])
    for draft in (0, 3):  # a likely and an unlikely proposal
        counts = np.zeros(4)
        for _ in range(40_000):
            token, _ = accept_or_resample(p, draft, rng)
            counts[token] += 1
        assert np.abs(counts / counts.sum() - p).sum() / 2 < 0.01  # total variation


def test_sampling_distribution_follows_the_chain_rules():
    import numpy as np

    from orchestrator.engine.speculative import sampling_distribution

    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert np.allclose(sampling_distribution(logits, temperature=1.0), [0.5, 0.3, 0.15, 0.05])
    assert np.allclose(sampling_distribution(logits, temperature=1.0, top_k=2), [0.625, 0.375, 0, 0])
    assert np.allclose(sampling_distribution(logits, temperature=1.0, top_p=0.75), [0.625, 0.375, 0, 0])
    assert np.allclose(sampling_distribution(logits, temperature=1.0, min_p=0.35), [0.625, 0.375, 0, 0])
    hot = sampling_distribution(logits, temperature=2.0)
    assert hot[3] > 0.05 and abs(hot.sum() - 1) < 1e-9
