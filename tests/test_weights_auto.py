"""EngineConfig(weights=...): which file an engine loads, from stored tune records (no tune runs here).

The records are plain data written into a temporary cache; tests/test_tune.py runs a real tune.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from orchestrator.cli import main
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine import variants as engine_variants
from orchestrator.engine.probe import needs_probe
from orchestrator.engine.quantize import quantize_model
from orchestrator.engine.variants import measured_step_costs, resolve_weights
from orchestrator.errors import DiskSpaceError
from orchestrator.models.catalogue import KNOWN_MODELS
from orchestrator.models.variants import Machine, TuneRecord, save_record, trust_variant, variant_path, variants_dir
from orchestrator.models.weight_choice import DecisionRule, Fidelity, StepCosts, VariantMeasurement, WeightChoice
from orchestrator.types import GenerationRequest

pytestmark = pytest.mark.model

NAME = "smollm2-135m"
SHA = KNOWN_MODELS[NAME].sha256
THREADS = EngineConfig().threads


def measurement(fmt: str, file_type: str, step_s: dict[int, float], sha256: str = SHA) -> VariantMeasurement:
    return VariantMeasurement(
        format=fmt, file_type=file_type, size=1, sha256=sha256, step_s=step_s,
        fidelity=Fidelity(top1=0.96, mean_kl=0.004, positions=1500),
    )


# Q4_1 rows cost ~0.55 of a step each; these made-up Q8_0 times cost 0.2 (8 ms + 2 ms per row)
SHIPPED_STEPS = {1: 0.010, 4: 0.0265, 8: 0.0485, 16: 0.0925}
Q8_STEPS = {1: 0.010, 4: 0.016, 8: 0.024, 16: 0.040}


def store(cache, choice: str, q8_sha: str = "cd" * 32, load: float | None = None) -> TuneRecord:
    shipped = measurement("shipped", "Q4_1", SHIPPED_STEPS)
    q8 = measurement("q8_0", "Q8_0", Q8_STEPS, q8_sha)
    picked = q8 if choice == "q8_0" else shipped
    record = TuneRecord(
        model=NAME, shipped_sha256=SHA, machine=Machine.here(THREADS), rule=DecisionRule(), shipped=shipped,
        candidates=(q8,), choice=WeightChoice(format=choice, file_type=picked.file_type, reason=f"test chose {choice}"),
        text_tokens=1500, reps=5, load=load,
    )
    save_record(record, cache)
    return record


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # one cache: the shipped file's sha256 is checked once


@pytest.fixture
def cache(module_cache, monkeypatch):
    """A clean variants folder in a temporary cache, weights not pinned, and no real tune allowed."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(module_cache))
    monkeypatch.delenv("ORCHESTRATOR_WEIGHTS", raising=False)
    for path in variants_dir(module_cache).glob("*") if variants_dir(module_cache).exists() else ():
        path.unlink()

    def no_tune(*args, **kwargs):
        raise AssertionError("a tune started")

    monkeypatch.setattr(engine_variants, "tune_model", no_tune)
    return module_cache


def test_weights_setting_is_checked():
    assert EngineConfig().weights == "auto"
    EngineConfig(weights="shipped")
    EngineConfig(weights="/models/x.gguf")
    with pytest.raises(ValidationError, match="weights must be"):
        EngineConfig(weights="fastest")


def test_paths_are_used_as_given_and_shipped_means_shipped(cache, smollm2_path):
    store(cache, "q8_0")
    given = resolve_weights(smollm2_path, "auto")
    assert (given.path, given.format) == (smollm2_path, "given")
    shipped = resolve_weights(NAME, "shipped")
    assert shipped.path == smollm2_path and shipped.format == "shipped" and "weights='shipped'" in shipped.reason
    named = resolve_weights(NAME, str(smollm2_path))
    assert named.path == smollm2_path and named.format == "given"


def test_the_environment_pins_the_shipped_file(cache, smollm2_path, monkeypatch):
    store(cache, "q8_0")
    monkeypatch.setenv("ORCHESTRATOR_WEIGHTS", "shipped")
    got = resolve_weights(NAME, "auto")
    assert got.path == smollm2_path and "ORCHESTRATOR_WEIGHTS" in got.reason


def test_a_stored_shipped_choice_is_used_without_measuring_again(cache, smollm2_path):
    store(cache, "shipped")
    got = resolve_weights(NAME, "auto", threads=THREADS)
    assert (got.path, got.format, got.reason) == (smollm2_path, "shipped", "test chose shipped")


def test_a_tune_that_cannot_run_keeps_the_shipped_file_and_says_why(cache, smollm2_path, monkeypatch, caplog):
    def short(*args, **kwargs):
        raise DiskSpaceError("tuning needs about 900 MiB free", folder=str(cache), needed=900 << 20, free=1)

    monkeypatch.setattr(engine_variants, "tune_model", short)
    got = resolve_weights(NAME, "auto", threads=THREADS)
    assert got.path == smollm2_path and got.format == "shipped" and "900 MiB" in got.reason
    assert "tune of smollm2-135m failed" in caplog.text


def test_auto_loads_the_stored_variant_and_the_speculator_starts_from_its_step_costs(cache, smollm2_path):
    path = variant_path(NAME, SHA, "q8_0", cache)
    quantize_model(NAME, path, "q8_0")
    store(cache, "q8_0", q8_sha=trust_variant(path))
    assert not needs_probe(path)  # made here from the verified file: no probe load
    with LocalEngine(NAME, EngineConfig(n_ctx=256, max_sequences=2)) as engine:
        assert engine.weights.format == "q8_0" and engine.weights.path == path and engine.info.file_type == "Q8_0"
        assert engine.weights.reason == "test chose q8_0" and engine.name == NAME
        # before any step: the tune's measured costs (0.2 per row), not the constant prior (0.55)
        assert engine.speculator.costs.extra_row_cost() == pytest.approx(StepCosts(step_s=Q8_STEPS).extra_row_cost, abs=0.02)
        assert engine.speculator.costs.one_row_seconds() == pytest.approx(0.010, rel=0.1)
        assert engine.generate(GenerationRequest(prompt="The capital of France is", max_tokens=4)).tokens == 4
    # the shipped file has its own measured costs; a file nobody tuned has none
    assert measured_step_costs(smollm2_path, THREADS).extra_row_cost == pytest.approx(0.55, abs=0.01)
    assert measured_step_costs(smollm2_path, THREADS + 1) is None
    path.with_name(path.name + ".trusted").unlink()  # an untrusted copy: its name alone proves nothing
    assert measured_step_costs(path, THREADS) is None


def test_a_tune_under_load_gives_the_speculator_no_step_costs(cache, smollm2_path):
    store(cache, "shipped", load=4.0)  # four runnable threads per CPU: the timings measured the contention
    assert measured_step_costs(smollm2_path, THREADS) is None
    store(cache, "shipped", load=0.5)
    assert measured_step_costs(smollm2_path, THREADS).one_row_s == pytest.approx(0.010)


def test_a_deleted_variant_is_made_again_and_must_match_what_was_measured(cache, smollm2_path):
    path = variant_path(NAME, SHA, "q8_0", cache)
    quantize_model(NAME, path, "q8_0")
    digest = trust_variant(path)
    store(cache, "q8_0", q8_sha=digest)
    path.unlink()
    got = resolve_weights(NAME, "auto", threads=THREADS)
    assert got.format == "q8_0" and got.path == path and path.is_file()  # the same bytes again
    store(cache, "q8_0", q8_sha="ef" * 32)  # a record whose file was something else
    path.unlink()
    got = resolve_weights(NAME, "auto", threads=THREADS)
    assert got.format == "shipped" and "differs from the one measured" in got.reason and not path.exists()


def test_models_list_shows_the_weights_in_use_and_tune_prints_its_figures(cache, capsys, monkeypatch):
    assert main(["models"]) == 0
    assert "weights in use: shipped file until measured" in capsys.readouterr().out
    record = store(cache, "q8_0")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "weights in use: Q8_0 variant, measured" in out and "test chose q8_0" in out

    calls = []

    def fake_tune(name, **kwargs):
        calls.append((name, kwargs["reps"], kwargs["formats"]))
        kwargs["progress"](1, 2, "made Q8_0")
        return record

    monkeypatch.setattr(engine_variants, "tune_model", fake_tune)
    assert main(["models", "tune", NAME, "--reps", "2", "--formats", "q8_0"]) == 0
    out = capsys.readouterr().out
    assert calls == [(NAME, 2, ["q8_0"])]
    assert "Q4_1 (shipped)" in out and "chosen: q8_0 (test chose q8_0)" in out
    assert main(["models", "tune", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["choice"]["format"] == "q8_0"
