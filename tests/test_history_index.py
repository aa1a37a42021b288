"""The cross-request history index and the lookup that combines it with prompt lookup (plain data)."""

from __future__ import annotations

import random
import time

from orchestrator.engine.history_index import KEY, HistoryIndex
from orchestrator.engine.lookup_sources import LookupSources
from orchestrator.engine.prompt_lookup import PromptLookupDrafter
from orchestrator.engine.speculative import AcceptanceByMatch
from orchestrator.types import DraftCounts, SpeculativeStats


def test_proposes_what_followed_the_longest_then_newest_match():
    index = HistoryIndex(1000)
    index.add("t", [1, 2, 3, 4, 10, 11, 12])
    index.add("t", [9, 9, 2, 3, 4, 20, 21])  # newer, same 3-token match, shorter context
    index.add("t", [7, 8, 3, 4, 30, 31])  # no 3-token match of (2, 3, 4)
    found = index.lookup("t", [5, 1, 2, 3, 4], 3)
    assert (found.tokens, found.match, found.source) == ([10, 11, 12], 4, "history")  # longest: 4 tokens
    found = index.lookup("t", [5, 6, 2, 3, 4], 2)
    assert (found.tokens, found.match) == ([20, 21], 3)  # two 3-token matches: the newest
    assert index.lookup("t", [8, 3, 4], 5).tokens == [30, 31]  # all that followed, when fewer than asked
    assert index.lookup("t", [1, 2, 5], 3).tokens == []  # nothing shares the last three tokens
    assert index.lookup("t", [3, 4], 3).tokens == []  # shorter than a key


def test_tenants_never_see_each_others_text():
    index = HistoryIndex(1000)
    index.add("alice", [1, 2, 3, 4, 5, 6])
    assert index.lookup("alice", [2, 3, 4], 2).tokens == [5, 6]
    assert index.lookup("bob", [2, 3, 4], 2).tokens == []
    index.add("bob", [0, 2, 3, 4, 8, 9])
    assert index.lookup("bob", [2, 3, 4], 2).tokens == [8, 9]
    assert index.lookup("alice", [2, 3, 4], 2).tokens == [5, 6]


def test_memory_is_bounded_by_evicting_whole_requests_oldest_first():
    index = HistoryIndex(budget=100)
    for i in range(10):
        index.add(f"t{i % 3}", [1000 * i + j for j in range(30)])  # all distinct tokens
    assert index.tokens <= 100 and len(index) == 3  # the three newest requests, whole
    assert index.lookup("t0", [0, 1, 2], 2).tokens == []  # the first request was evicted...
    assert index.lookup("t0", [9000, 9001, 9002], 2).tokens == [9003, 9004]  # ...the last is there
    keys = sum(len(table) for table in index._tables.values())
    assert keys == 3 * (30 - KEY)  # the evicted requests' positions left the table too
    index.add("t5", list(range(500)))  # longer than the whole budget: its last 100 tokens are kept
    assert index.tokens == 100 and len(index) == 1 and index.tenants() == ["t5"]
    assert HistoryIndex(budget=0).lookup("t", [1, 2, 3], 2).tokens == []


def test_a_shared_start_is_indexed_once_and_a_contained_turn_is_dropped():
    index = HistoryIndex(10_000, max_candidates=2)
    system = list(range(100, 160))
    first = system + [1, 2, 3]
    index.add("t", first)
    second = first + [4, 5, 6, 7]  # the conversation's next turn holds the first one whole
    index.add("t", second)
    assert len(index) == 1 and index.tokens == len(second)
    index.add("t", system + [8, 9, 10])  # another task under the same system prompt
    assert len(index) == 2
    table = index._tables["t"]
    assert all(len(positions) == 1 for positions in table.values() if positions[0] >> 32 == 3)
    # with two candidates per key, shared copies would have crowded out the other continuations
    assert index.lookup("t", system[-5:] + [1, 2, 3], 4).tokens == [4, 5, 6, 7]
    assert index.lookup("t", system[-3:], 2).tokens in ([1, 2], [8, 9])


def test_lookup_sources_prefers_the_longer_match_and_its_own_text_on_a_tie():
    index = HistoryIndex(1000)
    index.add("t", [50, 51, 1, 2, 3, 40, 41])
    sources = LookupSources(PromptLookupDrafter(), index, "t")
    own = [60, 1, 2, 3, 70, 71, 60]
    found = sources.lookup(own + [1, 2, 3], 2)  # own text: a 4-token match; history: 3 tokens
    assert (found.tokens, found.source) == ([70, 71], "prompt")
    found = sources.lookup([51, 1, 2, 3], 2)  # history: 4 tokens, own text: none
    assert (found.tokens, found.match, found.source) == ([40, 41], 4, "history")
    tie = LookupSources(PromptLookupDrafter(), index, "t").lookup([1, 2, 3, 33, 9, 1, 2, 3], 2)
    assert tie.source == "prompt" and tie.tokens == [33, 9]  # 3 tokens each: own text wins
    assert LookupSources(PromptLookupDrafter(), index, None).lookup([51, 1, 2, 3], 2).tokens == []


def test_a_finished_sequence_joins_its_tenants_history_unless_cancelled_or_anonymous():
    index = HistoryIndex(1000)
    LookupSources(PromptLookupDrafter(), index, "t").finish([1, 2, 3, 4, 5], cancelled=True)
    LookupSources(PromptLookupDrafter(), index, None).finish([1, 2, 3, 4, 5], cancelled=False)
    assert len(index) == 0
    LookupSources(PromptLookupDrafter(), index, "t").finish([1, 2, 3, 4, 5], cancelled=False)
    assert index.lookup("t", [1, 2, 3], 2).tokens == [4, 5]


def test_acceptance_is_kept_per_source():
    by_match = AcceptanceByMatch()
    assert by_match.group(5, "history") is not by_match.group(5, "prompt")
    assert by_match.group(5, "history").source == "history" and by_match.group(5).source == "prompt"
    for _ in range(10):  # ten drafts, each rejected at its first token
        by_match.group(5, "history").update(20, 0)
    assert by_match.group(5, "history").rate < 0.3 and by_match.group(5, "prompt").rate > 0.8


def test_stats_report_drafts_per_source():
    stats = SpeculativeStats(mode="prompt-lookup", drafted=7, accepted=4,
                             sources={"prompt": DraftCounts(drafted=5, accepted=3), "history": DraftCounts(drafted=2, accepted=1)})
    assert stats.model_dump()["sources"]["history"] == {"drafted": 2, "accepted": 1}
    assert SpeculativeStats(mode="off").sources == {}


def _lookup_seconds(index: HistoryIndex, history: list[int], repeats: int = 200) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            index.lookup("t", history, 16)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def test_a_lookup_costs_the_same_whatever_the_index_holds():
    """No scan of history per step: a lookup on an index 64 times bigger costs about the same.
    Worst cases: text that repeats one phrase (every key has many positions, every match is
    long) and random text. The bound is generous (timings on a busy machine); a scan would be ~64x."""
    rng = random.Random(0)
    phrase = [rng.randrange(5000) for _ in range(40)]
    for make in (lambda n: (phrase * (n // 40 + 1))[:n], lambda n: [rng.randrange(5000) for _ in range(n)]):
        times = []
        for size in (1_000, 64_000):
            index = HistoryIndex(budget=size)
            for start in range(0, size, 500):
                index.add("t", [10_000 + start] + make(499))  # each request starts its own way: none is dropped
            assert index.tokens >= size // 2
            times.append(_lookup_seconds(index, phrase[:30]))
        small, big = times
        assert big < 8 * small + 20e-6, (small, big)
        assert big < 2e-3  # a step's lookup stays far below a decode step


def test_a_source_whose_drafts_were_rejected_loses_to_a_shorter_match_and_a_tenant_keeps_the_lesson():
    from orchestrator.engine.speculator import Speculator

    index = HistoryIndex(1000)
    index.add("t", [50, 51, 1, 2, 3, 40, 41])
    sources = LookupSources(PromptLookupDrafter(), index, "t")
    text = [9, 3, 70, 71, 51, 1, 2, 3]  # own text: a 1-token match of 3; history: 4 tokens
    by_match = AcceptanceByMatch()

    def rate(f):
        return by_match.group(f.match, f.source).rate

    assert sources.lookup(text, 2, rate).source == "history"  # as the priors have it
    for _ in range(10):
        by_match.group(4, "history").update(2, 0)
        by_match.group(1, "prompt").update(2, 2)
    assert sources.lookup(text, 2, rate).tokens == [70, 71]
    # the speculator hands a tenant's requests one set of history rates, kept while the index holds the tenant
    spec = Speculator(ctx=None, model=None, ledger=None, batch=None, scratch_slot=0, max_positions=64,
                      draft_length=None, draft_model=None, draft_error=None, history=index)
    first = spec._history_acceptance("t")
    assert spec._history_acceptance("t") is first and spec._history_acceptance("u") is not first
    index.add("v", [1, 2, 3, 4, 5])
    spec._history_acceptance("w")  # a new tenant: rates of tenants the index no longer holds ("u") go
    assert spec._history_acceptance("t") is first and set(spec._tenant_acceptance) <= {"t", "v", "w"}
