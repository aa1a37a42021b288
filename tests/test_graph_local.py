"""Task graphs on the real embedded model: branches decode in one batch, share their prefix, cancel at the next token."""

from __future__ import annotations

import anyio

from orchestrator.backends.local import LocalBackend
from orchestrator.taskgraph.graph import Generate, Input, TaskGraph
from orchestrator.taskgraph.runs import RunEvent
from orchestrator.taskgraph.scheduler import RunControl, Runner

_CONTEXT = (
    "Notes from the team meeting. The release moves to Friday. Tests for the parser are flaky on Windows. "
    "The new logo is approved. Two people are on holiday next week. The database migration needs a backup first."
)
_TOPICS = ["the release", "the tests", "the logo", "the holidays", "the migration", "the backup"]


def _branches() -> TaskGraph:
    g = TaskGraph("branches")
    for i, topic in enumerate(_TOPICS):
        g.add(f"b{i}", Generate(f"{{notes}}\nQuestion: what do the notes say about {topic}?\nAnswer:", max_tokens=24), inputs={"notes": Input("notes")})
    g.add("all", lambda **kw: [kw[k] for k in sorted(kw)], inputs={f"b{i}": f"b{i}" for i in range(len(_TOPICS))})
    return g


def test_parallel_branches_share_one_batch_and_their_prefix(smollm2) -> None:
    before = smollm2.stats()
    result = anyio.run(lambda: Runner(LocalBackend(smollm2)).run(_branches(), {"notes": _CONTEXT}))
    after = smollm2.stats()
    tokens = sum(result.nodes[f"b{i}"].info["decode_tokens"] for i in range(len(_TOPICS)))
    steps = after.decode_steps - before.decode_steps
    assert result.status == "done" and len(result.output) == len(_TOPICS)
    assert tokens >= 60
    assert steps < tokens / 2, f"{steps} decode steps for {tokens} tokens: the branches were not batched"
    assert result.prefill_reused >= 30 * (len(_TOPICS) - 1)  # the notes were prefilled once, not six times
    assert all(result.nodes[f"b{i}"].info["ttft_s"] > 0 for i in range(len(_TOPICS)))


def test_cancelling_a_branch_stops_its_sequence_at_the_next_token(smollm2) -> None:
    control = RunControl()
    tokens: dict[str, int] = {}

    def on_event(event: RunEvent) -> None:
        if event.kind == "token" and event.node:
            tokens[event.node] = tokens.get(event.node, 0) + 1
            if event.node == "long" and tokens["long"] == 3:
                control.cancel_node("long")

    g = TaskGraph("cancel")
    g.add("long", Generate("Once upon a time", max_tokens=400))
    g.add("short", Generate("The capital of France is", max_tokens=8))
    result = anyio.run(lambda: Runner(LocalBackend(smollm2)).run(g, on_event=on_event, control=control))
    assert result.nodes["long"].status == "cancelled" and result.nodes["short"].status == "done"
    assert tokens["long"] <= 5
    stats = smollm2.stats()
    assert stats.live_sequences == 0 and stats.waiting_requests == 0  # the engine let the sequence go
