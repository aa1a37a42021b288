"""Router evaluation metrics (policies.evaluation) on plain data."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import ConfigError
from policies.evaluation import DEFAULT_SHARES, apgr, auroc, escalation_weights, quality_curve


def brute_auroc(scores, correct) -> float:
    """Every (right, wrong) pair: 1 when the right one scores higher, 1/2 on a tie."""
    pos = [s for s, c in zip(scores, correct) if c]
    neg = [s for s, c in zip(scores, correct) if not c]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_known_values():
    assert auroc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5  # a constant score is random
    # 3 right, 2 wrong: pairs (0.9>0.3, 0.9>0.6, 0.4>0.3, 0.4<0.6, 0.7>0.3, 0.7>0.6) = 5/6
    assert auroc([0.9, 0.4, 0.7, 0.3, 0.6], [1, 1, 1, 0, 0]) == pytest.approx(5 / 6)


def test_auroc_counts_ties_as_half():
    # right 0.5 vs wrong 0.5 is a tie (1/2); right 0.9 beats both wrong ones; right 0.5 beats 0.1
    assert auroc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_auroc_matches_the_pairwise_definition_on_random_data_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 5, n).astype(float)  # few distinct values: many ties
        correct = rng.integers(0, 2, n)
        if correct.min() == correct.max():
            continue
        assert auroc(scores, correct) == pytest.approx(brute_auroc(scores, correct))


def test_auroc_refuses_bad_input():
    with pytest.raises(ConfigError):
        auroc([0.1, 0.2], [1, 1])  # one outcome only
    with pytest.raises(ConfigError):
        auroc([0.1, 0.2], [1, 0, 1])
    with pytest.raises(ConfigError):
        auroc([0.1, float("nan")], [1, 0])
    with pytest.raises(ConfigError):
        auroc([0.1, 0.2], [1, 2])


def test_escalation_weights_take_the_lowest_first_and_split_ties():
    assert escalation_weights([3.0, 1.0, 2.0, 4.0], 0.5).tolist() == [0.0, 1.0, 1.0, 0.0]
    # 1 task's worth out of a 3-way tie at the bottom: a third each
    w = escalation_weights([1.0, 1.0, 1.0, 5.0], 0.25)
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert escalation_weights([1.0, 2.0], 0.0).sum() == 0.0
    assert escalation_weights([1.0, 2.0], 1.0).tolist() == [1.0, 1.0]
    with pytest.raises(ConfigError):
        escalation_weights([1.0], 1.5)


def test_quality_curve_ends_at_each_tier_alone():
    small = [1, 0, 0, 1, 0]
    large = [1, 1, 0, 1, 1]
    curve = quality_curve([0.2, 0.1, 0.5, 0.9, 0.3], small, large, shares=(0.0, 0.2, 0.4, 1.0))
    # lowest first: task 1 (0.1, small wrong, large right), then task 0 (0.2, both right)
    assert curve.tolist() == pytest.approx([0.4, 0.6, 0.6, 0.8])


def test_apgr_of_an_oracle_follows_its_closed_form_and_beats_any_other_order():
    rng = np.random.default_rng(5)
    n = 200
    small = rng.random(n) < 0.3
    large = small | (rng.random(n) < 0.6)  # never worse than small: no harmful escalation
    helpful = float(np.mean(large & ~small))
    oracle = apgr(small.astype(float) - large.astype(float), small, large)
    # at share s the oracle has recovered min(s / helpful, 1) of the gap
    expected = np.mean([min(s / helpful, 1.0) for s in DEFAULT_SHARES])
    assert oracle == pytest.approx(expected)
    assert oracle > 0.75
    for _ in range(20):
        assert apgr(rng.random(n), small, large) <= oracle
    # a vanishing share of tasks needing the large tier: the oracle recovers (almost) everything
    small2 = np.ones(1000)
    small2[0] = 0
    large2 = np.ones(1000)
    assert apgr(small2 - large2, small2, large2) == pytest.approx(1.0 - 1 / 21, abs=1e-3)  # all but share 0


def test_apgr_of_random_routing_is_half_in_expectation():
    rng = np.random.default_rng(11)
    n = 150
    small = rng.random(n) < 0.3
    large = rng.random(n) < 0.9
    values = [apgr(rng.random(n), small, large) for _ in range(400)]
    assert np.mean(values) == pytest.approx(0.5, abs=0.02)
    # a constant score is the expectation itself, exactly
    assert apgr(np.zeros(n), small, large) == pytest.approx(0.5)


def test_apgr_needs_a_gap_to_recover():
    with pytest.raises(ConfigError, match="not better"):
        apgr([0.1, 0.2], [1, 0], [0, 1])
