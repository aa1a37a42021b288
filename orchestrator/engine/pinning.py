"""Pinned prompt prefixes: kept in the KV cache, stored on disk, restored in later processes.

An app pins the start its prompts share (an agent's instructions, tools and worked examples, a
long system prompt, a document it asks about again and again): ``LocalEngine.pin_prefix``,
``Orchestrator.pin_prefix``, ``Agent(persist_prefix=True)``. The engine then

1. keeps that prefix in a cached-prefix slot that is evicted only after every unpinned one
   (``slots.py``);
2. stores its KV state on disk (``prefix_store.py``), once;
3. in any later process with the same key (model file, llama.cpp, KV settings), restores it
   from disk instead of computing it: when it is pinned again, and when a request's prompt
   starts with it and the KV cache holds less of that prompt.

The choice: **storing is explicit, restoring is automatic.** Storing costs disk (KV is big:
about 22 KB per token for smollm2-135m at f16, 22 MB for a 1k-token prompt) and a write, and
only pays when the same tokens come again in a later process. Where a prompt's stable start
ends is what the app knows and the engine can only guess: counting prefixes used N times
would store the shared starts that happen to repeat (often cut at a different token each
time, or reaching into one task's first words) and would fill the bounded store with them.
An explicit pin stores exactly the tokens the app names, and keeps disk use predictable.
Restoring needs no decision: a stored prefix is checked in full before use (``PrefixStore.load``),
so a request that starts with one gets it whether or not this process pinned it.

Worker-side methods (``answer``, ``restore_for``) run on the engine's thread only; ``pin``
runs on the caller's thread and talks to the worker through ``PinJob`` messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.engine.ledger import KVLedger, common_prefix_len
from orchestrator.engine.native import NativeContext, build_info
from orchestrator.engine.prefix_store import PrefixKey, PrefixStore
from orchestrator.engine.slots import KVSlots
from orchestrator.errors import OrchestratorError, RequestError
from orchestrator.models.digest import model_sha256
from orchestrator.types import ChatMessage, GenerationRequest

__all__ = ["PinJob", "PinnedPrefix", "PrefixPins", "prefix_tokens"]

log = logging.getLogger(__name__)

# Restore a stored prefix at admission only when it holds this many more of the prompt than the
# KV cache does: a restore reads and checks the file (tens of ms for 1k tokens).
_MIN_GAIN = 16


@dataclass(frozen=True)
class PinnedPrefix:
    """What ``pin_prefix`` did: ``tokens`` pinned, their KV ``source`` this time (``kv``: already
    in the cache; ``disk``: restored from the store; ``computed``), and ``stored``, the file
    holding them (None: persistence is off, or the file could not be written)."""

    tokens: int
    source: Literal["kv", "disk", "computed"]
    stored: Path | None


@dataclass(eq=False)
class PinJob:
    """A message to the worker about a prefix: find it in the KV cache and pin it (answered with
    its KV state when ``want_state``, else ``b""``, or None when not there), or, with ``state``,
    load those bytes into a new pinned slot (answered ``"loaded"``, ``"no room"`` or ``"refused"``)."""

    tokens: tuple[int, ...]
    want_state: bool = False
    state: bytes | None = None
    future: Future[bytes | str | None] = field(default_factory=Future)


def prefix_tokens(prefix: str | Sequence[int] | Sequence[ChatMessage], *, raw: Callable[[str], list[int]],
                  chat: Callable[[GenerationRequest], list[int]]) -> list[int]:
    """The tokens every prompt that starts with ``prefix`` starts with: raw prompt text (``raw``
    tokenizes it as a prompt), token ids as they are, or chat messages (``chat`` renders a
    request's messages), up to where a next user message's text would begin."""
    if isinstance(prefix, str):
        return raw(prefix)
    items = list(prefix)
    if all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        return [int(t) for t in items]
    if not all(isinstance(m, ChatMessage) for m in items):
        raise RequestError("a prefix is text, token ids or chat messages")
    # Two conversations that differ from the first character of the next user message on share exactly this start.
    a, b = (chat(GenerationRequest(messages=(*items, ChatMessage(role="user", content=x)))) for x in "AB")
    return a[: common_prefix_len(a, b)]


class PrefixPins:
    """The engine's pinned prefixes and its view of the prefix store."""

    def __init__(self, ctx: NativeContext, ledger: KVLedger, slots: KVSlots, *, model_path: Path, store: PrefixStore | None) -> None:
        self._ctx, self._ledger, self._slots = ctx, ledger, slots
        self._model_path = model_path
        self.store = store
        self._key: PrefixKey | None = None
        self._index: tuple[tuple[int, ...], ...] = ()  # stored prefixes of this key, longest first
        self.restored_tokens = 0
        if store is not None and store.holds_any():
            try:
                self._index = tuple(store.entries(self.key()))  # stored by earlier processes
            except (OrchestratorError, OSError) as exc:  # the model file cannot be hashed: nothing is restored
                log.warning("stored prefixes stay unused: %s", exc)
            if self._index:
                log.info("%d stored prefixes can be restored (%s)", len(self._index), store.folder)

    def key(self) -> PrefixKey:
        """This engine's key: hashes the model file the first time (remembered; see ``models.digest``)."""
        if self._key is None:
            self._key = PrefixKey(model_sha256(self._model_path), build_info(), dict(self._ctx.kv_settings))
        return self._key

    # -- the caller's side ------------------------------------------------------
    def pin(self, tokens: Sequence[int], *, ask: Callable[[PinJob], bytes | str | None],
            compute: Callable[[list[int]], None]) -> PinnedPrefix:
        """Pins ``tokens``: found in the KV cache, else restored from the store, else computed
        (``compute`` runs them through the engine); stored on disk if they are not yet."""
        tokens = tuple(tokens)
        key = self.key() if self.store is not None else None
        stored = self.store is not None and key is not None and self.store.has(key, tokens)
        found = ask(PinJob(tokens, want_state=key is not None and not stored))
        if isinstance(found, bytes):
            return PinnedPrefix(len(tokens), "kv", self._stored(tokens, found))
        if stored and self._restore(tokens, ask):
            return PinnedPrefix(len(tokens), "disk", self._stored(tokens, b""))
        compute(list(tokens))
        found = ask(PinJob(tokens, want_state=key is not None))
        if not isinstance(found, bytes):
            log.warning("a pinned prefix of %d tokens was evicted before it could be pinned (the KV cache is full)", len(tokens))
            return PinnedPrefix(len(tokens), "computed", None)
        return PinnedPrefix(len(tokens), "computed", self._stored(tokens, found))

    def _restore(self, tokens: tuple[int, ...], ask: Callable[[PinJob], bytes | str | None]) -> bool:
        assert self.store is not None
        state = self.store.load(self.key(), tokens)  # checked in full: stale or corrupt files go
        if state is None:
            self._forget(tokens)
            return False
        outcome = ask(PinJob(tokens, state=state))
        if outcome == "refused":
            self.store.discard(self.store.path(self.key(), tokens), "llama.cpp did not accept its KV state")
            self._forget(tokens)
        return outcome == "loaded"

    def _stored(self, tokens: tuple[int, ...], state: bytes) -> Path | None:
        """The prefix's file: ``state`` written now (when not empty), or the one already there."""
        if self.store is None:
            return None
        path = self.store.save(self.key(), tokens, state) if state else self.store.path(self.key(), tokens)
        if path is not None and tokens not in self._index:
            self._index = tuple(sorted((*self._index, tokens), key=len, reverse=True))
        return path

    def _forget(self, tokens: tuple[int, ...]) -> None:
        self._index = tuple(t for t in self._index if t != tokens)

    # -- the worker's side ------------------------------------------------------
    def answer(self, job: PinJob, *, live: list[int], growth: int) -> None:
        """Answers a ``PinJob`` (worker thread)."""
        try:
            if job.state is not None:
                loaded = self._load(job.tokens, job.state, growth, keep=None)
                job.future.set_result("loaded" if isinstance(loaded, int) else loaded)
            else:
                job.future.set_result(self._find(job.tokens, live, job.want_state))
        except Exception as exc:  # a native failure reaches the caller of pin_prefix
            job.future.set_exception(exc)

    def restore_for(self, prompt: Sequence[int], src: int | None, reuse: int, *, growth: int) -> tuple[int | None, int]:
        """The slot and length to reuse for ``prompt``: a stored prefix it starts with, restored
        now, when that holds at least ``_MIN_GAIN`` more tokens than ``reuse``; else ``(src, reuse)``."""
        best = next((t for t in self._index if reuse + _MIN_GAIN <= len(t) <= len(prompt) and tuple(prompt[: len(t)]) == t), None)
        if best is None or self.store is None:
            return src, reuse
        state = self.store.load(self.key(), best)  # checked in full: stale or corrupt files go
        if state is None:
            self._forget(best)
            return src, reuse
        slot = self._load(best, state, growth, keep=src)
        if slot == "refused":
            self.store.discard(self.store.path(self.key(), best), "llama.cpp did not accept its KV state")
            self._forget(best)
        if not isinstance(slot, int):
            return src, reuse
        log.debug("restored a stored prefix of %d tokens for a prompt of %d", len(best), len(prompt))
        return slot, len(best)

    def _find(self, tokens: tuple[int, ...], live: list[int], want_state: bool) -> bytes | None:
        """Pins a slot holding exactly ``tokens`` (a cached one that does, or a new one sharing the
        cells of any slot that starts with them); its state, or ``b""``; None if no slot has them."""
        n = len(tokens)
        src, have = self._ledger.longest_prefix(tokens, live + self._slots.cached)
        if src is None or have < n:
            return None
        if src in self._slots.cached and len(self._ledger.tokens(src)) == n:
            slot = src
        else:
            slot = self._slots.open(keep=src)
            self._slots.share(src, slot, n)
        self._slots.keep(slot, pinned=True)
        return self._ctx.seq_state(slot) if want_state else b""

    def _load(self, tokens: tuple[int, ...], state: bytes, growth: int, *, keep: int | None) -> int | Literal["no room", "refused"]:
        """Loads checked state bytes into a new pinned slot (evicting cached prefixes, never
        ``keep``, to make room); the slot, or why not: they do not fit now, or llama.cpp refused
        them (or they hold other positions than ``tokens``)."""
        n = len(tokens)
        if not self._slots.make_room(n, growth=growth, keep=keep):
            return "no room"
        slot = self._slots.open(keep=keep)
        if not self._ctx.set_seq_state(slot, state) or self._ctx.seq_positions(slot) != (0, n - 1):
            self._slots.close(slot)
            return "refused"
        self._ledger.append(slot, tokens)  # the mirror of the cells just loaded
        self._slots.keep(slot, pinned=True)
        self.restored_tokens += n
        return slot
