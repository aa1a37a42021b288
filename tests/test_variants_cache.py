"""Weight variants in the cache: records, names, trust sidecars, the disk check (file work only)."""

from __future__ import annotations

import os
import shutil
from collections import namedtuple

import pytest

from orchestrator.errors import ConfigError, DiskSpaceError
from orchestrator.models import variants
from orchestrator.models.variants import (
    Machine,
    TuneRecord,
    check_free_space,
    find_record,
    load_record,
    parse_variant_name,
    record_path,
    save_record,
    trust_variant,
    trusted_variant,
    variant_path,
    weights_override,
)
from orchestrator.models.weight_choice import DecisionRule, Fidelity, VariantMeasurement, choose_weights

SHA = "ab" * 32


def measurement(fmt: str, file_type: str, one: float, eight: float, top1: float = 0.96, kl: float = 0.004) -> VariantMeasurement:
    return VariantMeasurement(
        format=fmt, file_type=file_type, size=1 << 20, sha256="cd" * 32,
        step_s={1: one, 4: one * 1.5, 8: eight, 16: eight * 1.8}, fidelity=Fidelity(top1=top1, mean_kl=kl, positions=1500),
    )


def record(machine: Machine, name: str = "smollm2-135m", sha: str = SHA) -> TuneRecord:
    shipped = measurement("shipped", "Q4_1", 0.0064, 0.028)
    q8 = measurement("q8_0", "Q8_0", 0.0065, 0.019, kl=0.0047)
    return TuneRecord(
        model=name, shipped_sha256=sha, machine=machine, rule=DecisionRule(), shipped=shipped, candidates=(q8,),
        choice=choose_weights(shipped, [q8]), text_tokens=1500, reps=5,
    )


@pytest.fixture
def machine() -> Machine:
    return Machine(cpu="Test CPU 3000", threads=2, llama_cpp="0.3.36")


def test_a_record_round_trips_and_is_keyed_by_model_file_and_machine(tmp_path, machine):
    rec = record(machine)
    path = save_record(rec, tmp_path)
    assert path == record_path("smollm2-135m", SHA, machine, tmp_path) and path.parent == tmp_path / "variants"
    got = load_record("smollm2-135m", SHA, machine, tmp_path)
    assert got == rec and got.choice.format == "q8_0" and got.measurement("q8_0").file_type == "Q8_0"
    assert got.measurement("shipped") == rec.shipped and got.measurement("f16") is None
    # another thread count, another CPU or another llama.cpp is another machine: no record
    assert load_record("smollm2-135m", SHA, machine.model_copy(update={"threads": 4}), tmp_path) is None
    assert load_record("smollm2-135m", SHA, machine.model_copy(update={"cpu": "Other"}), tmp_path) is None
    assert load_record("smollm2-135m", "ef" * 32, machine, tmp_path) is None


def test_a_corrupt_or_mislabelled_record_is_ignored(tmp_path, machine, caplog):
    path = save_record(record(machine), tmp_path)
    path.write_text("{not json")
    assert load_record("smollm2-135m", SHA, machine, tmp_path) is None
    assert "unreadable" in caplog.text
    # a record copied under another machine's key (its contents say otherwise)
    other = machine.model_copy(update={"threads": 8})
    save_record(record(machine), tmp_path)
    record_path("smollm2-135m", SHA, machine, tmp_path).rename(record_path("smollm2-135m", SHA, other, tmp_path))
    assert load_record("smollm2-135m", SHA, other, tmp_path) is None


def test_names_and_paths_are_built_from_validated_parts(tmp_path):
    path = variant_path("smollm2-135m", SHA, "q8_0", tmp_path)
    assert path.name == f"smollm2-135m-{SHA[:16]}.q8_0.gguf"
    assert parse_variant_name(path) == ("smollm2-135m", SHA[:16], "q8_0")
    assert parse_variant_name(tmp_path / "model.gguf") is None
    for bad in (("../x", SHA, "q8_0"), ("smollm2-135m", "not-a-sha", "q8_0"), ("smollm2-135m", SHA, "../q8")):
        with pytest.raises(ConfigError):
            variant_path(*bad, tmp_path)


def test_find_record_from_a_variant_file_name(tmp_path, machine):
    save_record(record(machine), tmp_path)
    variant = variant_path("smollm2-135m", SHA, "q8_0", tmp_path)
    assert find_record(variant, machine, tmp_path).choice.format == "q8_0"
    assert find_record(tmp_path / "elsewhere.gguf", machine, tmp_path) is None
    assert find_record(variant, machine.model_copy(update={"threads": 3}), tmp_path) is None


def test_a_variant_is_trusted_only_while_unchanged_and_only_in_the_cache(tmp_path):
    path = variant_path("smollm2-135m", SHA, "q8_0", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF" + b"\0" * 100)
    assert trusted_variant(path, tmp_path) is None  # no sidecar yet
    digest = trust_variant(path)
    assert len(digest) == 64 and trusted_variant(path, tmp_path) == digest
    path.write_bytes(b"GGUF" + b"\1" * 100)  # changed after the tune wrote it
    os.utime(path, ns=(1, 1))
    assert trusted_variant(path, tmp_path) is None
    # the same file and sidecar copied outside the variants folder: not trusted
    trust_variant(path)
    elsewhere = tmp_path / path.name
    shutil.copy2(path, elsewhere)
    shutil.copy2(path.with_name(path.name + ".trusted"), tmp_path / (path.name + ".trusted"))
    assert trusted_variant(elsewhere, tmp_path) is None


def test_short_disk_space_is_a_typed_error_that_says_how_much(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(variants.shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 100 << 20))
    with pytest.raises(DiskSpaceError, match=r"tuning x needs about 1088 MiB free .* 100 MiB are free") as info:
        check_free_space(tmp_path / "not" / "made" / "yet", 1 << 30, "tuning x")
    assert info.value.free == 100 << 20 and info.value.needed > 1 << 30
    check_free_space(tmp_path, 1 << 20, "a small file")  # 100 MiB free is enough for 1 MiB


def test_the_weights_override_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_WEIGHTS", "shipped")
    assert weights_override() == "shipped"
    for value in ("", "auto", "AUTO"):
        monkeypatch.setenv("ORCHESTRATOR_WEIGHTS", value)
        assert weights_override() is None
    monkeypatch.setenv("ORCHESTRATOR_WEIGHTS", "fast")
    with pytest.raises(ConfigError, match="ORCHESTRATOR_WEIGHTS"):
        weights_override()


def test_the_machine_is_described_and_keyed_stably():
    here = Machine.here(3)
    assert here.threads == 3 and here.cpu and here.llama_cpp
    assert here.key == Machine.here(3).key != Machine.here(4).key
    assert "3 threads" in here.describe()


def test_a_record_says_when_it_was_measured_under_load(machine):
    assert not record(machine).contended
    assert record(machine).model_copy(update={"load": 4.5}).contended
