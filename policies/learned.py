"""Learned router: a small logistic-regression classifier on local features.

It predicts the probability that the small local model answers a request well enough,
from features the device has before anything runs: prompt length, task type, and an
embedding of the prompt from the local model. It is trained from logged outcomes
``(features, small_model_was_right)`` and escalates when ``p < threshold``; the threshold
is calibrated so that a target share of past requests would have been escalated.

Fitting is Newton's method on the L2-penalised log-likelihood (features standardised
first): deterministic, a few iterations, numpy only. The model serialises to JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.errors import ConfigError
from policies.routing import Candidate, RouteRequest, Verdict

__all__ = ["LearnedPolicy", "LogisticRouter", "calibrate_threshold", "local_features"]

_FORMAT = "orchestrator.logistic-router/1"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # tanh form: no overflow for large |z|.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _matrix(X: object, *, name: str = "X") -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ConfigError(f"{name} must be a 2-D array of shape (samples, features), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} holds NaN or infinite values")
    return arr


class LogisticRouter:
    """P(small model is right | features). ``fit`` then ``predict_proba``; ``to_json``/``from_json``.

    ``l2`` penalises the weights (not the bias) on standardised features; it keeps the fit
    finite when the outcomes are separable and when there are more features than samples.
    """

    def __init__(self, *, l2: float = 1.0, max_iter: int = 50, tol: float = 1e-8) -> None:
        if not l2 > 0.0 or max_iter < 1 or not tol > 0.0:
            raise ConfigError("LogisticRouter needs l2 > 0, max_iter >= 1 and tol > 0")
        self.l2 = float(l2)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.bias_: float = 0.0

    @property
    def fitted(self) -> bool:
        return self.weights_ is not None

    def fit(self, X: object, y: object) -> LogisticRouter:
        """Fits on ``X`` (samples x features) and outcomes ``y`` (1/True: the small model was right)."""
        data = _matrix(X)
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
        if labels.shape[0] != data.shape[0]:
            raise ConfigError(f"X has {data.shape[0]} samples but y has {labels.shape[0]}")
        if not np.all((labels == 0.0) | (labels == 1.0)):
            raise ConfigError("y must hold only 0/1 (or False/True) outcomes")
        if labels.min() == labels.max():
            raise ConfigError("y holds one outcome only: a router needs examples of both")
        # 1. Standardise each feature (constant features get scale 1 and stay at 0).
        mean = data.mean(axis=0)
        scale = data.std(axis=0)
        scale[scale == 0.0] = 1.0
        Z = np.hstack([(data - mean) / scale, np.ones((data.shape[0], 1))])
        # 2. Newton steps on the penalised log-likelihood; the bias column is not penalised.
        penalty = np.full(Z.shape[1], self.l2)
        penalty[-1] = 1e-9
        w = np.zeros(Z.shape[1])
        for _ in range(self.max_iter):
            p = _sigmoid(Z @ w)
            grad = Z.T @ (p - labels) + penalty * w
            hess = (Z * (p * (1.0 - p))[:, None]).T @ Z + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            w -= step
            # 3. Stop once the step no longer moves any weight.
            if float(np.max(np.abs(step))) < self.tol:
                break
        self.mean_, self.scale_ = mean, scale
        self.weights_, self.bias_ = w[:-1].copy(), float(w[-1])
        return self

    def decision_function(self, X: object) -> np.ndarray:
        """The log-odds that the small model is right, one per sample."""
        if self.weights_ is None or self.mean_ is None or self.scale_ is None:
            raise ConfigError("the LogisticRouter is not fitted")
        data = _matrix(X)
        if data.shape[1] != self.weights_.shape[0]:
            raise ConfigError(f"the router was fitted on {self.weights_.shape[0]} features, got {data.shape[1]}")
        return ((data - self.mean_) / self.scale_) @ self.weights_ + self.bias_

    def predict_proba(self, X: object) -> np.ndarray:
        """P(small model is right), shape ``(samples,)``; a 1-D ``X`` is one sample."""
        return _sigmoid(self.decision_function(X))

    def to_json(self) -> str:
        if self.weights_ is None or self.mean_ is None or self.scale_ is None:
            raise ConfigError("the LogisticRouter is not fitted")
        return json.dumps(
            {
                "format": _FORMAT,
                "l2": self.l2,
                "max_iter": self.max_iter,
                "tol": self.tol,
                "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(),
                "weights": self.weights_.tolist(),
                "bias": self.bias_,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LogisticRouter:
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ConfigError(f"not a {_FORMAT} document")
            router = cls(l2=data["l2"], max_iter=data["max_iter"], tol=data["tol"])
            mean, scale, weights = (np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "weights"))
            bias = float(data["bias"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"unreadable LogisticRouter JSON: {exc}") from exc
        if not (mean.ndim == scale.ndim == weights.ndim == 1 and mean.shape == scale.shape == weights.shape and mean.size):
            raise ConfigError("LogisticRouter JSON: mean, scale and weights must be equal-length lists")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(weights)) and np.all(scale > 0) and math.isfinite(bias)):
            raise ConfigError("LogisticRouter JSON holds non-finite values or a non-positive scale")
        router.mean_, router.scale_, router.weights_, router.bias_ = mean, scale, weights, bias
        return router


def calibrate_threshold(scores: Sequence[float] | np.ndarray, escalation_share: float) -> float:
    """A threshold so that ``escalation_share`` of ``scores`` fall strictly below it.

    With ``k = round(share * n)``, exactly ``k`` calibration scores are ``< threshold``
    unless ties straddle the cut (then fewer). Share 0 escalates none, share 1 all.
    """
    values = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if values.size == 0:
        raise ConfigError("calibrate_threshold needs at least one score")
    if not np.all(np.isfinite(values)):
        raise ConfigError("calibrate_threshold: scores hold NaN or infinite values")
    if not 0.0 <= escalation_share <= 1.0:
        raise ConfigError(f"escalation_share must lie in [0, 1], got {escalation_share}")
    k = round(escalation_share * values.size)
    if k == 0:
        return float(values[0])
    if k == values.size:
        return float(np.nextafter(values[-1], math.inf))
    # Midway between the k-th and (k+1)-th smallest: the k smallest fall below it. Two neighbouring
    # floats have no float between them (the midpoint rounds onto the lower one): then the upper one.
    low, high = values[k - 1], values[k]
    middle = (low + high) / 2.0
    return float(middle) if low < middle else float(high)


def local_features(prompt_tokens: int, task_type: str, task_types: Sequence[str], embedding: Sequence[float] = ()) -> np.ndarray:
    """One feature vector: ``log1p(prompt_tokens)``, a one-hot of ``task_type`` over ``task_types``
    (an unknown type is all zeros), then the prompt's embedding from the local model."""
    if prompt_tokens < 0:
        raise ConfigError("prompt_tokens must be >= 0")
    onehot = [1.0 if task_type == t else 0.0 for t in task_types]
    vec = np.asarray([math.log1p(prompt_tokens), *onehot, *embedding], dtype=np.float64)
    if not np.all(np.isfinite(vec)):
        raise ConfigError("the embedding holds NaN or infinite values")
    return vec


@dataclass(frozen=True, eq=False)
class LearnedPolicy:
    """Keeps a request on the smallest allowed backend when the classifier's P(small model is right)
    on ``RouteRequest.features`` is at least ``threshold``, else picks the next tier. Requests
    without features pass to the next policy."""

    model: LogisticRouter
    threshold: float
    name: str = "learned"

    def __post_init__(self) -> None:
        if not self.model.fitted:
            raise ConfigError("LearnedPolicy needs a fitted LogisticRouter")
        if not math.isfinite(self.threshold):
            raise ConfigError("the learned router's threshold must be finite")

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        if request.features is None:
            return Verdict("pass", "the request carries no features")
        if len(candidates) < 2:
            return Verdict("pass", "one backend allowed: nothing to choose")
        p = float(self.model.predict_proba(request.features)[0])
        if p >= self.threshold:
            return Verdict("pick", f"P(small model right) {p:.3f} >= {self.threshold:.3f}", backend=candidates[0].name)
        return Verdict("pick", f"P(small model right) {p:.3f} < {self.threshold:.3f}: escalate", backend=candidates[1].name)
