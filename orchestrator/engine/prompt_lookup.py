"""Prompt lookup: draft the tokens that followed the longest earlier match of the text's end.

Pure Python, no native calls. A sequence's history (prompt, then generated
tokens) only grows, so the drafter indexes it as it grows: each token's
positions, newest last. A lookup compares backwards from every recent earlier
position of the last token, keeps the longest match (the latest among equals),
and proposes what followed it. The match length is returned too: it is the
best evidence a lookup has of being right (a 20-token match is usually a
quotation under way, a 1-token match a coincidence), and the speculator keeps
acceptance per match length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Lookup", "PromptLookupDrafter", "lookup_speedup_bound"]


@dataclass(frozen=True)
class Lookup:
    """A proposal, the number of tokens of the match behind it (0: none), and where it was found:
    ``"prompt"`` (this request's own text) or ``"history"`` (earlier requests, ``history_index.py``)."""

    tokens: list[int]
    match: int
    source: str = "prompt"


@dataclass
class PromptLookupDrafter:
    """N-gram lookup over one sequence's history, longest match first.

    ``min_match``: shorter matches propose nothing. ``max_match``: matches are
    compared at most this far back (longer ones tie). ``window``: only this many
    recent tokens are searched, and ``max_candidates`` recent occurrences of the
    last token, so a step's cost stays bounded on long texts.
    """

    min_match: int = 1
    max_match: int = 32
    window: int = 4096
    max_candidates: int = 64
    _positions: dict[int, list[int]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)  # how many leading tokens of the history are indexed
    _last: int = field(default=-1, repr=False)  # the last of them

    def close(self) -> None:
        self._positions.clear()
        self._indexed, self._last = 0, -1

    def propose(self, history: Sequence[int], k: int) -> list[int]:
        return self.lookup(history, k).tokens

    def lookup(self, history: Sequence[int], k: int) -> Lookup:
        n = len(history)
        if k <= 0 or n < 2:
            return Lookup([], 0)
        self._index(history)
        last = history[-1]
        best_len, best_start = 0, -1
        lowest = max(0, n - self.window)
        seen = 0
        for pos in reversed(self._positions.get(last, ())):
            if pos >= n - 1:
                continue  # the last token itself
            if pos < lowest or seen >= self.max_candidates:
                break
            seen += 1
            length = 1
            while length < self.max_match and pos - length >= 0 and history[pos - length] == history[n - 1 - length]:
                length += 1
            if length > best_len:  # strictly longer: among equals the latest (first seen) wins
                best_len, best_start = length, pos + 1
                if length == self.max_match:
                    break
        if best_len < self.min_match:
            return Lookup([], 0)
        return Lookup(list(history[best_start : best_start + k]), best_len)

    def _index(self, history: Sequence[int]) -> None:
        if self._indexed > len(history) or (self._indexed and history[self._indexed - 1] != self._last):
            self.close()  # not the history indexed so far: start again
        for pos in range(self._indexed, len(history)):
            self._positions.setdefault(history[pos], []).append(pos)
        self._indexed, self._last = len(history), history[-1]


def lookup_speedup_bound(
    prompt: Sequence[int], output: Sequence[int], step_cost: Callable[[int], float], k_max: int = 16
) -> float:
    """The most prompt lookup could speed up greedy decoding of ``output``, knowing the output in advance.

    Each step feeds the pending token plus a draft of k tokens from this drafter; it costs
    ``step_cost(1 + k)`` one-row steps (``SpeculationCosts.step_cost``) and yields the
    accepted drafts plus one token. The best length for every step (found by
    dynamic programming from the end) gives a bound no adaptive policy can
    beat: it shows what the drafter and the cost of a row leave on the table.
    """
    n = len(output)
    if n == 0:
        return 1.0
    drafter = PromptLookupDrafter()
    history = list(prompt)
    accepted_at: list[tuple[int, int]] = []  # per position: (draft length available, tokens of it accepted)
    for i in range(n):
        found = drafter.lookup(history, k_max)
        agree = 0
        while agree < len(found.tokens) and i + agree < n and found.tokens[agree] == output[i + agree]:
            agree += 1
        accepted_at.append((len(found.tokens), agree))
        history.append(output[i])
    best = [0.0] * (n + 1)  # best[i]: least time to produce output[i:]
    for i in range(n - 1, -1, -1):
        length, agree = accepted_at[i]
        best[i] = 1.0 + best[i + 1]
        for k in range(1, length + 1):
            best[i] = min(best[i], step_cost(1 + k) + best[min(n, i + min(agree, k) + 1)])
    return n / best[0]
