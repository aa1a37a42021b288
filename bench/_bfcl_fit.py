"""Summaries, the cascade, and refitting decision weights for ``orchestrator bench bfcl``.

Fitting uses the tuning half only (even id suffixes), from the decisions a run recorded:

- tool choice: a conditional logit over each ``multiple`` item's tools (features centred within
  the item and scaled, so that the weights are comparable), the expected tool as the label;
- relevance (some tool fits): a logistic on every item's decision features, ``simple`` and
  ``multiple`` items as positives, ``irrelevance`` as negatives; the call threshold is the one
  that maximises the mean of the three categories' accuracies on the tuning half;
- optional fields: a logistic on each optional field's features (``agents.arguments``) of items
  whose tool was right, labelled 1 when BFCL needs the field and takes our value, 0 when leaving
  it out is right and our value is not (fields where both choices are right, or both wrong, are left out);
- confidence: a logistic on every item's features, labelled by whether the call it would make is
  right; then a Platt map over the raw confidence, cross-fitted (``_bfcl_calibrate``).

``fit_calibration`` refits only what acts on recorded features (relevance, threshold, confidence
and its Platt map), so the recorded decisions replay exactly under it (``reweigh``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import _bfcl_data as B
from _bfcl_calibrate import crossfit_recalibration, fit_scores, reweigh, scaled_logistic

__all__ = ["cascade_report", "fit_calibration", "fit_settings", "load_settings", "reweigh", "save_settings", "summary"]

MAX_ESCALATION = 0.4


def _halves(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    return {"eval": [r for r in records if r["half"] == "eval"], "tune": [r for r in records if r["half"] == "tune"], "all": list(records)}


def summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per half: accuracy per category and overall, calibration of the confidence (with the ECE a
    perfectly calibrated model would show on as many items: median, 95th percentile), time per item."""
    from agents.calibration import auroc, calibrated_ece, expected_calibration_error, reliability

    out = {}
    for half, rows in _halves(records).items():
        if not rows:
            continue
        cats = {}
        for category in B.CATEGORIES:
            inside = [r for r in rows if r["category"] == category]
            if inside:
                cats[category] = {"accuracy": sum(r["right"] for r in inside) / len(inside), "n": len(inside),
                                  "why_wrong": _count(r.get("why") for r in inside if not r["right"])}
        conf = [float(r.get("confidence", 1.0)) for r in rows]
        right = [bool(r["right"]) for r in rows]
        out[half] = {"categories": cats, "accuracy": sum(right) / len(right), "n": len(rows),
                     "ece": expected_calibration_error(conf, right), "ece_if_calibrated": calibrated_ece(conf),
                     "auroc": auroc(conf, right),
                     "reliability": [{k: round(v, 3) for k, v in b.items()} for b in reliability(conf, right)],
                     "s_per_item": statistics.mean(float(r.get("seconds", 0.0)) for r in rows),
                     "s_per_item_median": statistics.median(float(r.get("seconds", 0.0)) for r in rows)}
    return out


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _cascade(small: list[Mapping[str, Any]], large: dict[str, Mapping[str, Any]], threshold: float) -> tuple[float, float]:
    """(accuracy, share escalated) when small's decisions under ``threshold`` go to large."""
    right = escalated = 0
    for r in small:
        if r["confidence"] < threshold and r["id"] in large:
            escalated += 1
            right += bool(large[r["id"]]["right"])
        else:
            right += bool(r["right"])
    return right / len(small), escalated / len(small)


def cascade_report(small: Sequence[Mapping[str, Any]] | None, large: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """The threshold chosen on the tuning half (the most accurate with at most 40% escalated there, or
    when the larger model did not run on the tuning half, the one escalating its least confident 40%),
    applied to each half."""
    if not small or not large:
        return None
    by_id = {r["id"]: r for r in large}
    halves = _halves(small)
    tune = halves["tune"] or halves["all"]
    grid = [i / 100 for i in range(101)]
    if any(r["id"] in by_id for r in tune):  # the larger model ran on the tuning half: the most accurate threshold there
        best = max((t for t in grid if _cascade(tune, by_id, t)[1] <= MAX_ESCALATION), key=lambda t: (_cascade(tune, by_id, t)[0], -t))
    else:  # it did not: escalate the least confident 40% of the tuning half (no larger model needed to choose)
        best = max(t for t in grid if sum(r["confidence"] < t for r in tune) <= MAX_ESCALATION * len(tune))
    out = {}
    for half, rows in halves.items():
        if not rows:
            continue
        acc, esc = _cascade(rows, by_id, best)
        s = sum(r["right"] for r in rows) / len(rows)
        big = sum(by_id[r["id"]]["right"] for r in rows if r["id"] in by_id) / len(rows)
        out[half] = {"threshold": best, "accuracy": acc, "escalated": esc, "small": s, "large": big,
                     "recovered": (acc - s) / (big - s) if big > s else float("nan")}
    return out


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def fit_settings(records: Sequence[Mapping[str, Any]], base: Any) -> Any:
    from agents.calibration import fit_choice, fit_logistic

    tune = [r for r in records if r["half"] == "tune" and "features" in r]
    # tool choice
    from agents.choice import TOOL_FEATURES

    groups, labels = [], []
    for r in tune:
        if r["category"] == "multiple" and r.get("expected") in r["trace"]["tools"]:
            groups.append(r["trace"]["tool_features"])
            labels.append(r["trace"]["tools"].index(r["expected"]))
    centred = [[{k: o.get(k, 0.0) - statistics.mean(x.get(k, 0.0) for x in g) for k in TOOL_FEATURES} for o in g] for g in groups]
    spread = {k: (statistics.pstdev([o[k] for g in centred for o in g]) or 1.0) for k in TOOL_FEATURES}
    scaled = [[{k: o[k] / spread[k] for k in TOOL_FEATURES} for o in g] for g in centred]
    w = fit_choice(scaled, labels, TOOL_FEATURES)
    tool_weights = {k: w[k] / spread[k] for k in TOOL_FEATURES}
    # candidate values: a conditional logit over each field's candidates, the accepted value as the label
    value_weights = _value_weights(tune, fit_choice) or base.value_weights
    # optional fields, their candidates weighed by those values
    include = base.include
    opt_rows, opt_labels = _optional_rows(tune, value_weights)
    if len(set(opt_labels)) == 2:
        from agents.arguments import OPTIONAL_FEATURES

        include = scaled_logistic(opt_rows, opt_labels, OPTIONAL_FEATURES, fit_logistic)
    return fit_calibration(records, replace(base, tool_weights=tool_weights, include=include, value_weights=value_weights), fresh_from=0)


def fit_calibration(records: Sequence[Mapping[str, Any]], base: Any, fresh_from: int = 40) -> Any:
    """``base`` with relevance, threshold and confidence fit on the tuning half of ``records``, and the
    cross-fitted Platt map over them (``_bfcl_calibrate``): exact from recorded decisions, when
    the tool and value weights are those the records were made with."""
    tune = [r for r in records if r["half"] == "tune" and "features" in r]
    return replace(fit_scores(tune, base), recalibration=crossfit_recalibration(tune, base, fresh_from=fresh_from))


def _value_weights(tune: Sequence[Mapping[str, Any]], fit_choice: Any) -> dict[str, float] | None:
    from agents.arguments import VALUE_FEATURES, FieldChoice, candidate_features
    from agents.scoring import Scored

    groups, labels = [], []
    for r in tune:
        if r["category"] == "irrelevance" or r.get("tool") != r.get("expected") or "_item" not in r:
            continue
        item: B.Item = r["_item"]
        function = next(f for f in item.functions if f["name"] == r["tool"])
        schema = B.convert_function(function)[2]["properties"]
        for f in r["trace"]["fields"]:
            if not f["required"] or len(f["values"]) < 2:
                continue
            ok = [i for i, v in enumerate(f["values"]) if B.value_error(function, item.answer[r["tool"]], f["name"], v) is None]
            if len(ok) != 1:
                continue
            choice = FieldChoice(f["name"], True, _candidates(f),
                                 [Scored(lp, t) for lp, t in zip(f["lp"], f["tokens"])])
            groups.append([candidate_features(choice, i, schema.get(f["name"], {}), item.question.lower()) for i in range(len(f["values"]))])
            labels.append(ok[0])
    if len(groups) < 20:
        return None
    spread = {k: (statistics.pstdev([o.get(k, 0.0) for g in groups for o in g]) or 1.0) for k in VALUE_FEATURES}
    scaled = [[{k: o.get(k, 0.0) / spread[k] for k in VALUE_FEATURES} for o in g] for g in groups]
    w = fit_choice(scaled, labels, VALUE_FEATURES, l2=0.03)  # chosen by 4-fold cross-validation on the tuning half
    return {k: round(w[k] / spread[k], 6) for k in VALUE_FEATURES if abs(w[k]) > 1e-6}


def _candidates(field: Mapping[str, Any]) -> list[Any]:
    """A recorded field's candidates (records before ``written`` was kept have none)."""
    from agents.candidates import Candidate

    written = field.get("written") or [None] * len(field["values"])
    return [Candidate(v, s, w) for v, s, w in zip(field["values"], field["sources"], written)]


def _optional_rows(tune: Sequence[Mapping[str, Any]], value_weights: Mapping[str, float]) -> tuple[list[dict[str, float]], list[bool]]:
    """Features and labels of optional fields (see the module docstring), their candidates weighed by
    ``value_weights`` as a decision weighs them."""
    from agents.arguments import FieldChoice, optional_features, optional_pick, weigh
    from agents.scoring import Scored

    rows, labels = [], []
    for r in tune:
        if r["category"] == "irrelevance" or r.get("tool") != r.get("expected") or "_item" not in r:
            continue
        item: B.Item = r["_item"]
        function = next(f for f in item.functions if f["name"] == r["tool"])
        answer = item.answer[r["tool"]]
        schema = B.convert_function(function)[2]["properties"]
        used = {json.dumps(f["values"][f["pick"]], sort_keys=True) for f in r["trace"]["fields"] if f["required"] and f["pick"] is not None}
        for f in r["trace"]["fields"]:
            if f["required"] or not f["values"]:
                continue
            choice = FieldChoice(f["name"], False, _candidates(f), [Scored(lp, t) for lp, t in zip(f["lp"], f["tokens"])])
            weigh(choice, schema.get(f["name"], {}), item.question.lower(), value_weights)
            feats = optional_features(choice, schema.get(f["name"], {}), used, [item.question])
            best = optional_pick(choice, schema.get(f["name"], {}))
            omit_ok = f["name"] not in answer or "" in answer[f["name"]]
            value_ok = B.value_error(function, answer, f["name"], f["values"][best]) is None
            if omit_ok != value_ok:  # else both choices are right (or both wrong): the row teaches nothing
                rows.append(feats)
                labels.append(value_ok)
    return rows, labels


def save_settings(settings: Any, path: Path) -> None:
    def lg(model: Any) -> dict[str, Any]:
        return {"weights": {k: round(v, 6) for k, v in model.weights.items()}, "bias": round(model.bias, 6)}

    path.write_text(json.dumps({"tool_weights": {k: round(v, 6) for k, v in settings.tool_weights.items()},
                                "value_weights": dict(settings.value_weights), "order_bonus": settings.order_bonus,
                                "relevance": lg(settings.relevance), "confidence": lg(settings.confidence),
                                "include": lg(settings.include), "recalibration": lg(settings.recalibration),
                                "call_threshold": settings.call_threshold}, indent=1))


def load_settings(path: Path, base: Any = None) -> Any:
    from agents.calibration import Logistic
    from agents.decide import DecisionSettings

    data = json.loads(path.read_text())
    base = base or DecisionSettings()
    extra = {k: data[k] for k in ("value_weights", "order_bonus") if k in data}
    return replace(base, tool_weights=data["tool_weights"], call_threshold=data["call_threshold"], **extra,
                   **{k: Logistic(data[k]["weights"], data[k]["bias"]) for k in ("relevance", "confidence", "include", "recalibration") if k in data})
