"""The engine's KV slots: which are free, and which hold a finished prompt kept as a cached prefix.

A slot is a llama.cpp sequence id in the engine's one context. Every native change to a
slot's cells (``seq_cp``, ``seq_rm``) is mirrored in the ``KVLedger``, so the engine knows
what each slot holds without asking llama.cpp. A finished first choice may stay in its slot
as a cached prefix, for a later prompt that starts the same way; cached prefixes are evicted
least recently used first, when there are too many or their cells are needed. Pinned prefixes
(``pinning.py``: asked for by the app, or restored from disk) are cached prefixes that go last:
an unpinned one is always evicted before them.

Worker thread only.
"""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.engine.ledger import KVLedger
from orchestrator.engine.native import NativeContext
from orchestrator.errors import EngineError

__all__ = ["KVSlots"]


class KVSlots:
    """Slots ``0..n_slots-1`` of ``ctx``, with at most ``cache_slots`` of them kept as cached prefixes."""

    def __init__(self, ctx: NativeContext, ledger: KVLedger, *, n_slots: int, cache_slots: int) -> None:
        self._ctx = ctx
        self._ledger = ledger
        self._free = list(range(n_slots - 1, -1, -1))
        self._cache_slots = cache_slots
        self._cache: OrderedDict[int, None] = OrderedDict()  # finished slots kept as prefixes, LRU first
        self._pinned: set[int] = set()  # cached slots evicted only when no unpinned one is left

    @property
    def cached(self) -> list[int]:
        """The cached prefixes' slots, least recently used first."""
        return list(self._cache)

    @property
    def pinned(self) -> int:
        """How many cached prefixes are pinned."""
        return len(self._pinned)

    def open(self, *, keep: int | None = None) -> int:
        """An empty slot; when every slot is live or cached, the cached prefix least worth keeping
        (never ``keep``) makes way."""
        if not self._free:
            victim = self._victim(keep)
            if victim is None:
                raise EngineError("no KV slot is free")
            self.evict(victim)
        slot = self._free.pop()
        self._ledger.open(slot)
        return slot

    def share(self, src: int, dst: int, n: int) -> None:
        """Gives the empty slot ``dst`` the first ``n`` cells of ``src``, shared, not copied."""
        self._ctx.seq_cp(src, dst, 0, n)
        self._ledger.copy_prefix(src, dst, n)
        if src in self._cache:
            self._cache.move_to_end(src)  # a cached prefix just used is the last to evict

    def keep(self, slot: int, *, pinned: bool = False) -> None:
        """Keeps a slot as a cached prefix (the most recently used), evicting beyond ``cache_slots``:
        the oldest unpinned one first (an unpinned ``slot`` itself when all the others are pinned)."""
        self._cache[slot] = None
        self._cache.move_to_end(slot)
        if pinned:
            self._pinned.add(slot)
        while len(self._cache) > self._cache_slots:
            victim = self._victim(keep=slot if pinned else None)
            self.evict(victim if victim is not None else slot)

    def make_room(self, need: int, *, growth: int, keep: int | None) -> bool:
        """Evicts cached prefixes (oldest first, never ``keep``) until ``need`` more cells are sure
        to fit beside the ``growth`` cells the live sequences may still add."""
        while self._ledger.used + growth + need > self._ledger.n_cells:
            victim = self._victim(keep)
            if victim is None:
                return False
            self.evict(victim)
        return True

    def _victim(self, keep: int | None) -> int | None:
        """The cached prefix to evict next: the least recently used unpinned one, else the least
        recently used pinned one; never ``keep``."""
        unpinned = next((s for s in self._cache if s != keep and s not in self._pinned), None)
        return unpinned if unpinned is not None else next((s for s in self._cache if s != keep), None)

    def evict(self, slot: int) -> None:
        del self._cache[slot]
        self._pinned.discard(slot)
        self.close(slot)

    def evict_all(self) -> None:
        for slot in list(self._cache):
            self.evict(slot)

    def close(self, slot: int) -> None:
        self._ctx.seq_rm(slot)
        self._ledger.close(slot)
        self._free.append(slot)
