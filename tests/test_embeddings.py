"""LocalEngine.embed on smollm2-135m: shape, unit norm, determinism, meaning, bounds, generation
alongside; and the learned router fed by the embedding featurizer, once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.embedder import MAX_EMBED_TOKENS, embed_tokens
from orchestrator.errors import EngineError, RequestError
from orchestrator.types import GenerationRequest

pytestmark = pytest.mark.timeout(120)

# (a, a paraphrase of a, an unrelated sentence)
TRIPLES = [
    ("The cat sat on the mat.", "A cat was sitting on the rug.", "Interest rates rose by half a percent today."),
    ("How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The train to Berlin leaves at nine."),
    ("The football match ended in a draw.", "The soccer game finished with a tied score.", "Photosynthesis turns light into chemical energy."),
    ("I love this phone, the battery lasts for days.", "Great phone with excellent battery life.", "The river flooded the village last spring."),
    ("What is the capital of France?", "Which city is the capital of France?", "Please compute 17 times 23."),
]
# Measured on smollm2-135m Q4_1: paraphrase cosines 0.91-0.96, unrelated 0.59-0.80; the smallest
# gap in a triple was 0.14 (mean-pooled states of a small causal model all point roughly one way).
MARGIN = 0.1


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=512, max_sequences=4, n_threads=1), name="smollm2-embed") as e:
        yield e


def test_shape_dtype_and_unit_norm(engine):
    E = engine.embed(["Hello there.", "A second, longer text about the weather in spring.", "3 + 4 ="])
    assert E.shape == (3, engine._model.n_embd) and E.shape[1] == 576 and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(E)) and not np.allclose(E[0], E[1])


def test_deterministic_and_independent_of_packing(engine):
    texts = [x for triple in TRIPLES[:2] for x in triple]
    packed = engine.embed(texts)
    again = engine.embed(texts)
    np.testing.assert_array_equal(packed, again)
    # each text alone gives the same direction as packed with others (llama.cpp's kernels differ by
    # batch shape, ~2e-3 per coordinate measured): no sequence leaks into another
    alone = np.stack([engine.embed([t])[0] for t in texts])
    assert np.all(np.sum(alone * packed, axis=1) > 0.9999)
    # more texts than one pack holds (8) come back in order
    many = engine.embed(texts * 3)
    assert np.all(np.sum(many * np.vstack([packed] * 3), axis=1) > 0.9999)


def test_paraphrases_are_closer_than_unrelated_sentences(engine):
    E = engine.embed([x for triple in TRIPLES for x in triple])
    for i, triple in enumerate(TRIPLES):
        a, b, c = E[3 * i : 3 * i + 3]
        paraphrase, unrelated = float(a @ b), max(float(a @ c), float(b @ c))
        assert paraphrase > unrelated + MARGIN, (triple, paraphrase, unrelated)


def test_empty_and_bad_input_raise_request_error(engine):
    assert engine.embed([]).shape == (0, 576)
    with pytest.raises(RequestError, match="empty"):
        engine.embed(["fine", ""])
    with pytest.raises(RequestError, match="list"):
        engine.embed("one string")
    with pytest.raises(RequestError, match="not a str"):
        engine.embed(["fine", 3])  # type: ignore[list-item]


def test_huge_text_is_cut_to_its_first_tokens(engine):
    head = "The quick brown fox jumps over the lazy dog. " * 2000  # ~20k tokens, 90k characters
    assert len(engine.tokenize(head)) > 10 * MAX_EMBED_TOKENS
    a, b = embed_tokens(engine._model, [head + "An ending about taxes.", head[:-1] + "! An ending about music."])
    assert len(a) == MAX_EMBED_TOKENS and a == b  # only the first MAX_EMBED_TOKENS tokens count
    E = engine.embed([head + "An ending about taxes.", "An ending about taxes."])  # one full pack, then a short one
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert float(E[0] @ E[1]) < 0.99


def test_generation_is_unchanged_while_and_after_embedding(engine):
    req = GenerationRequest(prompt="The capital of France is", max_tokens=12)
    alone = engine.generate(req).choices[0].text
    texts = [x for triple in TRIPLES[:3] for x in triple]
    expected = engine.embed(texts)
    got: list[np.ndarray] = []
    # embeddings from another thread while generations are in flight
    handles = [engine.submit(req) for _ in range(3)]
    worker = threading.Thread(target=lambda: got.extend(engine.embed(texts) for _ in range(2)))
    worker.start()
    answers = [h.result(timeout=60).choices[0].text for h in handles]
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert answers == [alone] * 3
    assert len(got) == 2
    for E in got:
        np.testing.assert_array_equal(E, expected)  # same texts, same packs: the same numbers
    assert engine.generate(req).choices[0].text == alone


def test_embed_on_a_closed_engine_raises(smollm2_path):
    e = LocalEngine(smollm2_path, EngineConfig(n_ctx=128, max_sequences=1, n_threads=1))
    assert e.embed(["before closing"]).shape == (1, 576)
    e.close()
    with pytest.raises(EngineError, match="closed"):
        e.embed(["after closing"])


def test_learned_router_decides_on_embedding_features(engine):
    from orchestrator.backends import ScriptedBackend
    from orchestrator.routing.features import embedding_featurizer
    from orchestrator.routing.router import Router
    from policies.learned import LearnedPolicy, LogisticRouter
    from policies.privacy import PrivacyPolicy
    from policies.projection import PCAProjection

    # logged outcomes: the small model gets facts right and sums wrong
    facts = ["What is the capital of Italy?", "Who wrote Hamlet?", "What colour is grass?", "What is the capital of Spain?"]
    sums = ["What is 48 times 97?", "Compute 312 plus 789.", "What is 73 times 64?", "Compute 905 minus 468."]
    projection = PCAProjection(3).fit(engine.embed(facts + sums))
    featurize = embedding_featurizer(engine, projection=projection)
    X = np.array([featurize(GenerationRequest(prompt=t)) for t in facts + sums])
    assert X.shape == (8, 1 + 3)  # length, then three components; no task types given
    model = LogisticRouter(l2=0.1).fit(X, [1, 1, 1, 1, 0, 0, 0, 0])
    router = Router(
        [ScriptedBackend(["ok"], name="small"), ScriptedBackend(["ok"], name="large")],
        policies=[PrivacyPolicy(), LearnedPolicy(model, threshold=0.5)],
        featurize=featurize,
    )
    keep = router.decide(GenerationRequest(prompt="What is the capital of Portugal?"))
    escalate = router.decide(GenerationRequest(prompt="What is 57 times 86?"))
    assert (keep.backend, keep.policy) == ("small", "learned") and ">=" in keep.reason
    assert (escalate.backend, escalate.policy) == ("large", "learned") and "escalate" in escalate.reason
