"""Thin, typed wrappers over llama-cpp-python's low-level (ctypes) API.

This module and ``sampling.py`` are the only places that import ``llama_cpp``,
and only when a model is loaded: importing the orchestrator stays light.
Every object here belongs to the engine's worker thread except ``NativeModel``'s
tokenizer, which only reads the vocabulary.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from orchestrator.errors import ConfigError, EngineError, ModelLoadError

__all__ = ["Batch", "NativeContext", "NativeModel", "build_info", "llama", "quantize_file"]

log = logging.getLogger("orchestrator.llama_cpp")
_init_lock = threading.Lock()
# ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation; llama.cpp is chatty at info.
_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}
_log_callback: Any = None  # kept alive for as long as llama.cpp may call it
# thread id -> called with each piece of log text llama.cpp emits on that thread (quantize progress)
_log_listeners: dict[int, Callable[[str], None]] = {}
# llama.cpp's quantizer starts each tensor's log line with "[  12/ 272] blk.0.attn_q.weight - ..."
_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


@cache
def llama() -> ModuleType:
    """Imports llama_cpp once, initialises its backend and routes its logs to ``logging``."""
    global _log_callback
    with _init_lock:
        import llama_cpp

        llama_cpp.llama_backend_init()

        @llama_cpp.llama_log_callback
        def _route(level: int, text: bytes, _user: Any) -> None:
            msg = text.decode("utf-8", "replace").rstrip("\n")
            listener = _log_listeners.get(threading.get_ident())
            if listener is not None:
                listener(msg)
            if msg:
                log.log(_LOG_LEVELS.get(level, logging.DEBUG), "%s", msg)

        _log_callback = _route
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        return llama_cpp


@cache
def build_info() -> str:
    """llama-cpp-python's version and the ggml CPU features it runs with: KV state saved by one
    build is only trusted by the same build (``prefix_store.PrefixKey``)."""
    lc = llama()
    features = (lc.llama_print_system_info() or b"").decode("utf-8", "replace").strip()
    return f"llama-cpp-python {lc.__version__}; {features}"


class NativeModel:
    """A loaded GGUF model: weights plus vocabulary."""

    def __init__(self, path: str | Path) -> None:
        lc = llama()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = 0
        self.path = str(path)
        self.ptr = lc.llama_model_load_from_file(self.path.encode(), params)
        if not self.ptr:
            raise ModelLoadError(f"llama.cpp could not load {self.path} (see the orchestrator.llama_cpp log)")
        self.vocab = lc.llama_model_get_vocab(self.ptr)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.ptr)
        self.n_embd = lc.llama_model_n_embd(self.ptr)
        self.bos = lc.llama_vocab_bos(self.vocab)
        self.eos = lc.llama_vocab_eos(self.vocab)
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        lc = llama()
        data = text.encode("utf-8", "replace")
        cap = len(data) + 8
        for _ in range(2):
            buf = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            cap = -n
        raise EngineError("llama_tokenize failed twice")

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens render as nothing)."""
        got = self._pieces.get(token)
        if got is None:
            lc = llama()
            buf = ctypes.create_string_buffer(64)
            n = lc.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            got = self._pieces[token] = buf.raw[: max(n, 0)]
        return got

    def token_text(self, token: int) -> str:
        """The vocabulary's own text of a token, special tokens included (``<|im_end|>``)."""
        if token < 0 or token >= self.n_vocab:
            return ""
        return (llama().llama_vocab_get_text(self.vocab, token) or b"").decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        got = self._eog.get(token)
        if got is None:
            got = self._eog[token] = bool(llama().llama_vocab_is_eog(self.vocab, token))
        return got

    def free(self) -> None:
        if self.ptr:
            llama().llama_model_free(self.ptr)
            self.ptr = None


_KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8}
_FLASH = {"auto": -1, "off": 0, "on": 1}
# llama.cpp's CPU flash attention computes each query row on its own, the same way
# whatever else is in the batch, except in batches of 64 rows or more (GGML_FA_TILE_Q),
# which it tiles with sums in another order. Micro-batches below that keep a prompt's
# logits independent of how it is split, and a verified draft's rows equal to decoding
# them one by one.
_FLASH_EXACT_UBATCH = 63


class NativeContext:
    """One llama.cpp context with a unified KV cache shared by ``n_seq_max`` sequences."""

    def __init__(
        self,
        model: NativeModel,
        *,
        n_ctx: int,
        n_batch: int,
        n_seq_max: int,
        n_threads: int,
        type_k: str,
        type_v: str,
        flash_attn: str,
        kv_unified: bool = True,
        embeddings: bool = False,
    ) -> None:
        lc = llama()
        if type_k not in _KV_TYPES or type_v not in _KV_TYPES:
            raise ConfigError(f"KV cache types must be among {sorted(_KV_TYPES)}")
        p = lc.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = min(n_batch, _FLASH_EXACT_UBATCH) if flash_attn == "on" else n_batch
        p.n_seq_max = n_seq_max
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.type_k = _KV_TYPES[type_k]
        p.type_v = _KV_TYPES[type_v]
        p.flash_attn_type = _FLASH[flash_attn]
        p.kv_unified = kv_unified  # one cell pool: seq_cp shares cells instead of copying
        p.swa_full = True  # keep sliding-window layers' cells so prefixes stay copyable
        p.no_perf = True
        if embeddings:  # hidden states mean-pooled per sequence, instead of logits
            p.embeddings = True
            p.pooling_type = lc.LLAMA_POOLING_TYPE_MEAN
        self.ptr = lc.llama_init_from_model(model.ptr, p)
        if not self.ptr:
            raise ModelLoadError(f"llama.cpp could not create a context for {model.path}")
        self.threads = self._threads_now = n_threads
        self.memory = lc.llama_get_memory(self.ptr)
        self.n_ctx = lc.llama_n_ctx(self.ptr)
        # What shapes the KV cells' contents and layout: a saved state is only loaded into a
        # context made with the same (``prefix_store.PrefixKey``).
        self.kv_settings = {
            "n_ctx": self.n_ctx, "n_seq_max": n_seq_max, "n_batch": p.n_batch, "n_ubatch": p.n_ubatch,
            "type_k": type_k, "type_v": type_v, "flash_attn": flash_attn, "kv_unified": kv_unified, "swa_full": True,
        }

    def decode(self, batch: Batch, *, threads: int | None = None) -> None:
        """Computes ``batch`` on ``threads`` threads (default: the count the context was made with)."""
        threads = threads or self.threads
        if threads != self._threads_now:  # both llama.cpp counts: a batch's last micro-batch may have one row
            llama().llama_set_n_threads(self.ptr, threads, threads)
            self._threads_now = threads
        rc = llama().llama_decode(self.ptr, batch.struct)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc} for a batch of {batch.n_tokens} tokens")

    def feed(self, batch: Batch, tokens: list[int], start: int, seq: int, *, logits_last: bool = False) -> int:
        """Decodes ``tokens`` into sequence ``seq`` at positions ``start``..., in chunks of the batch's
        capacity; returns the batch index of the last token (its logits are kept with ``logits_last``)."""
        idx = -1
        for at in range(0, len(tokens), batch.capacity):
            chunk = tokens[at : at + batch.capacity]
            batch.clear()
            idx = batch.add(chunk, start + at, seq, logits_last and at + len(chunk) == len(tokens))
            self.decode(batch)
        return idx

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        llama().llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        if not llama().llama_memory_seq_rm(self.memory, seq, p0, p1):
            raise EngineError(f"llama_memory_seq_rm refused to trim sequence {seq}")

    def seq_state(self, seq: int) -> bytes:
        """A copy of sequence ``seq``'s KV state (its cells and their K and V), llama.cpp's serialization."""
        lc = llama()
        size = lc.llama_state_seq_get_size(self.ptr, seq)
        buf = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data(self.ptr, buf, size, seq)
        if written != size:
            raise EngineError(f"llama_state_seq_get_data wrote {written} of {size} bytes for sequence {seq}")
        return bytes(buf)

    def set_seq_state(self, seq: int, state: bytes) -> bool:
        """Loads a state from ``seq_state`` into the empty sequence ``seq``; False when llama.cpp
        refuses it (its cells are then removed). Hand it only checked bytes: llama.cpp's reader
        trusts sizes inside them."""
        lc = llama()
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if lc.llama_state_seq_set_data(self.ptr, buf, len(state), seq) == len(state):
            return True
        lc.llama_memory_seq_rm(self.memory, seq, -1, -1)  # a failed read may leave some cells behind
        return False

    def seq_positions(self, seq: int) -> tuple[int, int]:
        """The lowest and highest position sequence ``seq`` holds; ``(-1, -1)`` when it is empty."""
        lc = llama()
        return lc.llama_memory_seq_pos_min(self.memory, seq), lc.llama_memory_seq_pos_max(self.memory, seq)

    def logits(self, index: int, n_vocab: int) -> np.ndarray:
        """A copy of the logits of batch row ``index`` after a decode."""
        ptr = llama().llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise EngineError(f"llama.cpp returned no logits for batch row {index}")
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()

    def clear(self) -> None:
        """Forgets every sequence's cells."""
        llama().llama_memory_clear(self.memory, True)

    def pooled_embedding(self, seq: int, n_embd: int) -> np.ndarray:
        """A copy of sequence ``seq``'s pooled embedding after a decode (embeddings contexts only)."""
        ptr = llama().llama_get_embeddings_seq(self.ptr, seq)
        if not ptr:
            raise EngineError(f"llama.cpp returned no pooled embedding for sequence {seq}")
        return np.ctypeslib.as_array(ptr, shape=(n_embd,)).astype(np.float64)

    def free(self) -> None:
        if self.ptr:
            llama().llama_free(self.ptr)
            self.ptr = None


class Batch:
    """A ``llama_batch`` whose arrays are filled through numpy views."""

    def __init__(self, capacity: int) -> None:
        lc = llama()
        self.capacity = capacity
        self.struct = lc.llama_batch_init(capacity, 0, 1)
        self._token = np.ctypeslib.as_array(self.struct.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(self.struct.pos, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(self.struct.logits, shape=(capacity,))
        np.ctypeslib.as_array(self.struct.n_seq_id, shape=(capacity,))[:] = 1
        self._seq = [self.struct.seq_id[i] for i in range(capacity)]
        self.n_tokens = 0

    @property
    def room(self) -> int:
        return self.capacity - self.n_tokens

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, tokens: list[int], start_pos: int, seq: int, logits_last: bool, *, logits_all: bool = False) -> int:
        """Appends ``tokens`` of sequence ``seq``; returns the batch index of the last one."""
        i, k = self.n_tokens, len(tokens)
        self._token[i : i + k] = tokens
        self._pos[i : i + k] = np.arange(start_pos, start_pos + k)
        self._logits[i : i + k] = 1 if logits_all else 0
        if logits_last:
            self._logits[i + k - 1] = 1
        for j in range(i, i + k):
            self._seq[j][0] = seq
        self.n_tokens = i + k
        self.struct.n_tokens = self.n_tokens
        return i + k - 1

    def free(self) -> None:
        if self.struct is not None:
            llama().llama_batch_free(self.struct)
            self.struct = None


def quantize_file(src: str, dst: str, ftype: int, threads: int, progress: Callable[[int, int, str], None] | None = None) -> None:
    """llama.cpp's quantizer (requantizing allowed); raises ModelLoadError when it fails.

    ``progress(done, total, tensor_name)`` is called as each tensor is written: llama.cpp reports
    that only in its log, so the log text of this thread is read while the quantizer runs."""
    lc = llama()
    params = lc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = True
    me = threading.get_ident()
    if progress is not None:
        _log_listeners[me] = partial(_tensor_progress, progress)
    try:
        rc = lc.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    finally:
        _log_listeners.pop(me, None)
    if rc != 0:
        raise ModelLoadError(f"llama.cpp could not quantize {src} (return code {rc}; see the orchestrator.llama_cpp log)")


def _tensor_progress(progress: Callable[[int, int, str], None], text: str) -> None:
    """Turns one of the quantizer's tensor lines into ``progress(done, total, name)``."""
    match = _TENSOR_LINE.match(text)
    if match is None:
        return
    try:
        progress(int(match.group(1)), int(match.group(2)), match.group(3))
    except Exception:  # a C callback cannot raise: log the caller's bug and go on quantizing
        log.exception("quantize progress callback failed")
