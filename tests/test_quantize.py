"""Requantizing the embedded model with llama.cpp's quantizer."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.errors import ConfigError, ModelFileError
from orchestrator.engine.quantize import quantize_model
from orchestrator.models.catalogue import resolve_model
from orchestrator.models.gguf import read_gguf
from orchestrator.types import GenerationRequest

pytestmark = pytest.mark.model


def test_requantize_to_q8_0_loads_and_generates(tmp_path):
    dst = tmp_path / "smollm2-q8_0.gguf"
    seen: list[tuple[int, int, str]] = []
    info = quantize_model("smollm2-135m", dst, "q8_0", progress=lambda done, total, name: seen.append((done, total, name)))
    tensors = len(read_gguf(resolve_model("smollm2-135m")).tensors)
    assert [done for done, _, _ in seen] == list(range(1, tensors + 1))  # llama.cpp's log, tensor by tensor
    assert {total for _, total, _ in seen} == {tensors} and seen[-1][2].endswith(".weight")
    assert info.file_type == "Q8_0" and info.path == str(dst) and dst.stat().st_size > 50 << 20
    assert not list(tmp_path.glob(".*partial"))
    with LocalEngine(dst, EngineConfig(n_ctx=512)) as engine:
        assert engine.generate(GenerationRequest(prompt="The capital of France is", max_tokens=4)).tokens == 4


def test_cli_quantize_and_its_refusals(tmp_path, capsys):
    dst = tmp_path / "out.gguf"
    assert main(["quantize", "smollm2-135m", str(dst), "--type", "f16"]) == 0
    assert "F16" in capsys.readouterr().out
    assert main(["quantize", "smollm2-135m", str(dst), "--type", "f16"]) == 1  # exists, no --force
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown quantization type"):
        quantize_model("smollm2-135m", tmp_path / "x.gguf", "q9_9")
    with pytest.raises(ConfigError, match=".gguf"):
        quantize_model("smollm2-135m", tmp_path / "x.bin", "q8_0")


def test_hostile_source_is_refused_before_llama_cpp_sees_it(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    with pytest.raises(ModelFileError):
        quantize_model(bad, tmp_path / "out.gguf", "q8_0")
    assert not (tmp_path / "out.gguf").exists()
