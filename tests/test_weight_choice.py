"""The weights decision, with plain data: which variant wins, which are refused and why."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.models.weight_choice import (
    DecisionRule,
    Fidelity,
    StepCosts,
    VariantMeasurement,
    candidate_formats,
    choose_weights,
)


def measured(fmt: str, file_type: str, tok_s: dict[int, float], top1: float, kl: float) -> VariantMeasurement:
    """A measurement from aggregate tok/s by rows (a step of r rows takes r / tok_s seconds)."""
    return VariantMeasurement(
        format=fmt, file_type=file_type, size=100 << 20, sha256="0" * 64,
        step_s={r: r / t for r, t in tok_s.items()}, fidelity=Fidelity(top1=top1, mean_kl=kl, positions=1500),
    )


# The issue's figures: smollm2-135m on a 2-core x86 machine (tok/s at 1 / 8 / 16 sequences,
# top-1 agreement and mean KL against the F32 dequantization of the shipped Q4_1).
SHIPPED = measured("shipped", "Q4_1", {1: 156, 8: 282, 16: 309}, 0.961, 0.0036)
Q8_0 = measured("q8_0", "Q8_0", {1: 155, 8: 427, 16: 453}, 0.959, 0.0047)
Q4_0 = measured("q4_0", "Q4_0", {1: 176, 8: 354, 16: 411}, 0.677, 0.30)
F16 = measured("f16", "F16", {1: 122, 8: 321, 16: 401}, 0.961, 0.0036)


def test_the_issues_measurements_choose_q8_0_and_refuse_the_others_with_reasons():
    choice = choose_weights(SHIPPED, [Q8_0, Q4_0, F16])
    assert choice.format == "q8_0" and choice.file_type == "Q8_0"
    assert "1.51x" in choice.reason and "95.9%" in choice.reason and "0.0047" in choice.reason
    verdicts = {v.format: v for v in choice.verdicts}
    assert verdicts["q8_0"].passed
    assert not verdicts["q4_0"].passed and "mean KL 0.3000" in verdicts["q4_0"].reason
    # F16 is as faithful but only 1.14x at 8 rows (below the margin), and slower for one sequence
    assert not verdicts["f16"].passed and "margin" in verdicts["f16"].reason


def test_the_fastest_variant_within_the_bound_wins():
    faster = measured("f16", "F16", {1: 150, 8: 500, 16: 600}, 0.960, 0.0040)
    assert choose_weights(SHIPPED, [Q8_0, faster]).format == "f16"
    assert choose_weights(SHIPPED, [faster, Q8_0]).format == "f16"  # order does not matter


@pytest.mark.parametrize(
    ("top1", "kl", "why"),
    [
        (0.961, 0.0036 * 1.5 + 1e-6, "mean KL"),  # just over 1.5x the shipped file's KL
        (0.9505, 0.0036, "top-1"),  # just over 1 point below the shipped file's agreement
    ],
)
def test_a_variant_past_either_quality_bound_is_refused(top1, kl, why):
    cand = measured("q8_0", "Q8_0", {1: 160, 8: 600, 16: 700}, top1, kl)
    choice = choose_weights(SHIPPED, [cand])
    assert choice.format == "shipped" and why in choice.verdicts[0].reason


def test_the_bounds_themselves_pass():
    at_bound = measured("q8_0", "Q8_0", {1: 160, 8: 600, 16: 700}, 0.9515, 0.0036 * 1.5)
    assert choose_weights(SHIPPED, [at_bound]).format == "q8_0"


def test_a_variant_needs_a_clear_margin_and_must_not_slow_one_sequence_much():
    within_noise = measured("q8_0", "Q8_0", {1: 156, 8: 282 * 1.10, 16: 320}, 0.961, 0.0036)
    slow_single = measured("f16", "F16", {1: 156 * 0.8, 8: 500, 16: 600}, 0.961, 0.0036)
    choice = choose_weights(SHIPPED, [within_noise, slow_single])
    assert choice.format == "shipped"
    reasons = [v.reason for v in choice.verdicts]
    assert "below the 1.15x margin" in reasons[0] and "one row 0.80x" in reasons[1]
    assert "no variant is clearly faster" in choice.reason and "Q4_1" in choice.reason
    # a looser rule takes it
    assert choose_weights(SHIPPED, [within_noise], DecisionRule(margin=1.05)).format == "q8_0"


def test_no_candidates_keeps_the_shipped_file():
    choice = choose_weights(SHIPPED, [])
    assert choice.format == "shipped" and choice.verdicts == () and "no candidate" in choice.reason


def test_the_rule_rows_must_have_been_measured():
    with pytest.raises(ConfigError, match="no step time measured at 4 rows"):
        choose_weights(SHIPPED, [Q8_0], DecisionRule(rows=4))


@pytest.mark.parametrize(
    ("shipped", "expected"),
    [
        ("Q4_1", ("q8_0", "q4_0", "f16")),
        ("Q4_K_M", ("q8_0", "q4_0", "f16")),
        ("Q8_0", ("q4_0", "f16")),  # not its own format
        ("F16", ("q8_0", "q4_0")),  # no F16 copy of an F16 file
        ("BF16", ("q8_0", "q4_0")),
        ("F32", ("q8_0", "q4_0", "f16")),
    ],
)
def test_candidate_formats(shipped, expected):
    assert candidate_formats(shipped) == expected


def test_step_costs_fit_a_line_through_the_measured_steps():
    # time = 8 ms + 2 ms per row: one row 10 ms, one more row 0.2 of it
    costs = StepCosts(step_s={1: 0.010, 4: 0.016, 8: 0.024, 16: 0.040})
    assert costs.one_row_s == pytest.approx(0.010)
    assert costs.extra_row_cost == pytest.approx(0.2)
    # Q4_1's rows cost nearly a whole step each; Q8_0's far less (the issue's figures)
    q4_1 = StepCosts(step_s=SHIPPED.step_s).extra_row_cost
    q8_0 = StepCosts(step_s=Q8_0.step_s).extra_row_cost
    assert q8_0 < q4_1


def test_step_costs_never_go_negative_and_need_two_points():
    assert StepCosts(step_s={1: 0.02, 8: 0.01}).extra_row_cost == 0.0  # noise: a bigger step measured faster
    with pytest.raises(ConfigError):
        _ = StepCosts(step_s={1: 0.01}).one_row_s


def test_a_rerun_keeps_the_earlier_choice_unless_clearly_beaten():
    # this run's noise put Q8_0 just below the margin over the shipped file: the earlier Q8_0 stays
    noisy_q8 = measured("q8_0", "Q8_0", {1: 150, 8: 282 * 1.12, 16: 340}, 0.959, 0.0047)
    assert choose_weights(SHIPPED, [noisy_q8]).format == "shipped"
    kept = choose_weights(SHIPPED, [noisy_q8], previous="q8_0")
    assert kept.format == "q8_0" and kept.reason.startswith("kept the earlier choice, Q8_0")
    # and the other way round: the earlier shipped choice stays while a variant is not clearly faster
    assert choose_weights(SHIPPED, [noisy_q8], previous="shipped").format == "shipped"
    # a winner beating the earlier choice by the margin replaces it
    assert choose_weights(SHIPPED, [Q8_0, F16], previous="shipped").format == "q8_0"
    fast_f16 = measured("f16", "F16", {1: 150, 8: 427 * 1.2, 16: 600}, 0.961, 0.0036)
    assert choose_weights(SHIPPED, [Q8_0, fast_f16], previous="q8_0").format == "f16"
    close_f16 = measured("f16", "F16", {1: 150, 8: 427 * 1.1, 16: 600}, 0.961, 0.0036)
    assert choose_weights(SHIPPED, [Q8_0, close_f16], previous="q8_0").format == "q8_0"
    # an earlier choice that is now outside the quality bound, or no longer measured, never stays
    assert choose_weights(SHIPPED, [Q4_0, Q8_0], previous="q4_0").format == "q8_0"
    assert choose_weights(SHIPPED, [Q8_0], previous="f16").format == "q8_0"
