"""``EngineStats``: what a ``LocalEngine`` holds and has done, as one frozen value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["EngineStats"]


class EngineStats(BaseModel):
    """``prefill_reused_tokens`` counts prompt tokens whose KV came from the cache (shared with
    another sequence, or restored from a stored prefix); ``restored_prefix_tokens`` those that
    came from stored prefixes on disk; ``pinned_prefixes`` the cached prefixes pinned now;
    ``step_threads`` the thread count each class of step sizes (rows per step) runs on now
    (``EngineConfig.thread_policy``)."""

    model_config = ConfigDict(frozen=True)

    model: str
    n_ctx: int
    max_positions: int
    kv_type_k: str
    kv_type_v: str
    kv_bytes_per_token: int
    kv_cells_used: int
    live_sequences: int
    waiting_requests: int
    cached_prefixes: int
    prefill_computed_tokens: int
    prefill_reused_tokens: int
    decode_steps: int
    pinned_prefixes: int = 0
    restored_prefix_tokens: int = 0
    step_threads: dict[str, int] = {}
