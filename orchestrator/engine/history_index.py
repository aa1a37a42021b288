"""A bounded index of recent requests' text, kept per tenant, to draft from across requests.

Agents repeat themselves: tool-call JSON, argument names, system prompts, earlier answers.
Prompt lookup (``prompt_lookup.py``) sees only the request at hand; this index remembers the
text (prompt, then output) of recent finished requests, so a later request of the same tenant
can draft what followed the same words last time. The idea is SuffixDecoding's (a suffix tree
over earlier outputs) and llama.cpp's n-gram map, done here as a hashed n-gram table:

- Each finished request's text is stored whole, as one entry, under its tenant.
- For each position of an entry, the ``KEY`` tokens ending there map (in the tenant's table
  only) to the newest few positions holding them, at most ``max_candidates``, newest last.
- A lookup takes the last ``KEY`` tokens of the text being generated, compares backwards
  from each candidate to measure its match (at most ``max_match`` tokens), and proposes what
  followed the longest one (the newest among equals). Its cost is bounded by
  ``max_candidates * max_match`` comparisons, whatever the index holds: it never scans history.
- Memory is bounded by ``budget`` tokens over all tenants: the oldest whole entries are evicted
  first (FIFO), and their positions leave the table.
- A new entry that starts with the same text as its tenant's newest entry (a conversation's next
  turn, or another task under the same system prompt) takes over that shared start's positions:
  both copies match the same way and the newer one wins ties, so the older copy's positions were
  dead weight crowding out other continuations. An earlier turn the new entry holds whole is dropped.

Tenants never see each other's text: a lookup reads only its own tenant's table. Pure Python,
called from the engine's worker thread only.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.engine.prompt_lookup import Lookup

__all__ = ["KEY", "HistoryIndex"]

KEY = 3  # tokens hashed per table key: also the shortest match the index can report
_OFFSET_BITS = 32  # a position is (entry serial << _OFFSET_BITS) | offset


def _key(a: int, b: int, c: int) -> int:
    """An exact key for three token ids (each below 2**21: every vocabulary in use)."""
    return (a << 42) | (b << 21) | c


@dataclass
class _Entry:
    tenant: str
    tokens: array


class HistoryIndex:
    """Recent requests' tokens per tenant, and the n-gram table that finds continuations in them.

    ``budget``: tokens kept over all tenants (0 keeps none). ``max_candidates``: positions kept
    per key and tenant, newest first. ``max_match``: how far back a match is compared.
    """

    def __init__(self, budget: int = 32768, *, max_candidates: int = 8, max_match: int = 32) -> None:
        self.budget = budget
        self.max_candidates = max_candidates
        self.max_match = max_match
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # oldest first
        self._tables: dict[str, dict[int, list[int]]] = {}
        self._newest: dict[str, int] = {}  # tenant -> serial of its newest entry
        self._serial = 0
        self.tokens = 0  # tokens stored now

    def __len__(self) -> int:
        return len(self._entries)

    def tenants(self) -> list[str]:
        return list(self._tables)

    def add(self, tenant: str, tokens: Sequence[int]) -> None:
        """Stores one finished request's text (prompt, then output) under ``tenant``."""
        if self.budget <= 0 or len(tokens) <= KEY:
            return
        text = array("i", tokens[-self.budget :])
        self._serial += 1
        serial = self._serial
        table = self._tables.setdefault(tenant, {})
        shared, previous = self._shared_start(tenant, text)
        self._index(table, text, serial, replace=(previous, shared))
        self._entries[serial] = _Entry(tenant, text)
        self._newest[tenant] = serial
        self.tokens += len(text)
        if previous is not None and shared >= len(self._entries[previous].tokens):
            self._evict(previous)  # the new entry holds all of it
        while self.tokens > self.budget:
            self._evict(next(iter(self._entries)))

    def lookup(self, tenant: str, history: Sequence[int], k: int) -> Lookup:
        """Up to ``k`` tokens that followed the longest match of ``history``'s end in the tenant's entries."""
        table = self._tables.get(tenant)
        n = len(history)
        if table is None or k <= 0 or n < KEY:
            return Lookup([], 0, "history")
        candidates = table.get(_key(history[-3], history[-2], history[-1]))
        best_len, best_entry, best_start = 0, None, 0
        for pos in reversed(candidates or ()):  # newest first: among equal matches it wins
            entry = self._entries[pos >> _OFFSET_BITS].tokens
            end = pos & ((1 << _OFFSET_BITS) - 1)
            length = 0
            while length < self.max_match and end - length >= 0 and length < n and entry[end - length] == history[n - 1 - length]:
                length += 1
            if length > best_len:
                best_len, best_entry, best_start = length, entry, end + 1
                if length == self.max_match:
                    break
        if best_entry is None or best_len < KEY:  # a key shared by other tokens (ids of 2**21 or more) matches less
            return Lookup([], 0, "history")
        return Lookup(list(best_entry[best_start : best_start + k]), best_len, "history")

    def _shared_start(self, tenant: str, text: array) -> tuple[int, int | None]:
        """(tokens the new text shares at its start with the tenant's newest entry, that entry's serial)."""
        previous = self._newest.get(tenant)
        if previous is None or previous not in self._entries:
            return 0, None
        old = self._entries[previous].tokens
        limit = min(len(old), len(text))
        shared = 0
        while shared < limit and old[shared] == text[shared]:
            shared += 1
        return shared, previous

    def _index(self, table: dict[int, list[int]], text: array, serial: int, replace: tuple[int | None, int]) -> None:
        """Adds the positions of ``text`` to ``table``; within the shared start, each replaces the older copy's."""
        previous, shared = replace
        base = serial << _OFFSET_BITS
        old_base = (previous << _OFFSET_BITS) if previous is not None else -1
        # the last position has no continuation: it is not indexed
        for end in range(KEY - 1, len(text) - 1):
            found = table.setdefault(_key(text[end - 2], text[end - 1], text[end]), [])
            if end < shared and old_base + end in found:
                found.remove(old_base + end)  # the same text, continuing the same way up to the newer copy's end
            found.append(base + end)
            if len(found) > self.max_candidates:
                del found[0]

    def _evict(self, serial: int) -> None:
        entry = self._entries.pop(serial)
        self.tokens -= len(entry.tokens)
        table = self._tables[entry.tenant]
        base = serial << _OFFSET_BITS
        text = entry.tokens
        for end in range(KEY - 1, len(text) - 1):
            key = _key(text[end - 2], text[end - 1], text[end])
            found = table.get(key)
            if found is not None and base + end in found:
                found.remove(base + end)
                if not found:
                    del table[key]
        if not table:
            del self._tables[entry.tenant]
        if self._newest.get(entry.tenant) == serial:
            del self._newest[entry.tenant]
