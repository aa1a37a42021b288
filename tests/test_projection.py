"""PCAProjection on plain data, the featurizer's logic with a fake embedder, and the bench's
cross-validation fitting each fold's projection on training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import ConfigError
from orchestrator.routing.features import embedding_featurizer, text_to_embed
from orchestrator.types import ChatMessage, GenerationRequest
from policies.projection import PCAProjection


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """200 points in 10 dimensions varying mostly along one known direction."""
    rng = np.random.default_rng(seed)
    direction = np.zeros(10)
    direction[[2, 5]] = [0.6, -0.8]
    X = rng.normal(size=(200, 1)) * 5.0 * direction + rng.normal(size=(200, 10)) * 0.1 + 3.0
    return X, direction


def test_pca_finds_the_direction_of_most_variance():
    X, direction = _data()
    p = PCAProjection(3).fit(X)
    assert abs(float(p.axes_[0] @ direction)) > 0.99
    np.testing.assert_allclose(p.axes_ @ p.axes_.T, np.eye(3), atol=1e-10)  # orthonormal
    Z = p.transform(X)
    assert Z.shape == (200, 3)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-9)  # centred on the training mean
    var = Z.var(axis=0)
    assert var[0] > 100 * var[1] and var[1] >= var[2]


def test_pca_is_deterministic_and_round_trips_through_json():
    X, _ = _data()
    a, b = PCAProjection(4).fit(X), PCAProjection(4).fit(X[::-1].copy())  # row order does not matter
    np.testing.assert_allclose(a.transform(X), b.transform(X), atol=1e-9)
    c = PCAProjection.from_json(a.to_json())
    np.testing.assert_array_equal(c.transform(X[:5]), a.transform(X[:5]))
    assert c.transform(X[0]).shape == (1, 4)  # one sample as a 1-D vector


@pytest.mark.parametrize(
    "make",
    [
        lambda X: PCAProjection(0),
        lambda X: PCAProjection(11).fit(X),  # more components than dimensions
        lambda X: PCAProjection(5).fit(X[:4]),  # more components than samples
        lambda X: PCAProjection(2).transform(X),  # not fitted
        lambda X: PCAProjection(2).fit(X).transform(X[:, :9]),  # wrong width
        lambda X: PCAProjection(2).fit(np.where(X > 3.0, np.nan, X)),
        lambda X: PCAProjection(2).to_json(),
        lambda X: PCAProjection.from_json("{"),
        lambda X: PCAProjection.from_json('{"format": "other"}'),
        lambda X: PCAProjection.from_json('{"format": "orchestrator.pca-projection/1", "mean": [1, 2], "axes": [[1, 0, 0]]}'),
        lambda X: PCAProjection.from_json('{"format": "orchestrator.pca-projection/1", "mean": [1], "axes": [["x"]]}'),
    ],
)
def test_pca_rejects_bad_input_with_config_error(make):
    X, _ = _data()
    with pytest.raises(ConfigError):
        make(X)


class FakeEmbedder:
    """Embeds a text as [len, count of 'a', 1, 0, ...] and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def embed(self, texts):
        self.asked.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)


def test_text_to_embed_takes_the_prompt_or_the_last_user_message():
    assert text_to_embed(GenerationRequest(prompt="raw text")) == "raw text"
    chat = GenerationRequest(messages=(
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="first"),
        ChatMessage(role="assistant", content="ok"),
        ChatMessage(role="user", content="the question"),
    ))
    assert text_to_embed(chat) == "the question"
    assert text_to_embed(GenerationRequest(messages=(ChatMessage(role="system", content="only this"),))) == "only this"


def test_featurizer_builds_length_type_and_projected_embedding():
    fake = FakeEmbedder()
    plain = embedding_featurizer(fake, ("fact", "arithmetic"), task_type_of=lambda r: "arithmetic")
    feats = plain(GenerationRequest(prompt="banana"))
    assert fake.asked == [["banana"]]
    # log1p(ceil(6 / 4) = 2 tokens), one-hot of arithmetic, the embedding as given
    np.testing.assert_allclose(feats, [np.log1p(2), 0.0, 1.0, 6.0, 3.0, 1.0, 0.0, 0.0], rtol=1e-6)

    train = np.array([[len(t), t.count("a"), 1.0, 0.0, 0.0] for t in ("a", "aa", "bbbb", "abab", "aaaaaa")])
    projection = PCAProjection(2).fit(train)
    projected = embedding_featurizer(fake, (), projection=projection)(GenerationRequest(prompt="banana"))
    assert len(projected) == 1 + 2  # length, then two components (no task types)
    np.testing.assert_allclose(projected[1:], projection.transform([[6.0, 3.0, 1.0, 0.0, 0.0]])[0], rtol=1e-6)


def test_bench_cross_validation_fits_each_projection_on_training_rows_only(monkeypatch):
    from bench import routing

    fitted_rows: list[set[int]] = []

    class Spy(PCAProjection):
        def fit(self, E):
            E = np.asarray(E)
            fitted_rows.append({int(i) for i in E[:, 0]})  # column 0 holds each row's index
            return super().fit(E)

    monkeypatch.setattr(routing, "PCAProjection", Spy)
    n = 40
    rng = np.random.default_rng(3)
    E = np.hstack([np.arange(n)[:, None], rng.normal(size=(n, 6))])
    y = (rng.random(n) < 0.5).astype(float)
    X = rng.normal(size=(n, 2))
    scores, shares = routing.cross_validated(X, y, 5, 0, embeddings=E, components=3)
    order = np.random.default_rng(0).permutation(n)
    assert len(fitted_rows) == 5 and scores.shape == (n,) and len(shares) == 5
    for k, rows in enumerate(fitted_rows):
        held_out = {int(i) for i in order[k::5]}
        assert rows.isdisjoint(held_out) and rows | held_out == set(range(n))
