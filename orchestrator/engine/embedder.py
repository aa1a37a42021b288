"""Embeddings of texts from the engine's own model: mean-pooled and L2-normalised.

llama.cpp computes them in a second, small context on the already-loaded weights, made in
embeddings mode with mean pooling (the last hidden states of a text's tokens, averaged).
Its KV cells and buffers are its own, so generation's cache is never touched.

The engine's worker thread owns that context, as it owns every native object: an
``EmbedJob`` goes through the engine's inbox and the worker runs one pack of texts (one
``llama_decode``) between decode steps. We do not run it on the caller's thread under a
lock: two threads decoding on one llama.cpp model at once is not something llama.cpp
promises to be safe (other bindings report crashes and serialise it), and on a small
machine the two would only fight over the same cores. The cost: a pack delays the next
decode step by its own compute time, at most ``MAX_EMBED_TOKENS`` tokens of prefill.

Bounds: each text is cut to its first ``MAX_EMBED_TOKENS`` tokens (the embedding then
describes that head only); a pack holds up to ``PACK_SEQUENCES`` texts and
``MAX_EMBED_TOKENS`` tokens in all. An empty text, or a bare string instead of a list of
them, raises ``RequestError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from orchestrator.engine.native import Batch, NativeContext, NativeModel
from orchestrator.errors import EngineError, OrchestratorError, RequestError

__all__ = ["MAX_EMBED_TOKENS", "PACK_SEQUENCES", "EmbedJob", "Embedder", "EmbeddingQueue", "embed_tokens"]

MAX_EMBED_TOKENS = 512
PACK_SEQUENCES = 8
_CHARS_PER_TOKEN = 64


def embed_tokens(model: NativeModel, texts: Sequence[str], max_tokens: int = MAX_EMBED_TOKENS) -> list[list[int]]:
    """The tokens of each text to embed (special tokens as the model adds them, none parsed
    from the text), cut to the first ``max_tokens``. Raises ``RequestError`` on bad input."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise RequestError("embed takes a list of texts (one string is not a list)")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(f"text {i} to embed is a {type(text).__name__}, not a str")
        # a huge text is cut before tokenizing: no token is anywhere near _CHARS_PER_TOKEN long
        tokens = model.tokenize(text[: max_tokens * _CHARS_PER_TOKEN], add_special=True, parse_special=False)[:max_tokens]
        if not text or not tokens:
            raise RequestError(f"text {i} to embed is empty")
        out.append(tokens)
    return out


@dataclass(eq=False)
class EmbedJob:
    """Texts (as tokens) to embed; ``future`` gets the ``(n, n_embd)`` float32 array or an error."""

    tokens: list[list[int]]
    future: Future[np.ndarray] = field(default_factory=Future)
    rows: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.rows) == len(self.tokens)


class Embedder:
    """The embeddings-mode context on a loaded model. Worker thread only."""

    def __init__(self, model: NativeModel, *, threads: int, max_tokens: int = MAX_EMBED_TOKENS) -> None:
        self.n_embd = model.n_embd
        self._ctx = NativeContext(
            model, n_ctx=max_tokens, n_batch=max_tokens, n_seq_max=PACK_SEQUENCES, n_threads=threads,
            type_k="f16", type_v="f16", flash_attn="off", embeddings=True,
        )
        try:
            self._batch = Batch(max_tokens)
        except BaseException:
            self._ctx.free()
            raise

    def step(self, job: EmbedJob) -> None:
        """Embeds the job's next pack of texts: as many whole texts as fit in one decode."""
        batch, start = self._batch, len(job.rows)
        # 1. Pack the next texts, each its own sequence from position 0, every token an output
        #    (a text is at most the batch's capacity, so at least one always fits).
        batch.clear()
        end = start
        while end < len(job.tokens) and end - start < PACK_SEQUENCES and len(job.tokens[end]) <= batch.room:
            batch.add(job.tokens[end], 0, end - start, True, logits_all=True)
            end += 1
        # 2. One decode on empty cells; llama.cpp averages each sequence's hidden states.
        self._ctx.clear()
        self._ctx.decode(batch)
        # 3. Read each mean and scale it to unit length.
        for seq in range(end - start):
            vec = self._ctx.pooled_embedding(seq, self.n_embd)
            norm = float(np.linalg.norm(vec))
            if not np.isfinite(norm) or norm == 0.0:
                raise EngineError(f"llama.cpp gave a zero or non-finite embedding for text {start + seq}")
            job.rows.append((vec / norm).astype(np.float32))

    def close(self) -> None:
        self._batch.free()
        self._ctx.free()


class EmbeddingQueue:
    """The worker's embedding jobs, run one pack per ``step``; the context is made on first use."""

    def __init__(self, model: NativeModel, *, threads: int) -> None:
        self._model = model
        self._threads = threads
        self._jobs: deque[EmbedJob] = deque()
        self._embedder: Embedder | None = None

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def add(self, job: EmbedJob) -> None:
        self._jobs.append(job)

    def step(self) -> None:
        """Runs one pack of the oldest job; finishes the job (result or error) when it is done."""
        job = self._jobs[0]
        try:
            if self._embedder is None:
                self._embedder = Embedder(self._model, threads=self._threads)
            self._embedder.step(job)
        except Exception as exc:  # noqa: BLE001 - a native failure fails this job; the engine keeps serving
            self._jobs.popleft()
            job.future.set_exception(exc if isinstance(exc, OrchestratorError) else EngineError(str(exc)))
            return
        if job.done:
            self._jobs.popleft()
            job.future.set_result(np.stack(job.rows))

    def fail_all(self, exc: BaseException) -> None:
        while self._jobs:
            self._jobs.popleft().future.set_exception(exc)

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
