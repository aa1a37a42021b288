"""A corpus of hostile GGUF files, made by code from the real smollm2-135m (never committed).

Each file goes through ``models check`` (header check, then the probe child) and through the
engine (``LocalEngine`` with ``probe="auto"``, as for any file that is not a pinned catalogue
model, then a raw and a chat generation when it loads). Every outcome must be a typed
``OrchestratorError`` or a clean load; a crash of llama.cpp in this process would end the test
run itself. The tensor data is left as a sparse hole of zeros: the files are cheap to make.
"""

from __future__ import annotations

import copy
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.cli.models_check import check_model
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.probe import probe_load
from orchestrator.errors import ModelError, ModelFileError, ModelLoadError, OrchestratorError
from orchestrator.models.catalogue import resolve_model
from orchestrator.models.gguf import read_gguf
from orchestrator.types import ChatMessage, GenerationRequest

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parent.parent

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


# ---------------------------------------------------------------- a small GGUF rewriter


def _gstr(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


@dataclass
class Model:
    """A GGUF file as editable parts: metadata as raw (type, payload) pairs, the tensor table, sizes."""

    kvs: dict[str, tuple[int, bytes]]
    tensors: list[tuple[str, list[int], int, int]]  # name, dims, ggml type, offset in the data
    data_size: int
    version: int = 3
    extra: dict[str, object] = field(default_factory=dict)

    def set_str(self, key: str, value: str | bytes) -> Model:
        self.kvs[key] = (STRING, _gstr(value))
        return self

    def set_scalar(self, key: str, vtype: int, value: object) -> Model:
        self.kvs[key] = (vtype, struct.pack(_SCALAR[vtype], value))
        return self

    def set_array(self, key: str, etype: int, items: list[bytes]) -> Model:
        self.kvs[key] = (ARRAY, struct.pack("<IQ", etype, len(items)) + b"".join(items))
        return self

    def strings(self, key: str) -> list[bytes]:
        vtype, payload = self.kvs[key]
        _etype, count = struct.unpack_from("<IQ", payload)
        at, out = 12, []
        for _ in range(count):
            (n,) = struct.unpack_from("<Q", payload, at)
            out.append(payload[at + 8 : at + 8 + n])
            at += 8 + n
        return out

    def set_strings(self, key: str, items: list[bytes]) -> Model:
        return self.set_array(key, STRING, [_gstr(i) for i in items])

    def encode(self) -> bytes:
        head = b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(self.kvs))
        kv = b"".join(_gstr(k) + struct.pack("<I", t) + p for k, (t, p) in self.kvs.items())
        table = b"".join(
            _gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<q", d) for d in dims) + struct.pack("<IQ", t, off)
            for name, dims, t, off in self.tensors
        )
        body = head + kv + table
        return body + b"\0" * (-len(body) % 32)

    def write(self, path: Path, *, cut: int | None = None) -> Path:
        header = self.encode()
        with path.open("wb") as f:
            f.write(header if cut is None else header[:cut])
            f.truncate(len(header) + self.data_size if cut is None else min(cut, len(header) + self.data_size))
        return path


def _parse(path: Path) -> Model:
    """The real file's metadata (raw payloads, kept byte for byte) and tensor table."""
    info = read_gguf(path)
    with path.open("rb") as f:
        data = f.read(info.data_offset)
    _magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data)
    at, kvs = 24, {}
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, at)
        key = data[at + 8 : at + 8 + n].decode()
        at += 8 + n
        (vtype,) = struct.unpack_from("<I", data, at)
        at += 4
        start = at
        at = _skip_value(data, at, vtype)
        kvs[key] = (vtype, data[start:at])
    tensors = []
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", data, at)
        name = data[at + 8 : at + 8 + n].decode()
        at += 8 + n
        (n_dims,) = struct.unpack_from("<I", data, at)
        dims = list(struct.unpack_from(f"<{n_dims}q", data, at + 4))
        at += 4 + 8 * n_dims
        ggml_type, offset = struct.unpack_from("<IQ", data, at)
        at += 12
        tensors.append((name, dims, ggml_type, offset))
    return Model(kvs, tensors, info.file_size - info.data_offset, version)


def _skip_value(data: bytes, at: int, vtype: int) -> int:
    if vtype == STRING:
        return at + 8 + struct.unpack_from("<Q", data, at)[0]
    if vtype != ARRAY:
        return at + struct.calcsize(_SCALAR[vtype])
    etype, count = struct.unpack_from("<IQ", data, at)
    at += 12
    if etype in _SCALAR:
        return at + count * struct.calcsize(_SCALAR[etype])
    for _ in range(count):
        at = _skip_value(data, at, etype)
    return at


# ---------------------------------------------------------------- the corpus


def _spm(m: Model, *, scores: bool) -> Model:
    m.set_str("tokenizer.ggml.model", "llama").set_scalar("tokenizer.ggml.add_space_prefix", BOOL, True)
    if scores:
        m.set_array("tokenizer.ggml.scores", F32, [struct.pack("<f", -float(i)) for i in range(len(m.strings("tokenizer.ggml.tokens")))])
    return m


def _tokens(edit: Callable[[list[bytes]], list[bytes]]) -> Callable[[Model], Model]:
    return lambda m: m.set_strings("tokenizer.ggml.tokens", edit(m.strings("tokenizer.ggml.tokens")))


def _duplicate(tokens: list[bytes]) -> list[bytes]:
    tokens[2000] = tokens[1000]
    return tokens


def _tensor(name: str, edit: Callable[[tuple[str, list[int], int, int]], tuple[str, list[int], int, int] | None]) -> Callable[[Model], Model]:
    def apply(m: Model) -> Model:
        m.tensors = [t for t in (edit(t) if t[0] == name else t for t in m.tensors) if t is not None]
        return m
    return apply


def _add_tensor(m: Model) -> Model:
    m.tensors.append(("blk.99.attn_q.weight", [32], 0, m.data_size - 128))
    return m


def _token_types(value: int) -> Callable[[Model], Model]:
    def apply(m: Model) -> Model:
        n = len(m.strings("tokenizer.ggml.tokens"))
        return m.set_array("tokenizer.ggml.token_type", I32, [struct.pack("<i", value)] * n)
    return apply


def _drop(key: str) -> Callable[[Model], Model]:
    def apply(m: Model) -> Model:
        del m.kvs[key]
        return m
    return apply


def _raw(key: str, vtype: int, payload: bytes) -> Callable[[Model], Model]:
    def apply(m: Model) -> Model:
        m.kvs[key] = (vtype, payload)
        return m
    return apply


_TEMPLATES = {
    "template: loop bomb": "{% for i in range(10**9) %}x{% endfor %}",
    "template: recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "template: sandbox escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "template: syntax error": "{% for %}",
    "template: output bomb": "{{ 'x' * 10**9 }}",
    "template: special tokens and bytes": "{% for m in messages %}<|im_start|>{{ m.content }}\x00\xff<|im_end|>{% endfor %}",
}

CASES: dict[str, Callable[[Model], Model]] = {
    "the issue's case: SPM type on the BPE vocabulary": lambda m: _spm(m, scores=False),
    "SPM type with scores, no byte tokens": lambda m: _spm(m, scores=True),
    "BPE without merges": _drop("tokenizer.ggml.merges"),
    "unknown tokenizer type": lambda m: m.set_str("tokenizer.ggml.model", "sentencepiece-9000"),
    "WPM (bert) type on the BPE vocabulary": lambda m: m.set_str("tokenizer.ggml.model", "bert"),
    "UGM (t5) type on the BPE vocabulary": lambda m: m.set_str("tokenizer.ggml.model", "t5"),
    "RWKV type on the BPE vocabulary": lambda m: m.set_str("tokenizer.ggml.model", "rwkv"),
    "no vocabulary type": lambda m: m.set_str("tokenizer.ggml.model", "none"),
    "a duplicated token": _tokens(_duplicate),
    "one token fewer than embedding rows": _tokens(lambda t: t[:-1]),
    "one token more than embedding rows": _tokens(lambda t: t + [b"<extra>"]),
    "empty token strings": _tokens(lambda t: t[:100] + [b""] * 10 + t[110:]),
    "invalid UTF-8 tokens": _tokens(lambda t: t[:100] + [b"\xff\xfe", b"\xc3"] + t[102:]),
    "token types too few": lambda m: m.set_array("tokenizer.ggml.token_type", I32, [struct.pack("<i", 1)] * 10),
    "token types out of range": _token_types(99),
    "every token a control token": _token_types(3),
    "scores too few": lambda m: m.set_array("tokenizer.ggml.scores", F32, [struct.pack("<f", 0.0)] * 10),
    "bos token id past the vocabulary": lambda m: m.set_scalar("tokenizer.ggml.bos_token_id", U32, 10**9),
    "eos token id past the vocabulary": lambda m: m.set_scalar("tokenizer.ggml.eos_token_id", U32, 49152),
    "vocab_size says 10": lambda m: m.set_scalar("llama.vocab_size", U32, 10),
    "tokens not strings": lambda m: m.set_array("tokenizer.ggml.tokens", U32, [struct.pack("<I", 1)] * 49152),
    "transposed embedding": _tensor("token_embd.weight", lambda t: (t[0], t[1][::-1], t[2], t[3])),
    "attention matrix of the wrong width": _tensor("blk.0.attn_q.weight", lambda t: (t[0], [t[1][0] * 2, t[1][1] // 2], t[2], t[3])),
    "a missing tensor": _tensor("blk.3.ffn_up.weight", lambda t: None),
    "an extra tensor": _add_tensor,
    "a tensor past the end of the file": _tensor("output_norm.weight", lambda t: (t[0], t[1], t[2], 10**12)),
    "unknown ggml type": _tensor("output_norm.weight", lambda t: (t[0], t[1], 250, t[3])),
    "block count 10,000": lambda m: m.set_scalar("llama.block_count", U32, 10_000),
    "zero attention heads": lambda m: m.set_scalar("llama.attention.head_count", U32, 0),
    "embedding length off by one": lambda m: m.set_scalar("llama.embedding_length", U32, 577),
    "context length 2**40": lambda m: m.set_scalar("llama.context_length", U64, 2**40),
    "alignment 4096": lambda m: m.set_scalar("general.alignment", U32, 4096),
    "absurd string length": _raw("general.name", STRING, struct.pack("<Q", 2**40) + b"x"),
    "absurd array length": _raw("general.languages", ARRAY, struct.pack("<IQ", STRING, 2**50)),
    "chat template not a string": lambda m: m.set_scalar("tokenizer.chat_template", U32, 7),
    "a 2 MB chat template": lambda m: m.set_str("tokenizer.chat_template", "{{ 'x' }}" * 250_000),
    **{name: (lambda source: lambda m: m.set_str("tokenizer.chat_template", source))(src) for name, src in _TEMPLATES.items()},
}
TRUNCATIONS = (10, 24, 1000, 200_000, 1_700_000)  # inside the header, the tokens, the tensor table


@pytest.fixture(scope="module")
def smollm2_model() -> tuple[Path, Model]:
    path = resolve_model("smollm2-135m")
    return path, _parse(path)


_PARSED: dict[Path, Model] = {}


def _fresh(source: Path) -> Model:
    """A copy of the real file's parts to edit."""
    if source not in _PARSED:
        _PARSED[source] = _parse(source)
    return copy.deepcopy(_PARSED[source])


# ---------------------------------------------------------------- outcomes


def _engine_outcome(path: Path) -> str:
    """Loads ``path`` as an untrusted file and generates; the outcome, or raises what is not typed."""
    try:
        # One thread: on a busy machine, two decode many times slower (threads wait on each other).
        config = EngineConfig(n_ctx=256, max_sequences=1, prefix_cache_slots=0, n_threads=1, probe="auto")
        with LocalEngine(path, config) as engine:
            for request in (GenerationRequest(prompt="héllo 中文 🙂 \x01", max_tokens=2),
                            GenerationRequest(messages=(ChatMessage(role="user", content="hi ü 🙂"),), max_tokens=2)):
                try:
                    engine.generate(request)
                except OrchestratorError as exc:  # e.g. ChatTemplateError for a template the engine will not use
                    return f"loaded; request refused: {type(exc).__name__}"
        return "loaded and generated"
    except OrchestratorError as exc:
        return f"refused: {type(exc).__name__}"


def test_the_corpus_gives_typed_errors_or_clean_loads(smollm2_model, tmp_path):
    source, original = smollm2_model
    assert original.encode()[:4] == b"GGUF" and _parse(source).tensors == original.tensors  # the rewriter reads it back
    files = {name: edit(_fresh(source)).write(tmp_path / f"case{i}.gguf") for i, (name, edit) in enumerate(CASES.items())}
    files |= {f"truncated at byte {cut}": original.write(tmp_path / f"cut{cut}.gguf", cut=cut) for cut in TRUNCATIONS}

    def run(name: str) -> tuple[str, str]:
        report = check_model(str(files[name]), timeout_s=120)
        checked = "loads" if report["error"] is None else report["error"].split(":", 1)[0]
        return checked, _engine_outcome(files[name])

    # Two at a time: each probe is a child process, and most of a case is waiting for it.
    outcomes: dict[str, tuple[str, str]] = {}
    crashed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, name) for name in files}
        for name, future in futures.items():
            try:
                outcomes[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - anything untyped is the failure this test counts
                crashed[name] = f"{type(exc).__name__}: {exc}"
    tried, handled = len(files), len(outcomes)
    print(f"\nGGUF corpus: {tried} tried, {handled} handled, {len(crashed)} crashed")
    for name, (checked, engine) in outcomes.items():
        print(f"  {name}: models check -> {checked}; engine -> {engine}")
    assert not crashed, crashed
    assert tried == handled == len(CASES) + len(TRUNCATIONS)
    # The header check refuses what it can see; the SPM case never reaches llama.cpp.
    assert outcomes["the issue's case: SPM type on the BPE vocabulary"] == ("ModelFileError", "refused: ModelFileError")
    assert outcomes["a duplicated token"] == ("ModelLoadError", "refused: ModelLoadError")  # llama.cpp aborts: in the child
    for cut in TRUNCATIONS:
        assert outcomes[f"truncated at byte {cut}"][0] == "ModelFileError"


def test_the_probe_child_tokenizes_text_and_catches_the_spm_abort(smollm2_model, tmp_path):
    # Regression: the probe decoded one BOS token and never tokenized text, so it passed a file
    # whose first tokenization aborts (std::out_of_range in llama_vocab::byte_to_token). Skip the
    # header check (info=) to show the child itself now catches it.
    source, _ = smollm2_model
    bad = _spm(_fresh(source), scores=True).write(tmp_path / "spm.gguf")
    with pytest.raises(ModelFileError, match="byte tokens"):
        read_gguf(bad)
    with pytest.raises(ModelLoadError, match="crashed .*SIGABRT"):
        probe_load(bad, info=read_gguf(source))
    assert probe_load(source).n_vocab == 49152  # the real file still passes the longer probe


def test_generate_on_the_issues_file_is_a_typed_error_not_an_abort(smollm2_model, tmp_path):
    # Regression, as the issue ran it: `orchestrator generate FILE hi` ended with rc 134 (SIGABRT).
    source, _ = smollm2_model
    bad = _spm(_fresh(source), scores=False).write(tmp_path / "spm.gguf")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-m", "orchestrator", "generate", str(bad), "hi", "--max-tokens", "4"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "byte tokens" in done.stderr and "Traceback" not in done.stderr


def test_model_errors_are_the_only_outcomes_of_check_model(smollm2_model, tmp_path):
    source, _ = smollm2_model
    bad = _tokens(_duplicate)(_fresh(source)).write(tmp_path / "dup.gguf")
    report = check_model(str(bad), timeout_s=60)
    assert report["header"] is not None and report["probe"] is None
    assert report["error"].startswith("ModelLoadError") and issubclass(ModelLoadError, ModelError)
