"""Per-sequence sampler chains, run in C by llama.cpp (``llama_sampler_*``)."""

from __future__ import annotations

import ctypes
import math
import random

import numpy as np

from orchestrator.engine.native import NativeContext, NativeModel, llama
from orchestrator.engine.speculative import sampling_distribution
from orchestrator.errors import GrammarError
from orchestrator.types import SamplingParams

__all__ = ["Sampler", "log_softmax_at"]


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    """log p(token) under the softmax of raw ``logits`` (float64, max-shifted for stability)."""
    x = np.asarray(logits, dtype=np.float64)
    top = x.max()
    return float(x[token] - top - np.log(np.exp(x - top).sum()))


class Sampler:
    """A llama.cpp sampler chain for one sequence.

    Order as llama.cpp's own default: penalties, grammar, then either greedy or
    top-k → top-p → min-p → temperature → seeded draw.
    """

    def __init__(self, model: NativeModel, params: SamplingParams, grammar: str | None, seed: int | None) -> None:
        lc = llama()
        self._n_vocab = model.n_vocab
        self._params = params
        self.rng = np.random.default_rng(seed)  # speculative sampling's draws (the chain has its own)
        self.greedy = params.greedy
        # Greedy verification runs the chain itself, row by row (grammar and penalties included);
        # sampling verification mirrors the chain's distribution in numpy, which has no grammar or penalty.
        self.can_speculate = params.greedy or (not grammar and params.repeat_penalty == 1.0)
        # Plain greedy is an argmax: read it straight off the logits instead of having the
        # chain copy the whole vocabulary into a candidate array (262k entries on gemma3).
        self._argmax = params.greedy and not grammar and params.repeat_penalty == 1.0
        # Greedy under a grammar: the grammar's choice is the argmax whenever the grammar allows
        # the argmax, so try that one token first; only when it is refused does the chain check
        # the whole vocabulary (measured here: a JSON tool-call grammar cost ~25% of decode speed).
        self._grammar: object | None = None
        self._one = (lc.llama_token_data * 1)()
        self.chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        try:
            if params.repeat_penalty != 1.0 and params.repeat_last_n > 0:
                self._add(lc.llama_sampler_init_penalties(params.repeat_last_n, params.repeat_penalty, 0.0, 0.0))
            if grammar:
                g = lc.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
                if not g:
                    raise GrammarError("llama.cpp could not parse the grammar (see the orchestrator.llama_cpp log)")
                self._add(g)  # the chain owns it now
                if params.greedy and params.repeat_penalty == 1.0:
                    self._grammar = g
            if params.greedy:
                self._add(lc.llama_sampler_init_greedy())
            else:
                if params.top_k > 0:
                    self._add(lc.llama_sampler_init_top_k(params.top_k))
                if params.top_p < 1.0:
                    self._add(lc.llama_sampler_init_top_p(params.top_p, 1))
                if params.min_p > 0.0:
                    self._add(lc.llama_sampler_init_min_p(params.min_p, 1))
                self._add(lc.llama_sampler_init_temp(params.temperature))
                self._add(lc.llama_sampler_init_dist(random.getrandbits(31) if seed is None else seed))
        except BaseException:
            self.free()
            raise

    def _add(self, smpl: object) -> None:
        llama().llama_sampler_chain_add(self.chain, smpl)

    def probs(self, ctx: NativeContext, idx: int) -> np.ndarray:
        """The distribution this sampler draws from at batch index ``idx`` (for speculative sampling)."""
        logits = np.ctypeslib.as_array(llama().llama_get_logits_ith(ctx.ptr, idx), shape=(self._n_vocab,))
        p = self._params
        return sampling_distribution(logits, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p)

    def logprob(self, ctx: NativeContext, idx: int, token: int) -> float:
        """``token``'s log-probability under the raw logits at batch index ``idx``
        (before penalties, grammar, temperature or truncation)."""
        logits = np.ctypeslib.as_array(llama().llama_get_logits_ith(ctx.ptr, idx), shape=(self._n_vocab,))
        return log_softmax_at(logits, token)

    def sample(self, ctx: NativeContext, idx: int) -> int:
        """Samples from the logits at batch index ``idx`` and accepts the token."""
        lc = llama()
        if self._argmax or self._grammar is not None:  # same choice as llama.cpp's greedy sampler: the first maximum
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx.ptr, idx), shape=(self._n_vocab,))
            token = int(logits.argmax())
            if self._argmax:
                return token
            if self._grammar_allows(token, float(logits[token])):
                lc.llama_sampler_accept(self.chain, token)  # advances the grammar, as sampling would
                return token
        return lc.llama_sampler_sample(self.chain, ctx.ptr, idx)

    def _grammar_allows(self, token: int, logit: float) -> bool:
        """Whether the grammar, in its current state, allows ``token`` next."""
        lc = llama()
        self._one[0].id, self._one[0].logit, self._one[0].p = token, logit, 0.0
        candidates = lc.llama_token_data_array(self._one, 1, -1, False)
        lc.llama_sampler_apply(self._grammar, ctypes.byref(candidates))
        return math.isfinite(self._one[0].logit)

    def free(self) -> None:
        self._grammar = None
        if self.chain:
            llama().llama_sampler_free(self.chain)
            self.chain = None
