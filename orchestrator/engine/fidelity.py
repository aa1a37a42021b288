"""How faithful weights files are to a reference: next-token agreement over a fixed text.

Every file reads the same tokens in the same chunks, the way the engine computes
(flash attention on, micro-batches below 64 rows); the files move through the text
in lockstep, so the reference's logits are compared chunk by chunk and never all
held at once (a 262k vocabulary times 1,500 positions would be 1.5 GB). At each
position: top-1 agreement (same best token as the reference) and the KL divergence
KL(reference || file) of the two next-token distributions, in nats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from orchestrator.engine.fidelity_text import FIDELITY_TEXT
from orchestrator.engine.native import Batch, NativeContext, NativeModel, llama
from orchestrator.errors import ConfigError
from orchestrator.models.weight_choice import Fidelity

__all__ = ["fidelity_tokens", "log_softmax", "measure_fidelity"]

_MAX_CHUNK = 128
_CHUNK_FLOATS = 1 << 23  # logits per chunk and file (32 MiB of float32): fewer rows for large vocabularies


def fidelity_tokens(model: NativeModel, limit: int | None = None) -> list[int]:
    """The fixed text's tokens for ``model`` (BOS first where the model wants one), at most ``limit``."""
    tokens = model.tokenize(FIDELITY_TEXT, add_special=True, parse_special=False)
    return tokens[:limit] if limit else tokens


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class _Reader:
    """One weights file reading the text: a model, a one-sequence context and a batch."""

    def __init__(self, path: Path, n_ctx: int, chunk: int, threads: int) -> None:
        self.model = NativeModel(path)
        try:
            self.ctx = NativeContext(
                self.model, n_ctx=n_ctx, n_batch=chunk, n_seq_max=1, n_threads=threads,
                type_k="f16", type_v="f16", flash_attn="on",
            )
            self.batch = Batch(chunk)
        except BaseException:
            self.model.free()
            raise

    def logits(self, tokens: list[int], start: int) -> np.ndarray:
        """Decodes ``tokens`` at positions ``start``...; returns a copy of every row's logits."""
        self.batch.clear()
        self.batch.add(tokens, start, 0, True, logits_all=True)
        self.ctx.decode(self.batch)
        ptr = llama().llama_get_logits(self.ctx.ptr)
        return np.ctypeslib.as_array(ptr, shape=(len(tokens), self.model.n_vocab)).copy()

    def free(self) -> None:
        self.batch.free()
        self.ctx.free()
        self.model.free()


def measure_fidelity(
    reference: Path,
    files: Mapping[str, Path],
    *,
    threads: int,
    max_tokens: int | None = None,
    tokens: Sequence[int] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Fidelity]:
    """Top-1 agreement and mean KL of each of ``files`` against ``reference`` over the fixed text
    (or over ``tokens``, tokenized by the reference's vocabulary), at most ``max_tokens`` positions.
    ``on_chunk(done, total)`` is called after each chunk of positions."""
    readers: dict[str, _Reader] = {}
    try:
        ref_model = NativeModel(reference)
        try:
            toks = list(tokens) if tokens is not None else fidelity_tokens(ref_model, max_tokens)
            n_vocab, n_ctx_train = ref_model.n_vocab, ref_model.n_ctx_train
        finally:
            ref_model.free()
        chunk = max(8, min(_MAX_CHUNK, _CHUNK_FLOATS // n_vocab))
        if n_ctx_train > 0:
            toks = toks[: n_ctx_train - chunk]  # a model with a short context reads a shorter text
        if len(toks) < 2:
            raise ConfigError("the fidelity text needs at least two tokens")
        n_ctx = len(toks) + chunk
        for key, path in {"": reference, **files}.items():
            readers[key] = _Reader(path, n_ctx, chunk, threads)
            if readers[key].model.n_vocab != n_vocab:
                raise ConfigError(f"{path} has a vocabulary of {readers[key].model.n_vocab}, the reference {n_vocab}")
        agree = dict.fromkeys(files, 0)
        kl = dict.fromkeys(files, 0.0)
        starts = range(0, len(toks), chunk)
        for done, start in enumerate(starts, 1):
            part = toks[start : start + chunk]
            ref = log_softmax(readers[""].logits(part, start))
            ref_best = ref.argmax(axis=1)
            ref_p = np.exp(ref)
            for key in files:
                other = log_softmax(readers[key].logits(part, start))
                agree[key] += int((other.argmax(axis=1) == ref_best).sum())
                kl[key] += float((ref_p * (ref - other)).sum())
            if on_chunk is not None:
                on_chunk(done, len(starts))
    finally:
        for reader in readers.values():
            reader.free()
    n = len(toks)
    return {key: Fidelity(top1=agree[key] / n, mean_kl=max(kl[key] / n, 0.0), positions=n) for key in files}
