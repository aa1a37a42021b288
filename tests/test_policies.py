"""Routing policies on plain data: cascade scores, the learned router, privacy, budgets, composition."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from policies.cascade import CascadeSettings, confidence, judge_answer, logprob_stats
from policies.learned import LogisticRouter, calibrate_threshold, local_features

# ---------------------------------------------------------------- cascade


def test_confidence_is_the_geometric_mean_probability():
    assert confidence([0.0, 0.0]) == 1.0
    assert confidence([math.log(0.5), math.log(0.5)]) == pytest.approx(0.5)
    assert confidence([math.log(0.9), math.log(0.1)]) == pytest.approx(math.sqrt(0.09))
    assert confidence([]) == 0.0
    assert confidence([-math.inf, 0.0]) == 0.0


def test_confidence_refuses_impossible_logprobs():
    with pytest.raises(ConfigError):
        confidence([0.5])
    with pytest.raises(ConfigError):
        confidence([math.nan])


@given(st.lists(st.floats(min_value=-50, max_value=0), min_size=1, max_size=50), st.floats(min_value=-50, max_value=0))
@settings(max_examples=100, deadline=None)
def test_confidence_is_bounded_and_monotone(logprobs, extra):
    c = confidence(logprobs)
    assert 0.0 <= c <= 1.0
    # Raising one token's log-probability never lowers the confidence.
    better = list(logprobs)
    better[0] = max(better[0], extra)
    assert confidence(better) >= c - 1e-12


def test_logprob_stats_min_and_surprisal():
    s = logprob_stats([math.log(0.8), math.log(0.2)])
    assert s.tokens == 2
    assert s.min_token_prob == pytest.approx(0.2)
    assert s.mean_surprisal == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)


def test_judge_answer_thresholds_and_reasons():
    cfg = CascadeSettings(threshold=0.5, min_token_prob=0.05)
    sure = judge_answer([math.log(0.9)] * 4, cfg)
    assert not sure.escalate and ">=" in sure.reason and sure.confidence == pytest.approx(0.9)
    unsure = judge_answer([math.log(0.3)] * 4, cfg)
    assert unsure.escalate and "< threshold" in unsure.reason
    one_guess = judge_answer([0.0] * 20 + [math.log(0.01)], cfg)  # mean stays high
    assert one_guess.escalate and "token with probability" in one_guess.reason
    invalid = judge_answer([0.0], cfg, valid=False, invalid_reason="not JSON")
    assert invalid.escalate and "not JSON" in invalid.reason
    assert judge_answer(None, cfg).escalate
    assert judge_answer([], cfg).escalate


def test_cascade_settings_are_checked():
    with pytest.raises(ConfigError):
        CascadeSettings(threshold=1.5)


# ---------------------------------------------------------------- learned router


def _toy_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    logits = 2.0 * X[:, 0] - 1.5 * X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


def test_logistic_router_learns_the_direction_of_a_signal():
    X, y = _toy_data()
    router = LogisticRouter(l2=1.0).fit(X, y)
    w = router.weights_
    assert w[0] > 0.5 and w[1] < -0.5 and abs(w[2]) < abs(w[1])
    p = router.predict_proba(X)
    assert p.shape == (200,) and np.all((p > 0) & (p < 1))
    # Better than chance on its own training data, by a margin.
    assert np.mean((p > 0.5) == (y == 1)) > 0.75


def test_logistic_router_is_deterministic_and_round_trips_json():
    X, y = _toy_data()
    a = LogisticRouter().fit(X, y)
    b = LogisticRouter().fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    text = a.to_json()
    json.loads(text)
    c = LogisticRouter.from_json(text)
    assert np.allclose(c.predict_proba(X), a.predict_proba(X), rtol=0, atol=1e-12)
    assert c.predict_proba(X[0]).shape == (1,)


def test_logistic_router_stays_finite_on_separable_and_wide_data():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = [0, 0, 1, 1]
    p = LogisticRouter().fit(X, y).predict_proba(X)
    assert np.all(np.isfinite(p)) and p[0] < 0.5 < p[3]
    wide = np.random.default_rng(1).normal(size=(6, 50))
    assert np.all(np.isfinite(LogisticRouter().fit(wide, [0, 1, 0, 1, 0, 1]).predict_proba(wide)))


@pytest.mark.parametrize(
    ("X", "y"),
    [
        ([[1.0], [2.0]], [0, 1, 1]),  # lengths differ
        ([[1.0], [2.0]], [0, 2]),  # not binary
        ([[1.0], [2.0]], [1, 1]),  # one outcome only
        ([[1.0], [math.nan]], [0, 1]),  # NaN
        ([[[1.0]]], [0]),  # 3-D
    ],
)
def test_logistic_router_refuses_bad_training_data(X, y):
    with pytest.raises(ConfigError):
        LogisticRouter().fit(X, y)


def test_logistic_router_refuses_misuse():
    with pytest.raises(ConfigError, match="not fitted"):
        LogisticRouter().predict_proba([[1.0]])
    router = LogisticRouter().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ConfigError, match="1 features"):
        router.predict_proba([[1.0, 2.0]])
    with pytest.raises(ConfigError):
        LogisticRouter.from_json('{"format": "something else"}')
    with pytest.raises(ConfigError):
        LogisticRouter.from_json("not json")
    with pytest.raises(ConfigError):
        LogisticRouter(l2=0.0)


def test_calibrate_threshold_hits_the_share():
    scores = np.linspace(0.0, 1.0, 101)
    for share in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        t = calibrate_threshold(scores, share)
        assert int(np.sum(scores < t)) == round(share * 101)


@given(
    st.lists(st.floats(min_value=-10, max_value=10, allow_nan=False), min_size=1, max_size=200),
    st.floats(min_value=0.0, max_value=1.0),
)
@settings(max_examples=200, deadline=None)
def test_calibrate_threshold_never_escalates_more_than_asked(scores, share):
    t = calibrate_threshold(scores, share)
    below = sum(1 for s in scores if s < t)
    k = round(share * len(scores))
    assert below <= k
    if len(set(scores)) == len(scores):  # no ties: exact
        assert below == k


def test_calibrate_threshold_refuses_bad_input():
    with pytest.raises(ConfigError):
        calibrate_threshold([], 0.5)
    with pytest.raises(ConfigError):
        calibrate_threshold([0.1], 1.5)
    with pytest.raises(ConfigError):
        calibrate_threshold([math.nan], 0.5)


def test_local_features_layout():
    v = local_features(9, "code", ("chat", "code", "math"), [0.5, -0.5])
    assert v.tolist() == pytest.approx([math.log(10), 0.0, 1.0, 0.0, 0.5, -0.5])
    assert local_features(0, "other", ("chat",)).tolist() == [0.0, 0.0]
    with pytest.raises(ConfigError):
        local_features(-1, "chat", ("chat",))
