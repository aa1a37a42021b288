"""Calibrated confidence: small logistic models over decision features, and how to check them.

A decision's raw signals (log-likelihood margins, similarities) are not probabilities. A
``Logistic`` maps named features to the probability that the decision is right; its weights are
fit on labelled decisions (``fit_logistic``: L2-regularised Newton steps, plain Python; the
shipped weights in ``agents.decide`` were fit on the tuning half of BFCL, see ``bench/bfcl.py``).
``fit_choice`` fits a conditional logit, the weights of features that rank the options of one
choice (which tool), by the softmax likelihood of the right option.

Checks, for held-out labelled decisions: ``reliability`` (per confidence bin: mean confidence,
observed accuracy, count), ``expected_calibration_error`` (their gap, weighted by count; with
``calibrated_ece``, what a perfectly calibrated model would show on as few decisions) and
``auroc`` (how well confidence separates right from wrong: 0.5 is chance).

A model fit on the same decisions it is checked on looks better calibrated than it is. The last
step, ``recalibrate``, is a Platt map over a decision's raw confidence (a slope and an offset on
its logit: monotone, so it keeps the ranking and the AUROC), fit by ``fit_logistic`` on
``recalibration_features`` of decisions no model under it saw. The identity map is
``IDENTITY_RECALIBRATION``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["IDENTITY_RECALIBRATION", "RECALIBRATION_FEATURES", "Logistic", "auroc", "calibrated_ece", "expected_calibration_error", "fit_choice",
           "fit_logistic", "logit", "recalibrate", "recalibration_features", "reliability", "sigmoid", "softmax"]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def logit(p: float, eps: float = 1e-6) -> float:
    """The inverse of ``sigmoid``, with ``p`` kept inside [eps, 1 - eps]."""
    p = min(1.0 - eps, max(eps, p))
    return math.log(p / (1.0 - p))


def softmax(xs: Sequence[float]) -> list[float]:
    if not xs:
        return []
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True)
class Logistic:
    """``P(right) = sigmoid(bias + sum(weights[f] * features[f]))``; a missing feature counts 0."""

    weights: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0

    def logit(self, features: Mapping[str, float]) -> float:
        return self.bias + sum(w * float(features.get(k, 0.0)) for k, w in self.weights.items())

    def __call__(self, features: Mapping[str, float]) -> float:
        return sigmoid(self.logit(features))


RECALIBRATION_FEATURES = ("logit",)


def recalibration_features(confidence: float) -> dict[str, float]:
    """What the Platt map reads: the raw confidence's logit."""
    return {"logit": logit(confidence)}


IDENTITY_RECALIBRATION = Logistic({"logit": 1.0}, 0.0)


def recalibrate(model: Logistic, confidence: float) -> float:
    """The confidence after the Platt map ``model`` (``IDENTITY_RECALIBRATION`` leaves it as it is)."""
    return model(recalibration_features(confidence))


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (small, positive definite systems)."""
    n = len(vector)
    a = [row[:] + [vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            continue
        for r in range(n):
            if r != col:
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col])]
    return [a[i][n] / a[i][i] if abs(a[i][i]) > 1e-12 else 0.0 for i in range(n)]


def fit_logistic(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], names: Sequence[str] | None = None,
                 *, l2: float = 1.0, steps: int = 25) -> Logistic:
    """Weights for ``names`` (default: every feature seen) maximising the likelihood of ``labels``,
    with an L2 penalty ``l2`` on the weights (not the bias). Newton's method: each step solves
    (X'WX + l2 I) d = X'(y - p) - l2 w."""
    names = list(names or sorted({k for r in rows for k in r}))
    xs = [[1.0] + [float(r.get(k, 0.0)) for k in names] for r in rows]
    ys = [1.0 if y else 0.0 for y in labels]
    dim = len(names) + 1
    w = [0.0] * dim
    for _ in range(steps):
        grad = [0.0] * dim
        hess = [[0.0] * dim for _ in range(dim)]
        for x, y in zip(xs, ys):
            p = sigmoid(sum(a * b for a, b in zip(w, x)))
            for i in range(dim):
                grad[i] += (y - p) * x[i]
                for j in range(dim):
                    hess[i][j] += p * (1 - p) * x[i] * x[j]
        for i in range(1, dim):
            grad[i] -= l2 * w[i]
            hess[i][i] += l2
        hess[0][0] += 1e-9
        step = _solve(hess, grad)
        w = [a + b for a, b in zip(w, step)]
        if max(abs(s) for s in step) < 1e-7:
            break
    return Logistic({k: w[i + 1] for i, k in enumerate(names)}, w[0])


def fit_choice(groups: Sequence[Sequence[Mapping[str, float]]], right: Sequence[int], names: Sequence[str],
               *, l2: float = 0.1, steps: int = 400, rate: float = 0.5) -> dict[str, float]:
    """Weights ranking the options of each group (features per option) so that the option at
    ``right[i]`` gets the most softmax probability: gradient ascent on the mean log-likelihood."""
    w = {k: 0.0 for k in names}
    usable = [(g, r) for g, r in zip(groups, right) if 0 <= r < len(g) and len(g) > 1]
    if not usable:
        return w
    for _ in range(steps):
        grad = {k: -l2 * w[k] for k in names}
        for options, r in usable:
            probs = softmax([sum(w[k] * o.get(k, 0.0) for k in names) for o in options])
            for k in names:
                expected = sum(p * o.get(k, 0.0) for p, o in zip(probs, options))
                grad[k] += (options[r].get(k, 0.0) - expected) / len(usable)
        for k in names:
            w[k] += rate * grad[k]
    return w


def reliability(confidences: Sequence[float], right: Sequence[bool], bins: int = 10) -> list[dict[str, float]]:
    """Per bin of confidence (``bins`` equal widths over [0, 1]): its range, the mean confidence,
    the share right, and the count. Empty bins are left out."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, r) for c, r in zip(confidences, right) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if inside:
            rows.append({"lo": lo, "hi": hi, "confidence": sum(c for c, _ in inside) / len(inside),
                         "accuracy": sum(1 for _, r in inside if r) / len(inside), "count": len(inside)})
    return rows


def expected_calibration_error(confidences: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Sum over bins of |confidence - accuracy| weighted by the bin's share of decisions."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(abs(r["confidence"] - r["accuracy"]) * r["count"] / total for r in reliability(confidences, right, bins))


def calibrated_ece(confidences: Sequence[float], bins: int = 10, draws: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(median, 95th percentile) of the ECE that a perfectly calibrated model stating these
    confidences would show: each decision right with its stated probability, ``draws`` times. On a
    few dozen decisions that is far from 0, so an observed ECE is read against it."""
    if not confidences:
        return 0.0, 0.0
    rng = random.Random(seed)
    sims = sorted(expected_calibration_error(confidences, [rng.random() < p for p in confidences], bins) for _ in range(draws))
    return sims[len(sims) // 2], sims[min(len(sims) - 1, int(0.95 * len(sims)))]


def auroc(scores: Sequence[float], right: Sequence[bool]) -> float:
    """The probability that a right decision scores above a wrong one (ties count half)."""
    pos = [s for s, r in zip(scores, right) if r]
    neg = [s for s, r in zip(scores, right) if not r]
    if not pos or not neg:
        return 0.5
    # rank-sum (Mann-Whitney U) with average ranks for ties
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(ranks[i] for i, r in enumerate(right) if r)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
