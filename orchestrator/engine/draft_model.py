"""A draft model: a second (cheaper) GGUF that proposes tokens for the target to verify.

It has its own llama.cpp context, driven by the engine's worker thread, with
one KV slot per speculating sequence. Before each proposal the slot is synced
to the sequence's history (what the target accepted), so the draft continues
from exactly the target's text.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from orchestrator.engine.ledger import common_prefix_len
from orchestrator.engine.native import Batch, NativeContext, NativeModel, llama
from orchestrator.errors import IncompatibleDraftError

__all__ = ["DraftModel", "DraftSlot", "check_vocab_compatible"]


def check_vocab_compatible(target: NativeModel, draft: NativeModel) -> None:
    """Raises IncompatibleDraftError naming the first difference between the two vocabularies."""
    lc = llama()
    kinds = {1: "SPM", 2: "BPE", 3: "WPM", 4: "UGM", 5: "RWKV", 6: "PLAMO2"}
    t_kind, d_kind = lc.llama_vocab_type(target.vocab), lc.llama_vocab_type(draft.vocab)
    if t_kind != d_kind:
        raise IncompatibleDraftError(
            f"tokenizer types differ: target {kinds.get(t_kind, t_kind)}, draft {kinds.get(d_kind, d_kind)}"
        )
    if target.n_vocab != draft.n_vocab:
        raise IncompatibleDraftError(f"vocabulary sizes differ: target {target.n_vocab}, draft {draft.n_vocab}")
    for what, a, b in (("BOS", target.bos, draft.bos), ("EOS", target.eos, draft.eos)):
        if a != b:
            raise IncompatibleDraftError(f"{what} tokens differ: target {a}, draft {b}")
    for token in range(target.n_vocab):
        if target.token_text(token) != draft.token_text(token):
            raise IncompatibleDraftError(
                f"token {token} differs: target {target.token_text(token)!r}, draft {draft.token_text(token)!r}"
            )


class DraftModel:
    """The draft side of speculative decoding: greedy proposals from a cheaper model."""

    def __init__(self, path: str, target: NativeModel, *, n_ctx: int, n_seq_max: int, n_batch: int, threads: int) -> None:
        self.path = path
        self.model = NativeModel(path)
        try:
            check_vocab_compatible(target, self.model)
            self._ctx = NativeContext(
                self.model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max, n_threads=threads,
                type_k="f16", type_v="f16", flash_attn="on",
            )
        except BaseException:
            self.model.free()
            raise
        self._batch = Batch(n_batch)
        self._held: dict[int, list[int]] = {}
        self._free = list(range(n_seq_max - 1, -1, -1))
        self.seconds_per_token = 0.0  # measured cost of one draft decode step (EMA)

    def slot(self) -> DraftSlot | None:
        """A drafter bound to a free KV slot, or None when all are taken."""
        if not self._free:
            return None
        slot = self._free.pop()
        self._held[slot] = []
        return DraftSlot(self, slot)

    def release(self, slot: int) -> None:
        self._ctx.seq_rm(slot)
        del self._held[slot]
        self._free.append(slot)

    def propose(self, slot: int, history: Sequence[int], k: int) -> list[int]:
        held = self._held[slot]
        # 1. sync the slot to the history: drop what diverged, feed what is missing
        keep = min(common_prefix_len(held, history), len(history) - 1)
        if keep < len(held):
            self._ctx.seq_rm(slot, keep, -1)
            del held[keep:]
        todo = list(history[keep:])
        idx = self._ctx.feed(self._batch, todo, len(held), slot, logits_last=True)
        held.extend(todo)
        # 2. k greedy steps; the last proposal is not fed back (the target decides first)
        draft: list[int] = []
        while True:
            token = self._argmax(idx)
            draft.append(token)
            if len(draft) == k or self.model.is_eog(token):
                return draft
            self._batch.clear()
            idx = self._batch.add([token], len(held), slot, True)
            start = time.perf_counter()
            self._ctx.decode(self._batch)
            spent = time.perf_counter() - start
            self.seconds_per_token = spent if not self.seconds_per_token else 0.9 * self.seconds_per_token + 0.1 * spent
            held.append(token)

    @contextlib.contextmanager
    def timing(self, context: Sequence[int]) -> Iterator[Callable[[int], float]]:
        """A timer of draft steps on a free slot holding ``context``: ``time(rows)`` is the seconds of
        one decode step of ``rows`` tokens after it (a prompt chunk when above one). The slot is
        cleared after."""
        slot = self._free[-1] if self._free else 0
        self._ctx.feed(self._batch, list(context), 0, slot)

        def time_step(rows: int) -> float:
            self._batch.clear()
            self._batch.add([0] * rows, len(context), slot, True)
            start = time.perf_counter()
            self._ctx.decode(self._batch)
            spent = time.perf_counter() - start
            self._ctx.seq_rm(slot, len(context), -1)
            return spent

        try:
            yield time_step
        finally:
            self._ctx.seq_rm(slot)

    def greedy_next(self, tokens: Sequence[int]) -> list[int]:
        """The draft's greedy next token after each prefix of ``tokens`` (one prefill, on a free slot)."""
        slot = self._free[-1] if self._free else 0
        out: list[int] = []
        todo, pos = list(tokens), 0
        while todo:
            chunk, todo = todo[: self._batch.capacity], todo[self._batch.capacity :]
            self._batch.clear()
            self._batch.add(chunk, pos, slot, True, logits_all=True)
            self._ctx.decode(self._batch)
            out += [self._argmax(i) for i in range(len(chunk))]
            pos += len(chunk)
        self._ctx.seq_rm(slot)
        return out

    def _argmax(self, idx: int) -> int:
        logits = llama().llama_get_logits_ith(self._ctx.ptr, idx)
        return int(np.ctypeslib.as_array(logits, shape=(self.model.n_vocab,)).argmax())

    def close(self) -> None:
        self._batch.free()
        self._ctx.free()
        self.model.free()


class DraftSlot:
    """The ``Drafter`` of one sequence: proposals from the draft model's slot for it."""

    def __init__(self, model: DraftModel, slot: int) -> None:
        self._model = model
        self._slot = slot

    def propose(self, history: Sequence[int], k: int) -> list[int]:
        return self._model.propose(self._slot, history, k) if k > 0 else []

    def close(self) -> None:
        self._model.release(self._slot)
