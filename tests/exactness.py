"""Checking greedy outputs for exactness against an independent reference."""

from __future__ import annotations

import numpy as np

__all__ = ["NEAR_TIE", "reference_llama", "same_or_near_tie", "top2_gap"]

# In logits. llama.cpp's CPU kernels give slightly different logits by batch shape:
# without flash attention a one-row batch differs from a multi-row one; with it (the
# engine's default), micro-batches of 64 rows or more and a lone row over 512 or more
# KV cells differ. Measured on smollm2-135m: up to ~0.8 on some vocabulary entry,
# ~0.01-0.4 between the top two at the points where outputs diverged. A divergence where the best two are closer
# than this is numerical, not a bug; a bug (wrong KV, wrong positions) shows up as
# a divergence where one token clearly won.
NEAR_TIE = 0.5


def reference_llama(model_path, n_ctx: int):
    """llama-cpp-python's high-level ``Llama``, computing the way the engine does.

    Flash attention on, in micro-batches of at most 63 rows (see
    ``orchestrator.engine.native``), logits for every position.
    """
    from llama_cpp import Llama

    return Llama(
        model_path=str(model_path), n_ctx=n_ctx, n_batch=512, n_ubatch=63, logits_all=True, flash_attn=True, verbose=False
    )


def top2_gap(model_path, tokens: list[int]) -> float:
    """Gap between the two best next-token logits after ``tokens``, from an independent reference."""
    llm = reference_llama(model_path, max(1024, len(tokens) + 8))
    llm.eval(tokens)
    logits = np.array(llm.scores[len(tokens) - 1])
    a, b = np.sort(logits)[-2:][::-1]
    del llm
    return float(a - b)


def same_or_near_tie(model_path, prompt_tokens: list[int], a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Two greedy outputs agree, or first differ where the best two logits nearly tie.

    Logits also depend on where a sequence's cells sit in the unified KV cache
    (the order of the float sums changes), so runs in an engine whose cache
    holds other sequences may split at near-ties.
    """
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if first is None:
        return len(a) == len(b)
    return top2_gap(model_path, list(prompt_tokens) + list(a[:first])) < NEAR_TIE
