"""Engine settings: one frozen value, checked when it is built."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EngineConfig", "KVType"]

KVType = Literal["f16", "q8_0", "q4_0"]


class EngineConfig(BaseModel):
    """How a ``LocalEngine`` runs one model.

    ``n_ctx`` is the number of KV cells shared by all sequences (llama.cpp's
    unified KV cache); one sequence may use at most ``min(n_ctx, n_ctx_train)``
    positions. Quantized KV (``q8_0``/``q4_0``) shrinks memory per token and
    needs flash attention, so ``"off"`` with a quantized V is refused.
    ``flash_attn="auto"`` turns flash attention on, in micro-batches below 64
    rows: there llama.cpp's CPU kernels compute every row the same way whatever
    else the batch holds, so a prompt's logits do not depend on how it is split
    (exact prefix reuse), and a verified draft's rows equal decoding them one by
    one (exact speculation). The exception, in llama.cpp's source: a lone
    one-row step over 512 or more KV cells splits its attention across
    threads, which sums in another order. It is also 15-20% faster here for
    one sequence. ``"off"`` makes one-row steps differ from multi-row ones.
    ``kv_budget_bytes`` caps the KV cache's memory (default: half of the
    memory available when the engine starts). ``draft_model`` loads a second,
    cheaper model with the same vocabulary to propose tokens for requests that
    ask for ``speculative="draft"`` or ``"auto"``. ``history_tokens`` bounds the index of
    recent requests' text that lookup drafts from across requests of one tenant
    (``GenerationRequest.user``; about 200 bytes a token; oldest requests evicted first).
    ``probe`` loads a model file in a child process first, so that a file that
    crashes llama.cpp raises ``ModelLoadError`` instead of killing the app:
    ``"auto"`` probes every file that is not a catalogue model matching its
    pinned sha256 (about 0.7 s for a 100 MB model), ``"on"`` every file,
    ``"off"`` none (see ``orchestrator.engine.probe``).
    ``weights`` picks the file a catalogue model runs from: ``"auto"`` the weight
    format measured fastest on this machine within a quality bound (tuned once
    on first use, then stored; ``orchestrator models tune NAME``, see
    ``orchestrator.engine.variants``), ``"shipped"`` the shipped file, or a
    ``.gguf`` path. A model given as a path is used as given unless ``weights``
    is a path. ``$ORCHESTRATOR_WEIGHTS=shipped`` makes ``"auto"`` mean ``"shipped"``
    (the test suite sets it, so tests load the files their references load).
    ``persist_prefixes`` keeps pinned prompt prefixes on disk (``LocalEngine.pin_prefix``,
    ``Agent(persist_prefix=True)``) and restores a stored one when a prompt starts with it, in
    any later process with the same model file, llama.cpp and KV settings (``n_ctx``,
    ``max_sequences``, ``prefix_cache_slots``, ``n_batch``, ``type_k``/``type_v``,
    ``flash_attn``): changing one of those starts an empty store. ``prefix_dir`` is their
    folder (default ``prefixes/`` in the cache folder) and ``prefix_store_bytes`` bounds it
    (least recently used deleted first); see ``orchestrator.engine.pinning``.
    ``n_threads`` is the most threads a decode step runs on (default: the CPU count, at most 8).
    ``thread_policy="adaptive"`` (the default) lets each step size pick among ``n_threads``, half
    of it, ... 1 by the steps' measured durations, so that the engine slows down gracefully
    beside other busy programs instead of collapsing (llama.cpp's threads wait for one another
    at every operation, and wait long for a thread the OS took off its core); see
    ``orchestrator.engine.thread_policy``. ``"fixed"`` always runs ``n_threads``: runs that repeat
    bit for bit, since one-row steps over 512 or more KV cells sum their flash attention in
    another order on 1 thread than on several (a greedy token can then differ at a near-tie).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_ctx: int = Field(8192, ge=64, le=1 << 20)
    max_sequences: int = Field(16, ge=1, le=200)
    prefix_cache_slots: int = Field(8, ge=0, le=48)
    n_batch: int = Field(512, ge=32, le=8192)
    n_threads: int | None = Field(None, ge=1, le=256, description="the most threads a step runs on (default: CPUs, at most 8)")
    thread_policy: Literal["adaptive", "fixed"] = Field(
        "adaptive", description="adaptive: each step size picks its thread count by measured step times; fixed: always n_threads"
    )
    type_k: KVType = "f16"
    type_v: KVType = "f16"
    flash_attn: Literal["auto", "on", "off"] = "auto"
    kv_budget_bytes: int | None = Field(None, ge=1)
    draft_model: str | None = Field(None, description="catalogue name or .gguf path of a draft model for speculation")
    draft_length: int | None = Field(None, ge=1, le=16, description="fixed draft length; None adapts it to measured gain")
    history_tokens: int = Field(32768, ge=0, le=1 << 22, description="tokens of recent requests kept per engine to draft from (0: none)")
    probe: Literal["auto", "on", "off"] = "auto"
    weights: str = Field("auto", min_length=1, description='"auto", "shipped", or the path of a .gguf weights file')
    persist_prefixes: bool = Field(True, description="store pinned prefixes' KV on disk; restore stored ones")
    prefix_dir: str | None = Field(None, min_length=1, description="folder of stored prefixes (default: prefixes/ in the cache folder)")
    prefix_store_bytes: int = Field(1 << 30, ge=1 << 20, description="disk bound of stored prefixes (least recently used go first)")

    @model_validator(mode="after")
    def _check(self) -> EngineConfig:
        if self.type_v != "f16" and self.flash_attn == "off":
            raise ValueError(f"a {self.type_v} V cache needs flash attention; use flash_attn='on' or 'auto'")
        if self.weights not in ("auto", "shipped") and not self.weights.lower().endswith(".gguf"):
            raise ValueError(f"weights must be 'auto', 'shipped' or the path of a .gguf file, not {self.weights!r}")
        return self

    @property
    def threads(self) -> int:
        return self.n_threads or max(1, min(os.cpu_count() or 1, 8))

    @property
    def flash(self) -> Literal["on", "off"]:
        """Flash attention as passed to llama.cpp: ``auto`` means on."""
        return "off" if self.flash_attn == "off" else "on"
