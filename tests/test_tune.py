"""The weights tune on the real model, kept short: one candidate, a short text, one repetition."""

from __future__ import annotations

import pytest

from orchestrator.engine import variants as engine_variants
from orchestrator.engine.fidelity import log_softmax, measure_fidelity
from orchestrator.engine.quantize import quantize_model
from orchestrator.engine.variants import resolve_weights, stored_record, tune_model
from orchestrator.models.variants import variant_path, variants_dir

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(900)]

NAME = "smollm2-135m"


def test_log_softmax_rows_are_log_probabilities():
    import numpy as np

    x = log_softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]]))
    assert np.allclose(np.exp(x).sum(axis=1), 1.0) and np.allclose(x[1, :2], np.log(0.5))


def test_fidelity_of_the_f32_reference_against_itself_and_of_the_shipped_file(tmp_path, smollm2_path):
    f32 = quantize_model(NAME, tmp_path / "f32.gguf", "f32").path
    got = measure_fidelity(f32, {"itself": f32, "shipped": smollm2_path}, threads=2, max_tokens=96)
    # the same file computed the same way: every best token agrees and the distributions are equal
    assert got["itself"].top1 == 1.0 and got["itself"].mean_kl == 0.0 and got["itself"].positions == 96
    # the shipped Q4_1 against its own dequantized weights: close, not equal (the issue: 96%, KL 0.0036 on 1,500 tokens)
    assert 0.85 <= got["shipped"].top1 <= 1.0 and 0.0 < got["shipped"].mean_kl < 0.05


def test_a_short_real_tune_stores_its_record_and_keeps_only_the_chosen_file(tmp_path, monkeypatch, smollm2_path):
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ORCHESTRATOR_WEIGHTS", raising=False)
    seen: list[tuple[int, int, str]] = []
    record = tune_model(NAME, reps=1, formats=["q8_0"], text_tokens=48, rows=(1, 8), progress=lambda *a: seen.append(a))

    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] == 4  # F32, Q8_0, fidelity, one timing repetition
    details = [text for _, _, text in seen]
    assert details[:2] == ["made the F32 reference", "made Q8_0"] and "measuring fidelity, 1/1 chunks of text" in details
    assert stored_record(NAME) == record
    assert record.shipped.file_type == "Q4_1" and [c.file_type for c in record.candidates] == ["Q8_0"]
    for m in (record.shipped, *record.candidates):
        assert set(m.step_s) == {1, 8} and all(s > 0 for s in m.step_s.values())
        assert m.fidelity.positions == 48 and 0.8 <= m.fidelity.top1 <= 1.0 and m.fidelity.mean_kl < 0.05
    assert record.choice.format in ("shipped", "q8_0") and record.choice.reason
    # the F32 reference is gone; the candidate stays only if it was chosen
    assert not list(variants_dir(tmp_path).glob("*.f32.gguf*"))
    q8 = variant_path(NAME, record.shipped_sha256, "q8_0", tmp_path)
    assert q8.is_file() == (record.choice.format == "q8_0")

    # the next engine start finds the decision instead of measuring again
    def no_tune(*args, **kwargs):
        raise AssertionError("tuned again")

    monkeypatch.setattr(engine_variants, "tune_model", no_tune)
    got = resolve_weights(NAME, "auto")
    assert got.format == record.choice.format and got.reason == record.choice.reason
    assert got.path == (q8 if record.choice.format == "q8_0" else smollm2_path)
