"""Speculation you can rely on: the same tokens every run, and plain greedy's tokens up to near-ties.

Draft lengths follow acceptance and costs fixed when the engine starts (``SpeculationCosts``),
never clocks: a jittery clock changes nothing. Greedy speculative output equals plain greedy
output on every supported weight format, except where the target's best two logits nearly tie
(``tests/exactness.NEAR_TIE``), measured against llama-cpp-python's own ``Llama``.
"""

from __future__ import annotations

import itertools
import random
import time
import types

import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.quantize import quantize_model
from orchestrator.types import ChatMessage, GenerationRequest
from tests.exactness import NEAR_TIE, top2_gap

pytestmark = pytest.mark.model

LOG = "\n".join(
    f"2026-11-0{d} 12:{m:02d}:0{s} {level} {what}"
    for d, m, s, level, what in [
        (1, 3, 1, "INFO", "worker 3 started"),
        (1, 4, 2, "ERROR", "disk /dev/sdb1 is full"),
        (1, 9, 7, "WARN", "retrying upload of report.pdf"),
        (2, 11, 3, "ERROR", "upload of report.pdf failed after 3 tries"),
        (2, 15, 5, "INFO", "worker 3 stopped"),
        (3, 21, 8, "ERROR", "certificate for api.example.org expires in 2 days"),
    ]
)

CODE = '''def moving_average(values, window):
    result = []
    for i in range(len(values) - window + 1):
        chunk = values[i:i + window]
        result.append(sum(chunk) / window)
    return result
'''

# 24 requests: copy-heavy (where drafts are accepted) and open-ended (where they are rejected).
PROMPTS = [
    f"List the ERROR lines of this log, one per line:\n{LOG}",
    f"Copy the WARN and ERROR lines of this log:\n{LOG}",
    f"Which worker appears in this log? Quote the lines.\n{LOG}",
    f"Repeat this log exactly:\n{LOG}",
    f"Rename the function to rolling_mean and show the whole code:\n{CODE}",
    f"Add a docstring to this function and show the whole code:\n{CODE}",
    f"Rewrite this function so that it raises ValueError when window is 0:\n{CODE}",
    f"Explain this code line by line, quoting each line:\n{CODE}",
    "Repeat after me: the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog.",
    "Write the numbers from 1 to 30 separated by commas.",
    "Spell the days of the week, then spell them again in reverse order.",
    "Here is a list: apple, banana, cherry, date, elderberry, fig, grape. Write it again in upper case.",
    "Translate to French: Good morning. Good morning. Good evening. Good night.",
    'Turn this into JSON with keys name and city: "Ada lives in London. Grace lives in New York."',
    "Quote the first sentence of this text, then summarise it: The river rose overnight. Roads closed at dawn.",
    "Write a haiku about autumn leaves.",
    "What is the capital of France? Answer in one sentence.",
    "Tell a very short story about a robot who learns to paint.",
    "Give three tips for sleeping better.",
    "Why is the sky blue? Explain simply.",
    "Describe a cat to someone who has never seen one.",
    "Write a limerick about a programmer.",
    "What are the primary colors?",
    "Name five animals that live in the ocean and say one fact about each.",
]


def _request(prompt: str, mode: str, max_tokens: int = 40) -> GenerationRequest:
    return GenerationRequest(
        messages=[ChatMessage(role="user", content=prompt)], max_tokens=max_tokens, speculative=mode
    )


@pytest.fixture(scope="module")
def weight_files(smollm2_path, tmp_path_factory):
    """The shipped Q4_1 and every format ``orchestrator models tune`` measures, made from it."""
    folder = tmp_path_factory.mktemp("formats")
    files = {"q4_1": smollm2_path}
    for fmt in ("q8_0", "q4_0", "f16"):
        files[fmt] = quantize_model("smollm2-135m", folder / f"smollm2-{fmt}.gguf", fmt).path
    return files


def test_the_same_request_gives_the_same_tokens_and_drafts_under_any_clock(smollm2_path, monkeypatch):
    """Draft decisions follow acceptance and fixed costs only: a clock that jumps around changes nothing.

    Both engines decide by the same calibration, as engines do once it is stored; a busy machine
    (CI) stores none, and each engine would otherwise measure its own.
    """
    import orchestrator.engine.draft_model as draft_module
    import orchestrator.engine.engine as engine_module
    from orchestrator.engine.speculator import Speculator

    measure, calibrations = Speculator._calibrate, []

    def calibrate_once(self):
        if not calibrations:
            calibrations.append(measure(self))
        return calibrations[0]

    monkeypatch.setattr(Speculator, "_calibrate", calibrate_once)
    monkeypatch.setattr("orchestrator.engine.speculator.load_costs", lambda *key: None)
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(smollm2_path))
    runs = []
    for clock in (None, random.Random(7)):
        if clock is not None:  # live step timings become noise
            jitter = itertools.count()
            fake = types.SimpleNamespace(**vars(time))
            fake.perf_counter = lambda: next(jitter) * clock.uniform(0.001, 0.3)
            monkeypatch.setattr(engine_module, "time", fake)
            monkeypatch.setattr(draft_module, "time", fake)
        with LocalEngine(smollm2_path, cfg) as engine:
            done = [engine.generate(_request(PROMPTS[0], mode, 40)) for mode in ("prompt-lookup", "draft")]
        runs.append([(d.choices[0].token_ids, d.speculative.drafted, d.speculative.accepted, d.speculative.target_steps) for d in done])
    assert runs[0] == runs[1]
    assert any(drafted > 0 for _, drafted, _, _ in runs[0])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["q4_1", "q8_0", "q4_0", "f16"])
def test_speculative_greedy_equals_plain_greedy_up_to_near_ties(weight_files, fmt):
    """Every divergence from plain greedy, over 24 prompts, sits where the best two logits nearly tie."""
    path = weight_files[fmt]
    cfg = EngineConfig(n_ctx=4096, prefix_cache_slots=0)
    diverged, drafted = [], 0
    with LocalEngine(path, cfg) as engine:
        for prompt in PROMPTS:
            plain = engine.generate(_request(prompt, "off"))
            spec = engine.generate(_request(prompt, "prompt-lookup"))
            drafted += spec.speculative.drafted
            a, b = plain.choices[0].token_ids, spec.choices[0].token_ids
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
            if first is None:
                assert len(a) == len(b)
                continue
            tokens = engine.prompt_tokens(_request(prompt, "off")) + list(a[:first])
            diverged.append((prompt[:40], first, top2_gap(path, tokens)))
    gaps = [round(g, 3) for _, _, g in diverged]
    print(f"\n{fmt}: {len(PROMPTS) - len(diverged)}/{len(PROMPTS)} identical to plain, drafted {drafted}, gaps at divergences {gaps}")
    assert drafted > 120  # the copy-heavy prompts did draft (199 on q4_1 when last run, drafting only where a tile of rows pays)
    wide = [d for d in diverged if d[2] >= NEAR_TIE]
    assert not wide, f"{fmt}: divergences where one token clearly won: {wide}"
    assert len(diverged) <= len(PROMPTS) // 2, f"{fmt}: {len(diverged)} of {len(PROMPTS)} outputs diverged: {diverged}"
