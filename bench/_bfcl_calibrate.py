"""The decision models that act on recorded features only, fit on the tuning half, and their recalibration.

Relevance (does some tool fit), the call threshold and the confidence of a call read the features a
run recorded, so they can be refit and replayed (``reweigh``) without the model. Tool and value
weights change what is scored, so they are fit in ``_bfcl_fit`` and need a rerun.

The confidence's last step is a Platt map (``agents.calibration.recalibrate``). Fit on the same
decisions as the models under it, it would learn that they are right, since they were fit there;
so it learns only from decisions no model under it saw:

- **cross-fitted** relevance, threshold and confidence: the tuning half is cut into folds, and
  each fold's decisions are replayed under those three fit on the other folds;
- of those, only the items from ``fresh_from`` on (an item's place in its category's tuning half,
  id // 2): the tool, value and optional-field weights (which need a rerun to refit) were fit on
  the first 40 items of each category, and their calls are right more often than new ones
  (multiple: 27 of the first 40 against 28 of the next 60).

Beside BFCL's tuning half, the relevance, confidence and Platt fits may take the app-style
tuning set (``bench/_app_tune.py``, ``--app``): requests people write to a phone assistant, over
tools apps define, which BFCL's explicit requests do not resemble; the own held-out set's tools
and requests are not among them. The call threshold is still chosen on BFCL's categories.

The evaluation half is never read here.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import _bfcl_data as B

__all__ = ["CONFIDENCE_FEATURES", "FOLDS", "FRESH_FROM", "RELEVANCE_FEATURES", "crossfit_recalibration", "fit_scores", "reweigh", "scaled_logistic"]

# Not the tool's softmax probability: in BFCL every item with several tools is relevant, so a fit would
# learn "several tools: call" (it did: a weight of -18 on tool_p), which no app's agent should inherit.
RELEVANCE_FEATURES = ("call_margin", "lex_rest", "emb_best", "name_lp_best", "missing_share", "field_p_min", "grounded_share",
                      "near_share")
CONFIDENCE_FEATURES = ("field_p_min", "field_p_mean", "relevance", "missing_share", "written_lp_min", "lex_best", "emb_best",
                       "field_margin_min", "weak_sources", "optional_written", "tool_margin", "fields_required")
FOLDS = 5
IRRELEVANCE_FLOOR = 0.8  # the share of "no tool fits" requests answered without a call (issue 15's target)
FRESH_FROM = 40  # the shipped tool, value and optional-field weights were fit on items 0-39 of each category


def fit_scores(tune: Sequence[Mapping[str, Any]], base: Any) -> Any:
    """``base`` with relevance, call threshold and confidence fit on ``tune`` (recorded decisions).
    The confidence is fit on every item, labelled by whether the call it would make is right (the
    call of an item no tool fits, BFCL's ``irrelevance`` or the app set's ``app_none``, never is), with the relevance among its features: so it is the
    probability that a call is right given all the turn knows, also for turns that should not call."""
    from agents.calibration import fit_logistic

    rows = [r for r in tune if "features" in r]
    relevance = scaled_logistic([r["features"] for r in rows], [_needs_call(r) for r in rows], RELEVANCE_FEATURES, fit_logistic)
    threshold = _best_threshold(rows, relevance)
    conf_rows = [{**r["features"], "relevance": relevance(r["features"])} for r in rows]
    labels = [_needs_call(r) and bool(r.get("call_right")) for r in rows]
    confidence = scaled_logistic(conf_rows, labels, CONFIDENCE_FEATURES, fit_logistic)
    return replace(base, relevance=relevance, call_threshold=threshold, confidence=confidence)


def crossfit_recalibration(tune: Sequence[Mapping[str, Any]], base: Any, folds: int = FOLDS, fresh_from: int = FRESH_FROM) -> Any:
    """The Platt map (a ``Logistic`` over ``RECALIBRATION_FEATURES``) fit on cross-fitted decisions
    of ``tune`` from item ``fresh_from`` on (see the module docstring). Folds are dealt round-robin
    within each category, in id order, so each holds every category."""
    from agents.calibration import IDENTITY_RECALIBRATION, RECALIBRATION_FEATURES, fit_logistic, recalibration_features

    rows = sorted((r for r in tune if "features" in r), key=lambda r: (r["category"], _place(r)))
    fold_of: dict[str, int] = {}
    for category in {r["category"] for r in rows}:
        for i, r in enumerate(r for r in rows if r["category"] == category):
            fold_of[r["id"]] = i % folds
    features, labels = [], []
    for k in range(folds):
        held = [r for r in rows if fold_of[r["id"]] == k and _place(r) >= fresh_from]
        rest = [r for r in rows if fold_of[r["id"]] != k]
        if not held or not rest:
            continue
        settings = replace(fit_scores(rest, base), recalibration=IDENTITY_RECALIBRATION)
        for r in reweigh(held, settings):
            features.append(recalibration_features(r["raw_confidence"]))
            labels.append(bool(r["right"]))
    if len(set(labels)) < 2:
        return IDENTITY_RECALIBRATION
    return fit_logistic(features, labels, RECALIBRATION_FEATURES, l2=0.1)


def _place(record: Mapping[str, Any]) -> int:
    """An item's place in its category's tuning half (BFCL ids: even numbers are the tuning half).
    The app set's requests (``bench/_app_tune.py``) were never fit by a rerun weight: all fresh."""
    if record["category"] not in B.CATEGORIES:
        return 1 << 30
    return int(record["id"].rsplit("_", 1)[1]) // 2


def reweigh(records: Sequence[Mapping[str, Any]], settings: Any) -> list[dict[str, Any]]:
    """Recorded scored decisions under other relevance/confidence weights, call threshold and
    recalibration: exact, since those act on recorded features only (the call each record would
    make is kept with its rightness, ``call_right``). Tool and value weights need a rerun (they
    change what is scored). Adds ``called`` and ``raw_confidence`` (before the recalibration)."""
    from agents.calibration import recalibrate

    out = []
    for r in records:
        if "features" not in r:
            out.append(dict(r))
            continue
        relevance = settings.relevance(r["features"])
        calls = relevance >= settings.call_threshold
        none = r.get("expected") is None  # nothing fits: BFCL's irrelevance, the own set's no-tool requests
        right = (not calls) if none else (calls and bool(r.get("call_right")))
        raw = settings.confidence({**r["features"], "relevance": relevance}) if calls else 1.0 - relevance
        why = None if right else ("called a function" if calls else "no call") if none or not calls else r.get("why")
        out.append({**r, "right": right, "confidence": recalibrate(settings.recalibration, raw), "raw_confidence": raw,
                    "called": calls, "relevance": relevance, "why": why})
    return out


def scaled_logistic(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], names: Sequence[str], fit: Any) -> Any:
    """A logistic fit on standardised features, returned in the features' own units."""
    from agents.calibration import Logistic

    mean = {k: statistics.mean(float(r.get(k, 0.0)) for r in rows) for k in names}
    std = {k: (statistics.pstdev([float(r.get(k, 0.0)) for r in rows]) or 1.0) for k in names}
    z = [{k: (float(r.get(k, 0.0)) - mean[k]) / std[k] for k in names} for r in rows]
    model = fit(z, labels, names, l2=1.0)
    weights = {k: model.weights[k] / std[k] for k in names}
    bias = model.bias - sum(model.weights[k] * mean[k] / std[k] for k in names)
    return Logistic(weights, bias)


def _needs_call(record: Mapping[str, Any]) -> bool:
    return record.get("expected") is not None  # None: no tool fits (BFCL's irrelevance, the app set's app_none)


def _best_threshold(tune: Sequence[Mapping[str, Any]], relevance: Any) -> float:
    """The call threshold that maximises the mean of BFCL's categories' accuracies on ``tune``, among
    those that keep ``irrelevance`` at ``IRRELEVANCE_FLOOR`` or more (a call when no tool fits does
    something nobody asked for; with no such threshold, the unconstrained best). The app set, if
    any, shapes the relevance it thresholds, not the operating point (issue 15's floor is BFCL's)."""
    scored = {c: [(relevance(r["features"]), bool(r.get("call_right")), _needs_call(r)) for r in tune if r["category"] == c] for c in B.CATEGORIES}
    scored = {c: rows for c, rows in scored.items() if rows}

    def accuracy(t: float, category: str) -> float:
        rows = scored[category]
        right = [p >= t and ok if needs else p < t for p, ok, needs in rows]
        return sum(right) / len(right)

    def mean(t: float) -> float:
        return sum(accuracy(t, c) for c in scored) / len(scored)

    floored = [t for t in _THRESHOLDS if "irrelevance" not in scored or accuracy(t, "irrelevance") >= IRRELEVANCE_FLOOR]
    return max(floored or _THRESHOLDS, key=lambda t: (mean(t), -t))


_THRESHOLDS = [i / 100 for i in range(5, 96)]
