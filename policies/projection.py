"""``PCAProjection``: embeddings onto their first principal components, for the learned router.

A prompt embedding has hundreds of dimensions (576 for smollm2-135m); a router trained on a
few hundred logged outcomes cannot weigh that many. The projection keeps the ``components``
directions along which the training embeddings vary most. Fit it on training data only
(inside each cross-validation fold), then apply the same projection to new requests.

Numpy only (an SVD of the centred training matrix); deterministic (each direction's sign
is fixed so that its largest coordinate is positive). Serialises to JSON.
"""

from __future__ import annotations

import json

import numpy as np

from orchestrator.errors import ConfigError

__all__ = ["PCAProjection"]

_FORMAT = "orchestrator.pca-projection/1"


def _matrix(E: object) -> np.ndarray:
    arr = np.asarray(E, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ConfigError(f"embeddings must be a 2-D array of shape (samples, dimensions), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("embeddings hold NaN or infinite values")
    return arr


class PCAProjection:
    """``fit`` on training embeddings, then ``transform`` any embeddings to ``components`` numbers."""

    def __init__(self, components: int) -> None:
        if components < 1:
            raise ConfigError("a PCAProjection needs components >= 1")
        self.components = int(components)
        self.mean_: np.ndarray | None = None
        self.axes_: np.ndarray | None = None  # (components, dimensions), orthonormal rows

    @property
    def fitted(self) -> bool:
        return self.axes_ is not None

    def fit(self, E: object) -> PCAProjection:
        data = _matrix(E)
        if self.components > min(data.shape):
            raise ConfigError(f"{self.components} components need at least that many samples and dimensions; got shape {data.shape}")
        # 1. Centre on the training mean.
        mean = data.mean(axis=0)
        # 2. The right singular vectors of the centred matrix are the directions of most variance.
        _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
        axes = vt[: self.components]
        # 3. Fix each direction's sign (an SVD may return either) so that fits are reproducible.
        signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
        self.mean_, self.axes_ = mean, axes * signs[:, None]
        return self

    def transform(self, E: object) -> np.ndarray:
        """Shape ``(samples, components)``; a 1-D input is one sample."""
        if self.mean_ is None or self.axes_ is None:
            raise ConfigError("the PCAProjection is not fitted")
        data = _matrix(E)
        if data.shape[1] != self.mean_.shape[0]:
            raise ConfigError(f"the projection was fitted on {self.mean_.shape[0]} dimensions, got {data.shape[1]}")
        return (data - self.mean_) @ self.axes_.T

    def to_json(self) -> str:
        if self.mean_ is None or self.axes_ is None:
            raise ConfigError("the PCAProjection is not fitted")
        return json.dumps({"format": _FORMAT, "mean": self.mean_.tolist(), "axes": self.axes_.tolist()})

    @classmethod
    def from_json(cls, text: str) -> PCAProjection:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise ConfigError(f"not a {_FORMAT} document")
            mean = np.asarray(data["mean"], dtype=np.float64)
            axes = np.asarray(data["axes"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"unreadable PCAProjection JSON: {exc}") from exc
        if mean.ndim != 1 or axes.ndim != 2 or axes.shape[1] != mean.shape[0] or not axes.shape[0]:
            raise ConfigError("PCAProjection JSON: axes must be a (components, dimensions) list matching mean")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(axes))):
            raise ConfigError("PCAProjection JSON holds non-finite values")
        projection = cls(axes.shape[0])
        projection.mean_, projection.axes_ = mean, axes
        return projection
