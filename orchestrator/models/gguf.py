"""A pure-Python reader for GGUF (v2/v3) headers.

It reads the key/value metadata and the tensor table incrementally, never
the tensor data, and turns every malformed input into ``ModelFileError``.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import logging
import os
import stat
import struct
from collections import Counter
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ConfigError, ModelFileError
from orchestrator.models.ggml_types import GGML_TYPES, KV_CACHE_TYPES, LLAMA_FILE_TYPES, kv_row_bytes
from orchestrator.models.gguf_vocab import vocab_problem

__all__ = [
    "DEFAULT_ALIGNMENT", "GGML_TYPES", "GGUFInfo", "GGUF_MAGIC", "KV_CACHE_TYPES", "LLAMA_FILE_TYPES",
    "MAX_ARRAY_DEPTH", "MAX_DIMS", "MAX_KEPT_ARRAY", "MAX_KV", "MAX_READ_NUMERIC_ARRAY", "MAX_STRING",
    "MAX_TENSORS", "MAX_TOKENS", "SUPPORTED_VERSIONS", "TensorInfo", "read_gguf"
]

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Limits that no real model comes near; they keep hostile files cheap to reject.
MAX_TENSORS = 1_000_000
MAX_KV = 100_000
MAX_STRING = 64 * 1024 * 1024
MAX_ARRAY_DEPTH = 2
MAX_DIMS = 4
MAX_KEPT_ARRAY = 16  # arrays up to this length are kept in ``metadata``
MAX_READ_NUMERIC_ARRAY = 4096  # numeric arrays read for lookups (e.g. per-layer head counts)
MAX_TOKENS = 10_000_000
_INT64_MAX = 2**63 - 1
_CHUNK = 1 << 20

# GGUF metadata value types: id -> (name, struct format or None for string/array).
_STRING, _ARRAY = 8, 9
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "<B"),
    1: ("int8", "<b"),
    2: ("uint16", "<H"),
    3: ("int16", "<h"),
    4: ("uint32", "<I"),
    5: ("int32", "<i"),
    6: ("float32", "<f"),
    7: ("bool", "<?"),
    _STRING: ("string", None),
    _ARRAY: ("array", None),
    10: ("uint64", "<Q"),
    11: ("int64", "<q"),
    12: ("float64", "<d"),
}
_SCALARS = {t: struct.Struct(f) for t, (_, f) in _VALUE_TYPES.items() if f}
_MIN_SIZE = {t: (struct.calcsize(f) if f else 0) for t, (_, f) in _VALUE_TYPES.items()}
_MIN_SIZE[_STRING] = 8  # a u64 length
_MIN_SIZE[_ARRAY] = 12  # a u32 type and a u64 count
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class TensorInfo(BaseModel):
    """One entry of the tensor table (the data itself is not read)."""

    model_config = ConfigDict(frozen=True)

    name: str
    dims: tuple[int, ...]
    ggml_type: str
    offset: int  # relative to the start of the data section
    n_elements: int
    n_bytes: int


class GGUFInfo(BaseModel):
    """What a GGUF header says about a model."""

    model_config = ConfigDict(frozen=True)

    path: str
    file_size: int
    version: int
    alignment: int
    data_offset: int
    architecture: str
    name: str | None
    n_params: int
    file_type: str
    tensor_types: dict[str, int]
    tensors: tuple[TensorInfo, ...] = Field(default=(), exclude=True, repr=False)  # left out of dumps: long
    vocab_size: int
    vocab_type: str | None
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    chat_template: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    metadata: dict[str, Any]
    tokens: tuple[str, ...] | None = None

    def kv_bytes_per_token(self, type_k: str = "f16", type_v: str = "f16") -> int:
        """Bytes of KV cache one token takes across all layers (full-attention formula)."""
        missing = [
            field
            for field in ("block_count", "head_count_kv", "key_length", "value_length")
            if getattr(self, field) is None
        ]
        if missing:
            raise ConfigError(f"{self.path}: header lacks {', '.join(missing)}; cannot size the KV cache")
        assert self.block_count is not None and self.head_count_kv is not None
        assert self.key_length is not None and self.value_length is not None
        k_row = kv_row_bytes(type_k, self.key_length * self.head_count_kv, "K")
        v_row = kv_row_bytes(type_v, self.value_length * self.head_count_kv, "V")
        return self.block_count * (k_row + v_row)


class _Reader:
    """Buffered little-endian reader that knows how many bytes the file has left."""

    def __init__(self, f: BinaryIO, path: str, file_size: int) -> None:
        self._f = f
        self.path = path
        self.file_size = file_size
        self._buf = b""
        self._pos = 0
        self._base = 0  # file offset of _buf[0]

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def left(self) -> int:
        return self.file_size - self.offset

    def fail(self, reason: str) -> ModelFileError:
        return ModelFileError(self.path, reason)

    def _need(self, n: int, what: str) -> None:
        if len(self._buf) - self._pos >= n:
            return
        if n > self.left:
            raise self.fail(f"truncated: {what} needs {n} bytes at offset {self.offset}, only {self.left} left")
        rest = self._buf[self._pos :]
        self._base = self.offset
        self._buf = rest + self._f.read(max(n - len(rest), _CHUNK))
        self._pos = 0
        if len(self._buf) < n:
            raise self.fail(f"truncated: file shrank while reading {what} at offset {self.offset}")

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def unpack(self, st: struct.Struct, what: str) -> tuple[Any, ...]:
        self._need(st.size, what)
        values = st.unpack_from(self._buf, self._pos)
        self._pos += st.size
        return values

    def u32(self, what: str) -> int:
        return int(self.unpack(_U32, what)[0])

    def u64(self, what: str) -> int:
        return int(self.unpack(_U64, what)[0])

    def skip(self, n: int, what: str) -> None:
        if len(self._buf) - self._pos >= n:
            self._pos += n
            return
        if n > self.left:
            raise self.fail(f"truncated: {what} needs {n} bytes at offset {self.offset}, only {self.left} left")
        target = self.offset + n
        self._f.seek(target)
        self._base, self._buf, self._pos = target, b"", 0

    def string_length(self, what: str) -> int:
        n = self.u64(f"length of {what}")
        if n > MAX_STRING:
            raise self.fail(f"{what} claims {n} bytes, over the {MAX_STRING}-byte limit")
        if n > self.left:
            raise self.fail(
                f"truncated or corrupt: {what} claims {n} bytes at offset {self.offset}, only {self.left} left"
            )
        return n

    def string(self, what: str) -> str:
        n = self.string_length(what)
        return self.take(n, what).decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        self.skip(self.string_length(what), what)


class _Array:
    """A metadata array: its element type, length, and values when they were kept."""

    __slots__ = ("count", "type_name", "values")

    def __init__(self, type_name: str, count: int, values: list[Any] | None) -> None:
        self.type_name = type_name
        self.count = count
        self.values = values

    def summary(self) -> Any:
        if self.values is not None and self.count <= MAX_KEPT_ARRAY:
            return [v.summary() if isinstance(v, _Array) else v for v in self.values]
        return f"<array {self.type_name} x {self.count}>"


def _value_type(r: _Reader, what: str) -> int:
    vtype = r.u32(f"value type of {what}")
    if vtype not in _VALUE_TYPES:
        raise r.fail(f"{what} has unknown value type {vtype}")
    return vtype


def _read_value(r: _Reader, vtype: int, what: str, depth: int = 0, collect: list[str] | None = None) -> Any:
    """Read one metadata value of type ``vtype``; arrays come back as ``_Array``."""
    if vtype == _STRING:
        return r.string(what)
    if vtype != _ARRAY:
        return r.unpack(_SCALARS[vtype], what)[0]
    if depth >= MAX_ARRAY_DEPTH:
        raise r.fail(f"{what} nests arrays deeper than {MAX_ARRAY_DEPTH}")
    etype = _value_type(r, f"elements of {what}")
    count = r.u64(f"length of {what}")
    if count * _MIN_SIZE[etype] > r.left:
        raise r.fail(
            f"truncated or corrupt: {what} claims {count} {_VALUE_TYPES[etype][0]} elements, "
            f"more than the {r.left} bytes left allow"
        )
    type_name = _VALUE_TYPES[etype][0]
    if etype == _STRING:
        return _read_string_array(r, count, what, collect)
    if etype == _ARRAY:  # parse every inner array, keep them only when few
        items = []
        for i in range(count):
            item = _read_value(r, _ARRAY, f"{what}[{i}]", depth + 1)
            if count <= MAX_KEPT_ARRAY:
                items.append(item)
        return _Array(type_name, count, items if count <= MAX_KEPT_ARRAY else None)
    fmt = _VALUE_TYPES[etype][1]
    assert fmt is not None
    if count > MAX_READ_NUMERIC_ARRAY:
        r.skip(count * _MIN_SIZE[etype], what)
        return _Array(type_name, count, None)
    values = list(r.unpack(struct.Struct(f"<{count}{fmt[1]}"), what))
    return _Array(type_name, count, values)


def _read_string_array(r: _Reader, count: int, what: str, collect: list[str] | None) -> _Array:
    if collect is not None:
        if count > MAX_TOKENS:
            raise r.fail(f"{what} claims {count} tokens, over the {MAX_TOKENS} limit")
        collect.extend(r.string(f"{what}[{i}]") for i in range(count))
        return _Array("string", count, collect if count <= MAX_KEPT_ARRAY else None)
    if count <= MAX_KEPT_ARRAY:
        return _Array("string", count, [r.string(f"{what}[{i}]") for i in range(count)])
    for i in range(count):
        r.skip_string(f"{what}[{i}]")
    return _Array("string", count, None)


def _read_tensor(r: _Reader, index: int) -> tuple[str, tuple[int, ...], int, int]:
    name = r.string(f"name of tensor {index}")
    what = f"tensor {name!r}"
    n_dims = r.u32(f"n_dims of {what}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"{what} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
    dims = tuple(int(r.unpack(_I64, f"dimensions of {what}")[0]) for _ in range(n_dims))
    if any(d <= 0 for d in dims):
        raise r.fail(f"{what} has a dimension <= 0: {list(dims)}")
    n_elements = 1
    for d in dims:
        n_elements *= d
        if n_elements > _INT64_MAX:
            raise r.fail(f"{what} element count overflows int64: {list(dims)}")
    type_id = r.u32(f"type of {what}")
    if type_id not in GGML_TYPES:
        raise r.fail(f"{what} has unknown ggml type {type_id}")
    offset = r.u64(f"offset of {what}")
    return name, dims, type_id, offset


def read_gguf(path: str | os.PathLike[str], *, read_tokens: bool = False) -> GGUFInfo:
    """Read a GGUF file's header; raise ``ModelFileError`` for anything malformed."""
    p = str(path)
    try:
        mode = os.stat(p).st_mode
        if stat.S_ISDIR(mode):
            raise ModelFileError(p, "is a directory, not a GGUF file")
        if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
            raise ModelFileError(p, "not a regular file")
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _parse(_Reader(f, p, size), read_tokens)
    except ModelFileError:
        raise
    except IsADirectoryError:
        raise ModelFileError(p, "is a directory, not a GGUF file") from None
    except FileNotFoundError:
        raise ModelFileError(p, "no such file") from None
    except PermissionError:
        raise ModelFileError(p, "permission denied") from None
    except OSError as exc:
        raise ModelFileError(p, f"cannot read: {exc.strerror or exc}") from exc
    except MemoryError:
        raise ModelFileError(p, "header too large to read into memory") from None


def _parse(r: _Reader, read_tokens: bool) -> GGUFInfo:
    if r.file_size == 0:
        raise r.fail("empty file (0 bytes), not a GGUF model")
    magic = r.take(4, "magic") if r.file_size >= 4 else b""
    if magic != GGUF_MAGIC:
        raise r.fail(f"not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r})")
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise r.fail(f"unsupported GGUF version {version}{hint}; only 2 and 3 are read")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("metadata count")
    if n_tensors > MAX_TENSORS:
        raise r.fail(f"absurd tensor count {n_tensors} (limit {MAX_TENSORS})")
    if n_kv > MAX_KV:
        raise r.fail(f"absurd metadata count {n_kv} (limit {MAX_KV})")

    # 1. Metadata: every key/value pair, arrays summarised.
    values: dict[str, Any] = {}
    tokens: list[str] = []  # read always: the vocabulary check needs them
    for i in range(n_kv):
        key = r.string(f"key {i}")
        if key in values:
            raise r.fail(f"duplicate metadata key {key!r}")
        vtype = _value_type(r, f"key {key!r}")
        collect = tokens if key == "tokenizer.ggml.tokens" and vtype == _ARRAY else None
        values[key] = _read_value(r, vtype, f"value of {key!r}", collect=collect)

    alignment = values.get("general.alignment", DEFAULT_ALIGNMENT)
    if not _is_int(alignment) or alignment <= 0 or alignment & (alignment - 1):
        raise r.fail(f"general.alignment {alignment!r} is not a positive power of two")

    # 2. Tensor table.
    tensors_raw = []
    seen: set[str] = set()
    for i in range(n_tensors):
        entry = _read_tensor(r, i)
        if entry[0] in seen:
            raise r.fail(f"duplicate tensor name {entry[0]!r}")
        seen.add(entry[0])
        tensors_raw.append(entry)

    # 3. The data section starts at the next multiple of the alignment; every tensor must fit in the file.
    data_offset = -(-r.offset // alignment) * alignment
    tensors = tuple(_check_tensor(r, entry, data_offset, alignment) for entry in tensors_raw)
    # 4. The vocabulary must agree with its type and the embedding (llama.cpp trusts it).
    embd = next((t for t in tensors if t.name == "token_embd.weight" and len(t.dims) == 2), None)
    problem = vocab_problem(values, tokens, embd.dims[1] if embd else None)
    if problem:
        raise r.fail(problem)
    return _build_info(r, version, alignment, data_offset, values, tensors, tokens if read_tokens else None)


def _check_tensor(
    r: _Reader, entry: tuple[str, tuple[int, ...], int, int], data_offset: int, alignment: int
) -> TensorInfo:
    name, dims, type_id, offset = entry
    type_name, per_block, block_bytes = GGML_TYPES[type_id]
    if dims[0] % per_block:
        raise r.fail(f"tensor {name!r}: first dimension {dims[0]} is not a multiple of {type_name}'s block {per_block}")
    if offset % alignment:
        raise r.fail(f"tensor {name!r}: offset {offset} is not aligned to {alignment}")
    n_elements = 1
    for d in dims:
        n_elements *= d
    n_bytes = n_elements // per_block * block_bytes
    end = data_offset + offset + n_bytes
    if end > r.file_size:
        raise r.fail(
            f"tensor {name!r} data ends at byte {end}, past the end of the file ({r.file_size} bytes): truncated?"
        )
    return TensorInfo(name=name, dims=dims, ggml_type=type_name, offset=offset, n_elements=n_elements, n_bytes=n_bytes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Values:
    """Typed lookups in the metadata; a value of the wrong type is a ``ModelFileError``."""

    def __init__(self, r: _Reader, values: dict[str, Any]) -> None:
        self.r, self.values = r, values

    def get(self, key: str, kind: type, what: str) -> Any:
        value = self.values.get(key)
        ok = _is_int(value) if kind is int else isinstance(value, kind)
        if value is not None and not ok:
            raise self.r.fail(f"{key} should be {what}, got {_describe(value)}")
        return value

    def count(self, key: str) -> int | None:
        """A non-negative int, or the max of a per-layer int array."""
        value = self.values.get(key)
        if isinstance(value, _Array) and value.values and all(_is_int(v) for v in value.values):
            value = max(value.values)
        if value is not None and not _is_int(value):
            raise self.r.fail(f"{key} should be a non-negative integer, got {_describe(value)}")
        if value is not None and value < 0:
            raise self.r.fail(f"{key} is negative ({value})")
        return value


def _build_info(
    r: _Reader,
    version: int,
    alignment: int,
    data_offset: int,
    values: dict[str, Any],
    tensors: tuple[TensorInfo, ...],
    tokens: list[str] | None,
) -> GGUFInfo:
    v = _Values(r, values)
    arch = v.get("general.architecture", str, "a string")
    if not arch:
        raise r.fail("general.architecture is missing; llama.cpp cannot load it")
    embedding = v.count(f"{arch}.embedding_length")
    head_count = v.count(f"{arch}.attention.head_count")
    head_count_kv = v.count(f"{arch}.attention.head_count_kv")
    if head_count_kv is None:
        head_count_kv = head_count  # llama.cpp's default: no grouped-query attention
    derived_len = embedding // head_count if embedding is not None and head_count else None
    key_length = v.count(f"{arch}.attention.key_length")
    value_length = v.count(f"{arch}.attention.value_length")
    return GGUFInfo(
        path=r.path,
        file_size=r.file_size,
        version=version,
        alignment=alignment,
        data_offset=data_offset,
        architecture=arch,
        name=v.get("general.name", str, "a string"),
        n_params=sum(t.n_elements for t in tensors),
        file_type=_file_type(v, tensors),
        tensor_types=dict(Counter(t.ggml_type for t in tensors)),
        tensors=tensors,
        vocab_size=_vocab_size(v, arch, tensors),
        vocab_type=v.get("tokenizer.ggml.model", str, "a string"),
        context_length=v.count(f"{arch}.context_length"),
        embedding_length=embedding,
        block_count=v.count(f"{arch}.block_count"),
        head_count=head_count,
        head_count_kv=head_count_kv,
        key_length=key_length if key_length is not None else derived_len,
        value_length=value_length if value_length is not None else derived_len,
        chat_template=v.get("tokenizer.chat_template", str, "a string"),
        bos_token_id=v.get("tokenizer.ggml.bos_token_id", int, "an integer"),
        eos_token_id=v.get("tokenizer.ggml.eos_token_id", int, "an integer"),
        metadata={k: val.summary() if isinstance(val, _Array) else val for k, val in values.items()},
        tokens=tuple(tokens) if tokens is not None else None,
    )


def _file_type(v: _Values, tensors: tuple[TensorInfo, ...]) -> str:
    file_type_id = v.get("general.file_type", int, "an integer")
    file_type = LLAMA_FILE_TYPES.get(file_type_id) if file_type_id is not None else None
    if file_type is None:
        file_type = _dominant_type(tensors)
        log.debug("%s: general.file_type %r unknown; using %s", v.r.path, file_type_id, file_type)
    return file_type


def _vocab_size(v: _Values, arch: str, tensors: tuple[TensorInfo, ...]) -> int:
    token_array = v.values.get("tokenizer.ggml.tokens")
    vocab_size = v.count(f"{arch}.vocab_size")
    if vocab_size is None and isinstance(token_array, _Array):
        vocab_size = token_array.count
    if vocab_size is None:
        embd = next((t for t in tensors if t.name == "token_embd.weight" and len(t.dims) == 2), None)
        vocab_size = embd.dims[1] if embd else 0
    return vocab_size


def _dominant_type(tensors: tuple[TensorInfo, ...]) -> str:
    """The most common ggml type among matrices (llama.cpp's 'except 1d tensors'), else all tensors."""
    pool = [t.ggml_type for t in tensors if len(t.dims) >= 2] or [t.ggml_type for t in tensors]
    return Counter(pool).most_common(1)[0][0] if pool else "unknown"


def _describe(value: Any) -> str:
    if isinstance(value, _Array):
        return f"an array of {value.type_name}"
    return type(value).__name__
