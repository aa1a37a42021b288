"""A Python mirror of llama.cpp's unified KV cache: which cells each sequence holds.

With ``kv_unified`` every sequence lives in one pool of ``n_ctx`` cells and
``llama_memory_seq_cp`` shares cells instead of copying them. The engine
mirrors each native call here, so it knows, without asking llama.cpp:

- which tokens each KV slot holds (for shared-prefix reuse),
- how many distinct cells are in use (for admission by memory budget),
- how many cells freeing a cached slot would give back.

Pure bookkeeping, no native calls: tested with plain data.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

__all__ = ["KVLedger", "common_prefix_len"]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class KVLedger:
    """Cells per slot (positions 0..len-1) and reference counts per cell."""

    def __init__(self, n_cells: int) -> None:
        self.n_cells = n_cells
        self._tokens: dict[int, list[int]] = {}
        self._cells: dict[int, list[int]] = {}
        self._refs: Counter[int] = Counter()
        self._next_cell = itertools.count()

    # -- queries --------------------------------------------------------
    @property
    def used(self) -> int:
        return len(self._refs)

    @property
    def free(self) -> int:
        return self.n_cells - self.used

    def tokens(self, slot: int) -> list[int]:
        return self._tokens.get(slot, [])

    def __contains__(self, slot: int) -> bool:
        return slot in self._tokens

    def longest_prefix(self, tokens: Sequence[int], slots: Sequence[int]) -> tuple[int | None, int]:
        """The slot among ``slots`` holding the longest prefix of ``tokens``, and its length."""
        best_slot, best_len = None, 0
        for slot in slots:
            n = common_prefix_len(self._tokens.get(slot, ()), tokens)
            if n > best_len:
                best_slot, best_len = slot, n
        return best_slot, best_len

    def exclusive_cells(self, slot: int) -> int:
        """Cells that removing ``slot`` would free (held by no other slot)."""
        return sum(1 for c in self._cells.get(slot, ()) if self._refs[c] == 1)

    # -- mutations, each mirroring one native call -----------------------
    def open(self, slot: int) -> None:
        if slot in self._tokens:
            raise RuntimeError(f"KV slot {slot} is already open")
        self._tokens[slot] = []
        self._cells[slot] = []

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        """Mirror of ``llama_memory_seq_cp(src, dst, 0, n)`` into an empty ``dst``."""
        if self._tokens[dst]:
            raise RuntimeError(f"KV slot {dst} is not empty")
        shared = self._cells[src][:n]
        self._tokens[dst] = self._tokens[src][:n]
        self._cells[dst] = list(shared)
        self._refs.update(shared)

    def append(self, slot: int, tokens: Sequence[int]) -> None:
        """Mirror of decoding ``tokens`` at the next positions of ``slot``."""
        new = [next(self._next_cell) for _ in tokens]
        self._tokens[slot].extend(tokens)
        self._cells[slot].extend(new)
        self._refs.update(new)

    def truncate(self, slot: int, n: int) -> None:
        """Mirror of ``llama_memory_seq_rm(slot, n, -1)``: keep positions below ``n``."""
        dropped = self._cells[slot][n:]
        del self._tokens[slot][n:]
        del self._cells[slot][n:]
        self._release(dropped)

    def close(self, slot: int) -> None:
        """Mirror of ``llama_memory_seq_rm(slot, -1, -1)``."""
        self._release(self._cells.pop(slot, []))
        self._tokens.pop(slot, None)

    def _release(self, cells: list[int]) -> None:
        for c in cells:
            self._refs[c] -= 1
            if self._refs[c] <= 0:
                del self._refs[c]
