"""The cross-fitted recalibration of ``orchestrator bench bfcl`` (``bench/_bfcl_calibrate.py``), on plain records."""

from __future__ import annotations

import random
from dataclasses import replace
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))
import _bfcl_calibrate as C  # noqa: E402

from agents.calibration import IDENTITY_RECALIBRATION, RECALIBRATION_FEATURES, expected_calibration_error  # noqa: E402
from agents.decide import DecisionSettings  # noqa: E402


def _records(n: int, seed: int, signal: float) -> list[dict]:
    """Records as a run writes them: relevant items get a call whose rightness follows
    ``field_p_min`` with strength ``signal`` (0: a coin flip), the other features are noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        category = ("simple_python", "multiple", "irrelevance")[i % 3]
        feats = {k: rng.gauss(0, 1) for k in (*C.CONFIDENCE_FEATURES, *C.RELEVANCE_FEATURES)}
        feats["emb_best"] = rng.gauss(0.0 if category == "irrelevance" else 2.0, 1.0)  # relevance is learnable
        right = rng.random() < 1 / (1 + 2.718 ** (-signal * feats["field_p_min"]))
        out.append({"id": f"{category}_{2 * i}", "category": category, "half": "tune", "features": feats,
                    "expected": None if category == "irrelevance" else "f",
                    "call_right": category != "irrelevance" and right})
    return out


def test_crossfit_shrinks_a_confidence_that_only_fits_noise():
    """With labels that no feature predicts, the confidence fit in-sample still spreads out; on
    held-out folds that spread is wrong, so the cross-fitted Platt map flattens it (slope well under 1)."""
    tune = _records(90, seed=5, signal=0.0)
    model = C.crossfit_recalibration(tune, DecisionSettings(), fresh_from=0)
    assert set(model.weights) == set(RECALIBRATION_FEATURES)
    assert model.weights["logit"] < 0.6


def test_crossfit_keeps_a_real_signal_and_replays_exactly():
    tune = _records(300, seed=7, signal=2.5)
    fitted = C.fit_scores(tune, replace(DecisionSettings(), recalibration=IDENTITY_RECALIBRATION))
    model = C.crossfit_recalibration(tune, DecisionSettings(), fresh_from=0)
    assert model.weights["logit"] > 0.5
    fresh = _records(300, seed=8, signal=2.5)
    plain = C.reweigh(fresh, fitted)
    assert all(r["confidence"] == pytest.approx(r["raw_confidence"], abs=1e-9) for r in plain)  # the identity map
    assert fitted.recalibration == IDENTITY_RECALIBRATION  # fit_scores leaves the map as it was
    calibrated = C.reweigh(fresh, replace(fitted, recalibration=model))
    assert [r["called"] for r in calibrated] == [r["called"] for r in plain]
    ece = expected_calibration_error([r["confidence"] for r in calibrated], [r["right"] for r in calibrated])
    assert ece < 0.12


def test_the_platt_map_learns_only_from_fresh_items():
    """Items before ``fresh_from`` (those the tool and value weights were fit on) are replayed for the
    folds' fits but never feed the Platt map: here they are all right, the fresh ones coin flips."""
    tune = _records(240, seed=9, signal=0.0)
    for r in tune:
        if C._place(r) < 40 and r["category"] != "irrelevance":
            r["call_right"] = True
    early = C.crossfit_recalibration([r for r in tune if C._place(r) < 40], DecisionSettings(), fresh_from=0)
    fresh = C.crossfit_recalibration(tune, DecisionSettings(), fresh_from=40)
    assert fresh != early and fresh == C.crossfit_recalibration(tune, DecisionSettings())  # 40 is the default
    assert C.crossfit_recalibration([r for r in tune if C._place(r) < 40], DecisionSettings(), fresh_from=40) == IDENTITY_RECALIBRATION


def test_the_threshold_and_labels_read_whether_a_tool_fits_not_the_category_name():
    """App-set records (``app``, ``app_none``) join the relevance and confidence fits: an ``app_none``
    request is one no tool fits, like BFCL's irrelevance; and every app request counts as fresh."""
    tune = _records(150, seed=11, signal=1.0)
    app = [{**r, "id": f"app_{i}", "category": "app" if r["expected"] else "app_none"} for i, r in enumerate(_records(60, seed=12, signal=1.0))]
    assert all(C._place(r) >= 10**6 for r in app) and C._place(tune[3]) == 3
    fitted = C.fit_scores(tune + app, DecisionSettings())
    as_calls = [{**r, "expected": "f"} for r in app]  # read as needing a call, they would teach relevance otherwise
    assert C.fit_scores(tune + as_calls, DecisionSettings()).relevance != fitted.relevance
    # the operating point is chosen on BFCL's categories: the app records shape only the relevance
    assert C._best_threshold(tune + app, fitted.relevance) == C._best_threshold(tune, fitted.relevance) == fitted.call_threshold
