"""Speculation's pure decisions, with plain data."""

from __future__ import annotations

import pytest

from orchestrator.engine.prompt_lookup import Lookup, PromptLookupDrafter
from orchestrator.engine.speculative import (
    Acceptance,
    AcceptanceByMatch,
    StepCostModel,
    choose_draft_length,
    expected_tokens,
)


def test_prompt_lookup_proposes_what_followed_the_match():
    d = PromptLookupDrafter()
    history = [1, 2, 3, 4, 5, 6, 9, 1, 2, 3]
    assert d.propose(history, 3) == [4, 5, 6]
    assert d.lookup(history, 10) == Lookup([4, 5, 6, 9, 1, 2, 3], 3)
    assert d.propose(history, 0) == []


def test_prompt_lookup_prefers_the_longest_then_the_latest_match():
    d = PromptLookupDrafter()
    # "5 7 8" matches 3 tokens at the start; the later "7 8" only 2
    assert d.lookup([5, 7, 8, 1, 7, 8, 2, 5, 7, 8], 1) == Lookup([1], 3)
    d = PromptLookupDrafter()
    # two matches of equal length: the later one wins
    assert d.lookup([7, 8, 1, 7, 8, 2, 4, 7, 8], 1) == Lookup([2], 2)
    assert PromptLookupDrafter().lookup([3, 8, 1, 9, 8], 2) == Lookup([1, 9], 1)


def test_prompt_lookup_min_and_max_match():
    history = [3, 8, 1, 9, 8]
    assert PromptLookupDrafter(min_match=2).propose(history, 2) == []  # a 1-token match is not enough
    long = list(range(40)) + list(range(30))
    found = PromptLookupDrafter(max_match=8).lookup(long, 2)
    assert found == Lookup([30, 31], 8)  # compared only 8 tokens back


def test_prompt_lookup_follows_a_growing_history_and_a_new_one():
    d = PromptLookupDrafter()
    history = [1, 2, 3, 4]
    assert d.propose(history, 2) == []
    for token in (9, 1, 2):  # the generated text quotes the prompt
        history.append(token)
    assert d.propose(history, 2) == [3, 4]
    assert d.propose([6, 5, 6], 1) == [5]  # another history: the index starts again


def test_prompt_lookup_searches_only_its_window():
    history = [1, 2, 3] + [0] * 50 + [1, 2]
    assert PromptLookupDrafter().propose(history, 1) == [3]
    assert PromptLookupDrafter(window=20).propose(history, 1) == []


def test_prompt_lookup_without_a_match_proposes_nothing():
    assert PromptLookupDrafter().propose([1, 2, 3, 4], 4) == []
    assert PromptLookupDrafter().propose([], 4) == []


def test_acceptance_is_kept_per_match_length():
    a = AcceptanceByMatch()
    assert a.group(1) is not a.group(3)
    assert a.group(3) is a.group(4) and a.group(17) is a.group(500)
    assert a.group(1).rate < a.group(8).rate < a.group(20).rate  # the priors trust longer matches more
    for _ in range(10):
        a.group(20).update(8, 0)  # long matches turn out wrong for this text
    assert a.group(20).rate < 0.3
    assert a.group(2).rate == pytest.approx(0.5)  # other groups keep their own rate
    # with the cost of a row here, a long match drafts and a one-token match does not
    assert choose_draft_length(AcceptanceByMatch().group(20).rate, 0.55, 16) >= 2
    assert choose_draft_length(AcceptanceByMatch().group(1).rate, 0.55, 16) == 0


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
    for _ in range(60):  # sixty drafts rejected at their first token: old acceptance fades
        a.update(8, 0)
    assert a.rate < 0.3


def test_acceptance_counts_only_the_drafts_the_target_judged():
    """A draft of 16 rejected at its 3rd token: 2 accepted of 3 judged (the 13 after were never
    compared), so one early miss does not read as 14 misses and stop a good drafter."""
    a = Acceptance(prior_weight=0.0)
    a.update(16, 2)
    assert (a.drafted, a.accepted) == (3, 2)
    a.update(16, 16)  # accepted whole: all 16 judged
    assert (a.drafted, a.accepted) == (19, 18) and a.rate == pytest.approx(18 / 19)


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


def test_lookup_speedup_bound():
    from orchestrator.engine.prompt_lookup import lookup_speedup_bound
    from orchestrator.engine.speculative import SpeculationCosts

    def linear(row_cost):
        return SpeculationCosts(row_cost).step_cost

    quote = list(range(100, 140))
    # an output that quotes the prompt whole: with free rows, one step drafts 16 and keeps 17
    free = lookup_speedup_bound(quote, quote, linear(0.0))
    assert free > 8
    assert lookup_speedup_bound(quote, quote, linear(0.5)) < free  # rows that cost leave less to gain
    # an output the prompt never saw: nothing to draft, the bound is plain decoding
    assert lookup_speedup_bound(quote, list(range(500, 520)), linear(0.0)) == 1.0
    assert lookup_speedup_bound(quote, [], linear(0.3)) == 1.0
    # rows as dear as a whole step: drafting never beats decoding one token at a time
    assert lookup_speedup_bound(quote, quote, linear(1.0)) == pytest.approx(1.0, abs=0.05)
    # tiled costs (4 rows cost 2, then flat to 8 rows): drafts of 7 pay, the bound sits between
    tiled = SpeculationCosts(0.3, step_costs=(1.0, 1.9, 2.0, 2.0, 2.6, 2.6, 2.6, 2.6)).step_cost
    assert 1.0 < lookup_speedup_bound(quote, quote, tiled) < free
