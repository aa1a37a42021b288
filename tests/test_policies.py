"""Routing policies on plain data: cascade scores, the learned router, privacy, budgets, composition."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError, EgressRefusedError, RoutingError
from orchestrator.types import ChatMessage, GenerationRequest
from policies.budgets import BudgetPolicy, predict
from policies.cascade import (
    CascadePolicy,
    CascadeSettings,
    confidence,
    judge_answer,
    logprob_stats,
)
from policies.connectivity import ConnectivityPolicy
from policies.learned import (
    LearnedPolicy,
    LogisticRouter,
    calibrate_threshold,
    local_features,
)
from policies.privacy import PrivacyPolicy, check_labels, detect, iban_valid, luhn_valid
from policies.routing import Candidate, RouteRequest, Verdict, decide, fallback_order

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
@example([0.0, -10.0, -9.999999999999998], 0.25)  # neighbouring floats: their midpoint is the lower one
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


# ---------------------------------------------------------------- privacy detector



@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+work@example.co.uk tomorrow", {"email"}),
        ("call +44 20 7946 0958 now", {"phone"}),
        ("call (555) 123-4567 or 555.123.4567", {"phone"}),
        ("mon numéro: 06 12 34 56 78", {"phone"}),
        ("card 4111 1111 1111 1111 exp 12/27", {"payment_card"}),
        ("card 4111-1111-1111-1111", {"payment_card"}),
        ("amex 378282246310005", {"payment_card"}),
        ("card 4111 1111 1111 1111 2024", {"payment_card"}),  # a card followed by more digits
        ("ssn 123-45-6789", {"us_ssn"}),
        ("pay to GB82 WEST 1234 5698 7654 32 please", {"iban"}),
        ("IBAN DE89370400440532013000", {"iban"}),
        ("jane@example.com, 4111111111111111", {"email", "payment_card"}),
    ],
)
def test_detector_finds_private_data(text, expected):
    assert detect(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is 17 * 23?",
        "Meet on 2024-01-15 at 10:30, room 4.12",
        "card 4111 1111 1111 1112",  # fails Luhn
        "order 1234567890123",  # 13 digits, fails Luhn
        "version 1.2.3, port 8080, pi 3.14159",
        "not an ssn: 000-12-3456, 666-12-3456, 123-00-4567",
        "GB82 WEST 1234 5698 7654 33",  # IBAN with a wrong check
        "user@localhost has no domain",
        "the year 1999 and 2000 and 12345",
    ],
)
def test_detector_ignores_ordinary_text(text):
    assert detect(text) == frozenset()


def test_luhn_and_iban_checks():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710") and not luhn_valid("12a4")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765431") and not iban_valid("GB82")


@given(st.integers(min_value=10**12, max_value=10**19 - 1))
@settings(max_examples=200, deadline=None)
def test_any_luhn_valid_number_of_card_length_is_found(n):
    digits = str(n)
    # Append the check digit that makes it Luhn-valid, keep 13..19 digits.
    digits = digits[:18]
    check = next(d for d in "0123456789" if luhn_valid(digits + d))
    number = digits + check
    assert luhn_valid(number)
    assert "payment_card" in detect(f"number {number} here")
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    if len(groups[-1]) < 3:  # printed cards end with a group of 3 to 6 digits (4-4-5, 4-4-4-4-3)
        groups[-2:] = [groups[-2] + groups[-1]]
    grouped = " ".join(groups)
    assert "payment_card" in detect(grouped)


def test_labels_are_checked():
    assert check_labels(["medical", "client-data"]) == {"medical", "client-data"}
    with pytest.raises(ConfigError):
        check_labels(["Has Spaces"])


# ---------------------------------------------------------------- composition

SMALL = Candidate("small", "local", ttft_s=0.05, tok_s=100.0, energy_j_per_token=0.1, cost_per_token=0.0)
LARGE = Candidate("large", "local", ttft_s=0.2, tok_s=30.0, energy_j_per_token=0.5, cost_per_token=0.0)
REMOTE = Candidate("remote", "remote", ttft_s=0.3, tok_s=200.0, energy_j_per_token=0.0, cost_per_token=1e-5)
ALL = (SMALL, LARGE, REMOTE)


def _req(text: str = "hello", max_tokens: int = 64, **kw) -> RouteRequest:
    return RouteRequest.of(GenerationRequest(prompt=text, max_tokens=max_tokens), **kw)


def test_route_request_of_joins_messages_and_estimates_tokens():
    r = RouteRequest.of(GenerationRequest(messages=(ChatMessage(role="system", content="a" * 10), ChatMessage(role="user", content="b" * 10))),
                        labels=["medical"], task_type="chat")
    assert "a" * 10 in r.text and "b" * 10 in r.text
    assert r.prompt_tokens == 6 and r.labels == {"medical"} and r.output_tokens == 256


def test_privacy_without_grant_forbids_remote_and_reports_classes():
    d = decide(_req("write to bob@example.org"), ALL, [PrivacyPolicy()])
    assert d.backend == "small" and d.policy == "default"
    assert d.trail[0].policy == "privacy" and d.trail[0].forbidden == ("remote",)
    assert "egress is not granted" in d.trail[0].reason and d.data_classes == ("email",)
    assert "bob@example.org" not in d.model_dump_json()  # the data itself never enters a decision
    assert "remote" not in d.fallbacks


def test_privacy_with_grant_keeps_private_data_home():
    grant = PrivacyPolicy(allow_egress=True)
    clean = decide(_req("summarise the french revolution"), (REMOTE, SMALL), [grant])
    assert clean.backend == "remote" and clean.trail[0].action == "pass"
    private = decide(_req("my card is 4111 1111 1111 1111"), (REMOTE, SMALL), [grant])
    assert private.backend == "small" and "payment_card" in private.trail[0].reason
    labelled = decide(_req("plain words", labels=["medical"]), (REMOTE, SMALL), [grant])
    assert labelled.backend == "small" and labelled.data_classes == ("medical",)
    granted = decide(_req("plain words", labels=["medical"]), (REMOTE, SMALL), [PrivacyPolicy(True, frozenset({"medical"}))])
    assert granted.backend == "remote"


def test_private_data_with_remote_only_is_an_egress_refusal():
    with pytest.raises(EgressRefusedError) as err:
        decide(_req("ssn 123-45-6789"), (REMOTE,), [PrivacyPolicy(allow_egress=True), ConnectivityPolicy()])
    assert err.value.data_classes == ("us_ssn",)
    with pytest.raises(EgressRefusedError):
        decide(_req("nothing private"), (REMOTE,), [PrivacyPolicy()])


def test_connectivity_forbids_down_and_offline_remote():
    down = Candidate("remote", "remote", available=False)
    d = decide(_req(), (down, SMALL), [PrivacyPolicy(allow_egress=True), ConnectivityPolicy()])
    assert d.backend == "small" and "down: remote" in d.trail[1].reason
    off = decide(_req(), (REMOTE, SMALL), [PrivacyPolicy(allow_egress=True), ConnectivityPolicy(offline=True)])
    assert off.backend == "small" and "offline" in off.trail[1].reason
    with pytest.raises(RoutingError) as err:
        decide(_req(), (Candidate("small", available=False),), [PrivacyPolicy(), ConnectivityPolicy()])
    assert not isinstance(err.value, EgressRefusedError) and "down: small" in str(err.value)


def test_budget_predictions_and_decisions():
    r = _req("x" * 40, max_tokens=100)  # 10 prompt tokens, 100 output tokens
    assert predict("latency", SMALL, r) == pytest.approx(0.05 + 1.0)
    assert predict("energy", LARGE, r) == pytest.approx(0.5 * 110)
    assert predict("cost", REMOTE, r) == pytest.approx(1e-5 * 110)
    assert predict("latency", Candidate("new"), r) is None
    # LARGE needs 0.2 + 100/30 = 3.5 s: over a 2 s budget.
    d = decide(r, (LARGE, SMALL), [PrivacyPolicy(), BudgetPolicy(max_latency_s=2.0)])
    assert d.backend == "small" and d.trail[1].forbidden == ("large",) and "large latency 3.53s > 2s" in d.trail[1].reason
    fastest = decide(r, ALL, [PrivacyPolicy(allow_egress=True), BudgetPolicy(prefer="latency")])
    assert fastest.backend == "remote" and "lowest predicted latency" in fastest.reason
    cheapest = decide(r, ALL, [PrivacyPolicy(allow_egress=True), BudgetPolicy(max_cost=1e-2, prefer="energy")])
    assert cheapest.backend == "remote"  # zero joules on the device
    nobody = decide(r, (LARGE, SMALL), [PrivacyPolicy(), BudgetPolicy(max_latency_s=0.5)])
    assert nobody.backend == "small" and "no backend fits" in nobody.reason
    unmeasured = decide(r, (Candidate("new"), SMALL), [PrivacyPolicy(), BudgetPolicy(max_latency_s=2.0)])
    assert unmeasured.backend == "new" and "unmeasured: new" in unmeasured.trail[1].reason
    with pytest.raises(ConfigError):
        BudgetPolicy(max_latency_s=0)


def test_cascade_policy_plans_an_escalation():
    d = decide(_req(), ALL, [PrivacyPolicy(allow_egress=True), CascadePolicy(CascadeSettings(threshold=0.7))])
    assert (d.backend, d.escalate_to, d.escalate_below) == ("small", "large", 0.7) and d.policy == "cascade"
    alone = decide(_req(), (SMALL,), [PrivacyPolicy(), CascadePolicy()])
    assert alone.escalate_to is None and alone.trail[1].action == "pass"


def test_learned_policy_picks_by_probability():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [0.5], [2.5]])
    model = LogisticRouter().fit(X, [1, 1, 0, 0, 1, 0])  # long prompts: the small model fails
    policy = LearnedPolicy(model, threshold=0.5)
    easy = decide(_req(features=[0.0]), (SMALL, LARGE), [PrivacyPolicy(), policy])
    hard = decide(_req(features=[3.0]), (SMALL, LARGE), [PrivacyPolicy(), policy])
    assert easy.backend == "small" and ">=" in easy.reason
    assert hard.backend == "large" and "escalate" in hard.reason
    assert decide(_req(), (SMALL, LARGE), [PrivacyPolicy(), policy]).trail[1].reason == "the request carries no features"
    with pytest.raises(ConfigError):
        LearnedPolicy(LogisticRouter(), 0.5)


class _Picker:
    def __init__(self, name: str, backend: str | None, forbid: frozenset[str] = frozenset()) -> None:
        self.name, self.backend, self.forbid = name, backend, forbid
        self.saw: tuple[str, ...] = ()

    def consult(self, request, candidates):
        self.saw = tuple(c.name for c in candidates)
        if self.backend is not None:
            return Verdict("pick", f"{self.name} likes {self.backend}", backend=self.backend)
        if self.forbid:
            return Verdict("forbid", "no", forbidden=self.forbid)
        return Verdict("pass", "no opinion")


def test_composition_order_first_pick_wins_and_forbids_stick():
    first, second, third = _Picker("a", None, frozenset({"small"})), _Picker("b", "large"), _Picker("c", "small")
    d = decide(_req(), ALL, [PrivacyPolicy(), first, second, third])
    assert d.backend == "large" and d.policy == "b"
    assert second.saw == ("large",) and third.saw == ()  # privacy took remote, a took small; c never asked
    assert [s.policy for s in d.trail] == ["privacy", "a", "b"]
    with pytest.raises(ConfigError, match="not among the allowed"):
        decide(_req(), ALL, [PrivacyPolicy(), _Picker("rogue", "remote")])
    with pytest.raises(ConfigError):
        decide(_req(), (SMALL, SMALL), [PrivacyPolicy()])
    with pytest.raises(ConfigError):
        Verdict("pick", "who?")


def test_fallback_order_is_nearest_tier_first():
    assert fallback_order("b", ["a", "b", "c", "d"]) == ("c", "d", "a")
    assert fallback_order("d", ["a", "b", "c", "d"]) == ("c", "b", "a")
