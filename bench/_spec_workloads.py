"""The agent and code-edit workloads of ``orchestrator bench speculative``.

Each workload is a list of items; an item runs on an engine with one speculative mode and one
tenant (``GenerationRequest.user``) and returns the completions of its model turns:

- ``agent``: the tools bench's agent (``bench/tools.py``: its tools, developer examples and
  tasks, arguments grounded) run to its answer with ``run_agent``, the tools returning canned
  results: every model turn (the call, then the answer) counts;
- ``code``: "rewrite this function so that ..." over HumanEval's functions (``_humaneval_data``),
  one user message in the model's chat template, the edit asked for rotating over ``EDITS``.

Modes: ``plain`` (no speculation), ``prompt-lookup`` (the request's own text only, no tenant),
``lookup+index`` and ``auto+index`` (a tenant: drafts also from the tenant's earlier requests),
and ``draft`` where the target has a draft model. Each repetition gives every mode a fresh
tenant, so its index is warm only from the items before, in that repetition (never from the same
item in an earlier one). Items run in order; the modes of an item in a rotating order.

Measured per mode: decode speed (generated tokens after the first, over the time from the first
token to the last, summed over the model turns: prefill is left out), its ratio to plain in the
same repetition (median over repetitions), tokens per target step, the share of items whose
every turn is token for token plain's, and drafted/accepted tokens per draft source. Per
workload: the most prompt lookup could gain over the plain turns, knowing each output in
advance, at the step costs the engine decides by (``prompt_lookup_bound``).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.types import ChatMessage, Completion, GenerationRequest

__all__ = ["EDITS", "MODES", "Item", "agent_items", "code_items", "run_workload"]

# name -> (GenerationRequest.speculative, whether the mode names a tenant)
MODES: dict[str, tuple[str, bool]] = {
    "plain": ("off", False),
    "prompt-lookup": ("prompt-lookup", False),
    "lookup+index": ("prompt-lookup", True),
    "draft": ("draft", False),
    "auto+index": ("auto", True),
}
EDITS = (
    "it has type hints on every argument and on the return value",
    "its local variables have longer, more descriptive names",
    "its docstring is one short sentence",
    "it raises ValueError when an argument has the wrong type",
)


@dataclass(frozen=True)
class Item:
    """One unit of a workload: ``run(engine, speculative, user)`` returns its model turns' completions."""

    name: str
    run: Callable[[Any, str, str | None], list[Completion]]


def code_items(problems: list[Any], tokens: int) -> list[Item]:
    def make(code: str, edit: str) -> Callable[[Any, str, str | None], list[Completion]]:
        text = f"Rewrite this function so that {edit}. Reply with the full code only.\n\n```python\n{code}```"

        def run(engine: Any, speculative: str, user: str | None) -> list[Completion]:
            messages = (ChatMessage(role="user", content=text),)
            return [engine.generate(GenerationRequest(messages=messages, max_tokens=tokens, speculative=speculative, user=user))]

        return run

    return [Item(p.task_id, make(p.code, EDITS[i % len(EDITS)])) for i, p in enumerate(problems)]


def agent_items(tasks: list[Any]) -> list[Item]:
    import anyio

    from agents.agent import Agent
    from bench.tools import EXAMPLES, INSTRUCTIONS, MAX_TOKENS, TOOLS
    from orchestrator.agent_runner import run_agent
    from orchestrator.backends.local import LocalBackend
    from orchestrator.errors import AgentError

    base = Agent("tools-bench", INSTRUCTIONS, tools=TOOLS, examples=EXAMPLES, max_tokens=MAX_TOKENS, ground_arguments=True)

    class Recording(LocalBackend):
        """The local backend, keeping every completion it returns."""

        def __init__(self, engine: Any) -> None:
            super().__init__(engine)
            self.completions: list[Completion] = []

        async def generate(self, request: GenerationRequest, *, cancel: Any = None) -> Any:
            async for event in super().generate(request, cancel=cancel):
                if isinstance(event, Completion):
                    self.completions.append(event)
                yield event

    def make(text: str) -> Callable[[Any, str, str | None], list[Completion]]:
        def run(engine: Any, speculative: str, user: str | None) -> list[Completion]:
            agent = dataclasses.replace(base, speculative=speculative, user=user)
            backend = Recording(engine)
            try:
                anyio.run(lambda: run_agent(agent, text, backend))
            except AgentError:
                pass  # a run that ends without an answer still had its turns
            return backend.completions

        return run

    return [Item(t.text, make(t.text)) for t in tasks]


@dataclass
class _Tally:
    tokens: int = 0
    seconds: float = 0.0
    spec_tokens: int = 0
    steps: int = 0
    identical: int = 0
    sources: dict[str, list[int]] = field(default_factory=dict)

    def add(self, completions: list[Completion]) -> None:
        for done in completions:
            t = done.timings
            if t.decode_tok_s > 0 and t.decode_tokens > 1:
                self.tokens += t.decode_tokens - 1
                self.seconds += (t.decode_tokens - 1) / t.decode_tok_s
            s = done.speculative
            if s is not None:
                self.spec_tokens += s.tokens
                self.steps += s.target_steps
                for name, counts in s.sources.items():
                    total = self.sources.setdefault(name, [0, 0])
                    total[0] += counts.drafted
                    total[1] += counts.accepted

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class _PromptRecorder:
    """The engine, keeping the prompt tokens of every request submitted through it."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.prompts: list[list[int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def submit(self, request: GenerationRequest) -> Any:
        self.prompts.append(self._engine.prompt_tokens(request))
        return self._engine.submit(request)

    def generate(self, request: GenerationRequest) -> Completion:
        return self.submit(request).result()


def run_workload(engine: Any, workload: str, items: list[Item], modes: list[str], reps: int, log: Callable[[str], None]) -> dict:
    """Runs every item in every mode, ``reps`` times; returns the per-mode summary (see the module)."""
    tallies = [{m: _Tally() for m in modes} for _ in range(reps)]
    plain_turns: list[tuple[list[int], tuple[int, ...]]] = []  # (prompt, output) of each plain turn, first repetition
    for rep in range(reps):
        tenants = {m: f"{workload}-rep{rep}-{m}" for m in modes}  # fresh per repetition: warm only from earlier items
        for i, item in enumerate(items):
            outputs = {}
            shift = (rep + i) % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                speculative, named = MODES[mode]
                recorder = _PromptRecorder(engine)
                completions = item.run(recorder, speculative, tenants[mode] if named else None)
                tallies[rep][mode].add(completions)
                outputs[mode] = [c.choices[0].token_ids for c in completions]
                if mode == "plain" and rep == 0:
                    plain_turns += zip(recorder.prompts, outputs[mode])
            for mode in modes:
                tallies[rep][mode].identical += outputs[mode] == outputs["plain"]
        log(f"  {workload} rep {rep + 1}/{reps} done")
    return _summary(tallies, modes, len(items)) | {"prompt_lookup_bound": _bound(engine, plain_turns)}


def _bound(engine: Any, turns: list[tuple[list[int], tuple[int, ...]]]) -> float | None:
    """The most prompt lookup could gain over these turns (``lookup_speedup_bound``, knowing each
    output in advance, at the engine's step costs): their tokens over their least total cost.
    None when no turn went through the engine's ``submit``."""
    from orchestrator.engine.prompt_lookup import lookup_speedup_bound

    if not turns:
        return None
    step_cost = engine.speculator.fixed_costs().step_cost
    tokens = sum(len(out) for _, out in turns)
    cost = sum(len(out) / lookup_speedup_bound(prompt, out, step_cost) for prompt, out in turns if out)
    return round(tokens / cost, 2) if cost else 1.0


def _summary(tallies: list[dict[str, _Tally]], modes: list[str], items: int) -> dict:
    out: dict[str, Any] = {"items": items, "reps": len(tallies), "modes": {}}
    for mode in modes:
        per_rep = [t[mode] for t in tallies]
        ratios = [t[mode].rate / t["plain"].rate for t in tallies if t["plain"].rate and t[mode].rate]
        steps = sum(t.steps for t in per_rep)
        sources: dict[str, dict[str, int]] = {}
        for t in per_rep:
            for name, (drafted, accepted) in t.sources.items():
                s = sources.setdefault(name, {"drafted": 0, "accepted": 0})
                s["drafted"] += drafted
                s["accepted"] += accepted
        out["modes"][mode] = {
            "decode_tok_s": round(statistics.median(t.rate for t in per_rep), 1),
            "x_plain": round(statistics.median(ratios), 2) if ratios else None,
            "tokens_per_step": round(sum(t.spec_tokens for t in per_rep) / steps, 2) if steps else 1.0,
            "identical_to_plain": round(sum(t.identical for t in per_rep) / (items * len(per_rep)), 3),
            "sources": sources,
        }
    return out
