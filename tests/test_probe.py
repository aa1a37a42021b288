"""Probe loads: untrusted GGUF files load in a child first; crashes, refusals and hangs become ModelLoadError.

The hostile files are copies of smollm2-135m's header (the tensor data left as sparse zeros) with one
edit the pure-Python reader accepts but llama.cpp does not: a duplicated vocabulary entry (llama.cpp
aborts on a failed GGML_ASSERT: SIGABRT) or a transposed embedding matrix (llama.cpp refuses it).
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.errors import ConfigError, ModelFileError, ModelLoadError
from orchestrator.engine._probe_child import HANG_ENV
from orchestrator.models.catalogue import pinned_model
from orchestrator.models.gguf import read_gguf
from orchestrator.engine.probe import check_loadable, needs_probe, probe_load

pytestmark = pytest.mark.timeout(60)


def _header_copy(src: Path, dst: Path) -> bytearray:
    """The source's header in a file of the source's size: the tensor data is a sparse hole of zeros."""
    info = read_gguf(src)
    with src.open("rb") as f:
        head = bytearray(f.read(info.data_offset))
    with dst.open("wb") as f:
        f.write(head)
        f.truncate(info.file_size)
    return head


def _patch(dst: Path, head: bytearray) -> Path:
    with dst.open("r+b") as f:
        f.write(head)
    read_gguf(dst)  # the edit must get past the pure-Python check, or the test proves nothing
    return dst


def _key_end(head: bytearray, key: bytes) -> int:
    """Offset just after a length-prefixed string (a metadata key or a tensor name)."""
    needle = struct.pack("<Q", len(key)) + key
    return head.rindex(needle) + len(needle)


def duplicate_token_file(src: Path, dst: Path) -> Path:
    """Token 1000's text copied over a later token of the same length: two ids for one text."""
    head = _header_copy(src, dst)
    at = _key_end(head, b"tokenizer.ggml.tokens") + 4  # skip the value type (array)
    _etype, count = struct.unpack_from("<IQ", head, at)
    at += 12
    spans = []
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", head, at)
        spans.append((at + 8, n))
        at += 8 + n
    a, n = spans[1000]
    b = next(start for start, length in spans[1001:] if length == n)
    head[b : b + n] = head[a : a + n]
    return _patch(dst, head)


def transposed_matrix_file(src: Path, dst: Path) -> Path:
    """blk.0.ffn_up.weight's two dimensions swapped: same bytes, wrong shape for the architecture.
    (A transposed token_embd.weight no longer gets this far: the header check compares its
    rows with the vocabulary.)"""
    head = _header_copy(src, dst)
    at = _key_end(head, b"blk.0.ffn_up.weight")
    assert struct.unpack_from("<I", head, at)[0] == 2
    d0, d1 = struct.unpack_from("<qq", head, at + 4)
    struct.pack_into("<qq", head, at + 4, d1, d0)
    return _patch(dst, head)


def _children() -> list[int]:
    """Pids of this process's live children (from /proc)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry))
    return found


@pytest.mark.model
def test_the_real_model_probes_fine(smollm2_path: Path) -> None:
    result = probe_load(smollm2_path)
    assert result.n_vocab == 49152 and result.n_layer == 30 and result.n_embd == 576
    assert result.n_ctx_train == 8192 and result.n_params > 100_000_000 and "llama" in result.description
    assert 0 < result.load_s <= result.wall_s


@pytest.mark.model
def test_an_assertion_abort_in_llama_cpp_becomes_model_load_error(smollm2_path: Path, tmp_path: Path) -> None:
    bad = duplicate_token_file(smollm2_path, tmp_path / "dup.gguf")
    with pytest.raises(ModelLoadError, match=r"crashed .*SIGABRT.*GGML_ASSERT\(id_to_token.size\(\) == token_to_id.size\(\)\)"):
        probe_load(bad)
    assert _children() == []


@pytest.mark.model
def test_a_refused_file_becomes_model_load_error_with_llama_cpps_reason(smollm2_path: Path, tmp_path: Path) -> None:
    bad = transposed_matrix_file(smollm2_path, tmp_path / "shape.gguf")
    with pytest.raises(ModelLoadError, match=r"could not load .*exit 2.*blk.0.ffn_up.weight' has wrong shape"):
        probe_load(bad)


@pytest.mark.model
def test_the_engine_probes_an_untrusted_file_instead_of_crashing(smollm2_path: Path, tmp_path: Path) -> None:
    bad = duplicate_token_file(smollm2_path, tmp_path / "dup.gguf")
    assert pinned_model(bad) is None  # same size as smollm2 but not its sha256: untrusted
    with pytest.raises(ModelLoadError, match="SIGABRT"):
        LocalEngine(bad, EngineConfig(n_ctx=256, max_sequences=1))  # probe="auto": without it this process would abort


@pytest.mark.model
def test_a_hanging_child_is_killed_at_the_timeout(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HANG_ENV, "30")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"timed out after 1.5 s"):
        probe_load(smollm2_path, timeout_s=1.5)
    assert time.monotonic() - start < 10
    assert _children() == []  # killed and reaped


@pytest.mark.model
def test_the_memory_limit_applies_to_the_child(smollm2_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="could not load"):
        probe_load(smollm2_path, memory_limit=150_000_000)  # less than Python, llama.cpp and the mapped file need


def test_a_malformed_header_fails_in_python_before_any_child(tmp_path: Path) -> None:
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(ModelFileError):
        probe_load(path)
    with pytest.raises(ConfigError):
        probe_load(path, timeout_s=0)


@pytest.mark.model
def test_only_untrusted_files_need_a_probe(smollm2_path: Path, tmp_path: Path) -> None:
    assert pinned_model(smollm2_path) is not None and pinned_model(smollm2_path).name == "smollm2-135m"
    assert not needs_probe(smollm2_path) and needs_probe(smollm2_path, "on")
    assert check_loadable(smollm2_path) is None  # skipped: pinned
    copy = tmp_path / "copy.gguf"
    _header_copy(smollm2_path, copy)
    assert needs_probe(copy) and not needs_probe(copy, "off")
    with pytest.raises(ConfigError):
        needs_probe(copy, "sometimes")  # type: ignore[arg-type]


@pytest.mark.model
def test_models_check_cli(smollm2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "check", str(smollm2_path), "--json"]) == 0
    good = json.loads(capsys.readouterr().out)
    assert good["pinned"] == "smollm2-135m" and good["error"] is None
    assert good["header"]["architecture"] == "llama" and good["probe"]["n_vocab"] == 49152

    bad = duplicate_token_file(smollm2_path, tmp_path / "dup.gguf")
    assert main(["models", "check", str(bad)]) == 1
    out = capsys.readouterr()
    assert "not a catalogue model" in out.out and "SIGABRT" in out.err
