"""Speculative decoding (prompt lookup) on the real smollm2-135m model."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from orchestrator.cli import main
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.native import llama
from orchestrator.types import GenerationRequest, SamplingParams
from tests.exactness import same_or_near_tie

pytestmark = pytest.mark.model

SOURCE = '''def merge(a, b):
    """Merge two sorted lists into one sorted list."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out + a[i:] + b[j:]
'''
COPY_PROMPT = f"Copy the following code exactly.\n\n{SOURCE}\nCopy:\n{SOURCE[:40]}"


def run(engine: LocalEngine, prompt: str, mode: str, **kw):
    return engine.generate(GenerationRequest(prompt=prompt, max_tokens=96, speculative=mode, **kw))


def test_prompt_lookup_matches_plain_greedy_and_accepts_drafts(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=0)) as engine:
        plain = run(engine, COPY_PROMPT, "off")
        spec = run(engine, COPY_PROMPT, "prompt-lookup")
        prompt = engine._model.tokenize(COPY_PROMPT, add_special=True, parse_special=True)
    assert plain.speculative is None
    s = spec.speculative
    assert s is not None and s.mode == "prompt-lookup" and s.note is None
    assert s.drafted > 0 and 0 < s.accepted <= s.drafted
    assert s.tokens_per_step > 1.0  # some steps produced more than one token
    assert same_or_near_tie(smollm2_path, prompt, spec.choices[0].token_ids, plain.choices[0].token_ids)


def test_rejected_drafts_leave_no_kv_behind(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=1)) as engine:
        r = run(engine, COPY_PROMPT, "prompt-lookup")
        prompt = engine._model.tokenize(COPY_PROMPT, add_special=True, parse_special=True)
        (slot,) = engine._slots.cached
        held = engine._ledger.tokens(slot)
        native_max = llama().llama_memory_seq_pos_max(engine._ctx.memory, slot)
    assert r.speculative.drafted > r.speculative.accepted  # some drafts were rejected and rolled back
    expected = list(prompt) + list(r.choices[0].token_ids)
    # the cache holds exactly the prompt and the tokens decoded into KV (all but the last sampled)
    assert held == expected[: len(held)] and len(held) >= len(expected) - 1
    assert native_max == len(held) - 1


def test_speculation_inside_a_batch_of_other_sequences(smollm2_path):
    prompts = [COPY_PROMPT, "Once upon a time", "The capital of France is"]
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=0)) as engine:
        alone = [run(engine, p, "off").choices[0].token_ids for p in prompts]
        handles = [engine.submit(GenerationRequest(prompt=p, max_tokens=96, speculative="prompt-lookup")) for p in prompts]
        together = [h.result() for h in handles]
        tokenized = [engine._model.tokenize(p, add_special=True, parse_special=True) for p in prompts]
    assert together[0].speculative.accepted > 0
    for p, a, t in zip(tokenized, alone, together):
        assert same_or_near_tie(smollm2_path, p, t.choices[0].token_ids, a)


def test_greedy_speculation_under_a_grammar_lets_the_grammar_decide(smollm2_path):
    prompt = "Numbers: 3, 14, 15, 92, 65, 35, 89, 79, 3, 14, 15, 92, 65,"
    grammar = 'root ::= [0-9, ]+'
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=2048, prefix_cache_slots=0)) as engine:
        plain = engine.generate(GenerationRequest(prompt=prompt, max_tokens=24, grammar=grammar))
        spec = engine.generate(GenerationRequest(prompt=prompt, max_tokens=24, grammar=grammar, speculative="prompt-lookup"))
        tokens = engine._model.tokenize(prompt, add_special=True, parse_special=True)
    assert spec.speculative.mode == "prompt-lookup" and spec.speculative.drafted > 0
    assert set(spec.text) <= set("0123456789, ")
    assert same_or_near_tie(smollm2_path, tokens, spec.choices[0].token_ids, plain.choices[0].token_ids)


def test_sampling_with_a_grammar_does_not_speculate_and_says_why(smollm2):
    r = smollm2.generate(
        GenerationRequest(
            prompt=COPY_PROMPT, max_tokens=8, speculative="auto", grammar="root ::= [a-z ]+",
            sampling=SamplingParams(temperature=0.7),
        )
    )
    assert r.speculative.mode == "off" and "grammar" in r.speculative.note and r.speculative.drafted == 0


def _chi_square_p_value(a: Counter, b: Counter) -> float:
    """Two-sample chi-square homogeneity test; categories with few counts are pooled."""
    keys = [k for k in set(a) | set(b) if a[k] + b[k] >= 10]
    rows = [[a[k] for k in keys] + [sum(a.values()) - sum(a[k] for k in keys)],
            [b[k] for k in keys] + [sum(b.values()) - sum(b[k] for k in keys)]]
    cols = [r0 + r1 for r0, r1 in zip(*rows)]
    n = sum(cols)
    stat = sum(
        (rows[i][j] - sum(rows[i]) * cols[j] / n) ** 2 / (sum(rows[i]) * cols[j] / n)
        for i in range(2) for j in range(len(cols)) if cols[j]
    )
    dof = sum(1 for c in cols if c) - 1
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))  # Wilson-Hilferty
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_speculative_sampling_keeps_the_targets_distribution(smollm2_path):
    """At temperature > 0 drafts are accepted or resampled so tokens follow the target's distribution."""
    prompt = "Here is a list of fruits: apple, banana, cherry, apple, banana, cherry, apple,"
    cfg = EngineConfig(n_ctx=4096, prefix_cache_slots=0, draft_length=3)
    samples: dict[str, Counter] = {"off": Counter(), "prompt-lookup": Counter()}
    drafted = accepted = 0
    with LocalEngine(smollm2_path, cfg) as engine:
        for r in range(24):
            for mode, counter in samples.items():
                sampling = SamplingParams(temperature=1.0, top_k=40, seed=1000 * r + len(mode))
                done = engine.generate(GenerationRequest(prompt=prompt, max_tokens=4, n=16, sampling=sampling, speculative=mode))
                counter.update(c.token_ids[1:3] for c in done.choices if len(c.token_ids) >= 3)
                if done.speculative is not None:
                    drafted += done.speculative.drafted
                    accepted += done.speculative.accepted
    assert drafted > 100 and 0 < accepted < drafted  # drafts were both accepted and rejected
    assert _chi_square_p_value(samples["off"], samples["prompt-lookup"]) > 0.001


def test_cli_json_reports_speculation(capsys):
    code = main(["generate", "smollm2-135m", COPY_PROMPT, "--max-tokens", "48", "--speculative", "prompt-lookup", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    spec = data["speculative"]
    assert spec["mode"] == "prompt-lookup" and spec["drafted"] >= spec["accepted"] > 0
    assert 0 < spec["acceptance_rate"] <= 1
    assert spec["sources"]["prompt"]["drafted"] == spec["drafted"]  # one request, no tenant: all from its own text
    assert spec["sources"]["prompt"]["accepted"] == spec["accepted"]


def test_draft_model_speculation_is_exact_and_accepts(smollm2_path):
    # The shipped model drafting for itself: every draft should be accepted, output unchanged.
    # A fixed draft length makes it draft although a draft step costs a whole target step.
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(smollm2_path), draft_length=4)
    with LocalEngine(smollm2_path, cfg) as engine:
        assert engine.draft_error is None
        plain = engine.generate(GenerationRequest(prompt="Once upon a time", max_tokens=48))
        spec = engine.generate(GenerationRequest(prompt="Once upon a time", max_tokens=48, speculative="draft"))
        prompt = engine._model.tokenize("Once upon a time", add_special=True, parse_special=True)
        measured = engine.speculator.fixed_costs().draft_acceptance
    assert spec.speculative.mode == "draft"
    # the pair's acceptance is measured with the costs (greedy, on the target's own text): the
    # model drafting for itself always agrees
    assert measured >= 0.95
    assert spec.speculative.drafted > 0 and spec.speculative.acceptance_rate > 0.8
    assert same_or_near_tie(smollm2_path, prompt, spec.choices[0].token_ids, plain.choices[0].token_ids)


def test_a_draft_model_that_cannot_pay_is_skipped_in_draft_and_auto_mode(smollm2_path):
    """The target drafting for itself: each drafted token costs a whole target step, so no draft
    length pays even at its measured agreement. Draft mode decodes plainly (without reading the
    prompt into the draft model) and auto keeps to lookup; both say why."""
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(smollm2_path))
    with LocalEngine(smollm2_path, cfg) as engine:
        plain = engine.generate(GenerationRequest(prompt="Once upon a time", max_tokens=24))
        spec = engine.generate(GenerationRequest(prompt="Once upon a time", max_tokens=24, speculative="draft"))
        auto = engine.generate(GenerationRequest(prompt="Once upon a time", max_tokens=24, speculative="auto"))
    assert spec.speculative.mode == "off" and spec.speculative.drafted == 0
    assert spec.speculative.note.startswith("draft: off") and "prompt prefill" in spec.speculative.note
    assert auto.speculative.mode == "prompt-lookup" and "draft model" in auto.speculative.note
    assert spec.choices[0].token_ids == plain.choices[0].token_ids


def test_auto_quotes_by_lookup_beside_a_draft_model(smollm2_path, monkeypatch, tmp_path):
    """auto with a draft model: while the output quotes the prompt, lookup drafts for free.

    The draft here is the target itself, which could never pay; stored costs that
    say a draft step is cheap make auto use it, the way it would a small draft model.
    """
    from orchestrator.engine.calibration import file_identity, save_costs, target_identity
    from orchestrator.engine.draft_model import DraftModel
    from orchestrator.engine.speculative import SpeculationCosts
    from orchestrator.models.variants import Machine

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path))
    cfg = EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_model=str(smollm2_path))
    save_costs(target_identity(smollm2_path, cfg), file_identity(smollm2_path), Machine.here(cfg.threads),
               SpeculationCosts(0.5, 0.05, 0.0))
    calls = Counter()
    propose = DraftModel.propose

    def counted(self, slot, history, k):
        drafted = propose(self, slot, history, k)
        calls[mode] += len(drafted)  # tokens the draft model decoded
        return drafted

    monkeypatch.setattr(DraftModel, "propose", counted)
    outputs, stats = {}, {}
    with LocalEngine(smollm2_path, cfg) as engine:
        for mode in ("off", "draft", "auto"):
            done = engine.generate(GenerationRequest(prompt=COPY_PROMPT, max_tokens=48, speculative=mode))
            outputs[mode], stats[mode] = done.choices[0].token_ids, done.speculative
    assert outputs["auto"] == outputs["draft"] == outputs["off"]  # exact, with flash attention's row-alike kernels
    assert calls["off"] == 0 and calls["draft"] == stats["draft"].drafted  # draft mode: every draft from the model
    assert stats["auto"].mode == "draft" and calls["auto"] > 0  # auto used the (cheap) draft model...
    assert stats["auto"].drafted > calls["auto"]  # ...and some of its drafts came from lookup instead


def test_incompatible_draft_is_a_typed_error_naming_the_mismatch(smollm2_path, gemma3_path):
    from orchestrator.errors import IncompatibleDraftError

    with pytest.raises(IncompatibleDraftError, match="tokenizer types differ: target BPE, draft SPM"):
        LocalEngine(smollm2_path, EngineConfig(n_ctx=512, draft_model=str(gemma3_path)))


def test_a_draft_that_fails_to_load_leaves_speculation_off_and_says_so(smollm2_path, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 10)
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=512, draft_model=str(broken))) as engine:
        r = engine.generate(GenerationRequest(prompt="Hello", max_tokens=8, speculative="draft"))
    assert r.tokens == 8 and r.speculative.mode == "off"
    assert "did not load" in r.speculative.note and "broken.gguf" in r.speculative.note


def test_doctor_measures_a_compatible_pair_and_refuses_an_incompatible_one(smollm2_path, capsys):
    from orchestrator.engine.doctor import diagnose_draft

    report = diagnose_draft(smollm2_path, smollm2_path, tokens=16)
    assert report.acceptance_rate > 0.8  # a model drafting for itself agrees with itself
    assert report.target_step_s > 0 and report.measured_speedup > 0 and report.request_speedup > 0
    assert 0 < report.extra_row_cost < 2 and 0 < report.draft_cost < 3
    assert main(["doctor", "draft", "smollm2-135m", "gemma3-270m"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "tokenizer types differ" in err and err.count("\n") == 1


def test_auto_without_a_draft_model_drafts_only_where_three_tokens_repeat(smollm2_path):
    """Explicit prompt-lookup drafts from any 1-token match; auto only from a repeated 3-gram,
    so free text costs it (almost) no rejected rows."""
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=2048, prefix_cache_slots=0, draft_length=4)) as engine:
        story = "Write a short story about a fox who learns to sail.\n"
        lookup = engine.generate(GenerationRequest(prompt=story, max_tokens=64, speculative="prompt-lookup")).speculative
        auto = engine.generate(GenerationRequest(prompt=story, max_tokens=64, speculative="auto")).speculative
        copy = engine.generate(GenerationRequest(prompt=COPY_PROMPT, max_tokens=48, speculative="auto")).speculative
    assert auto.mode == "prompt-lookup" and auto.drafted < lookup.drafted
    assert copy.accepted > 0 and copy.acceptance_rate > auto.acceptance_rate


def test_draft_lengths_follow_the_table_of_step_costs(smollm2_path, monkeypatch):
    """Priced by a table where 2 or 3 rows cost almost as much as 4 (kernels in tiles of rows), a
    copy drafts in whole tiles and never verifies in 2- or 3-row steps; where every row costs a
    whole step, drafting never pays and only a rare probe drafts."""
    from orchestrator.engine import thread_policy
    from orchestrator.engine.speculative import SpeculationCosts

    rows: list[int] = []
    decode = thread_policy.StepThreads.decode

    def spy(self, ctx, batch, **kw):
        rows.append(batch.n_tokens)
        decode(self, ctx, batch, **kw)

    tiled = SpeculationCosts(0.325, step_costs=(1.0, 1.95, 2.575, 2.625, 3.175, 3.2, 3.8, 3.25, 3.8))
    linear_full = SpeculationCosts(1.0, step_costs=tuple(float(r) for r in range(1, 18)))
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=0)) as engine:
        plain = run(engine, COPY_PROMPT, "off")
        monkeypatch.setattr(thread_policy.StepThreads, "decode", spy)
        engine.speculator.use_costs(tiled)
        by_tiles = run(engine, COPY_PROMPT, "prompt-lookup")
        verify_rows = [r for r in rows if r > 1]
        engine.speculator.use_costs(linear_full)
        costly = run(engine, COPY_PROMPT, "prompt-lookup")
    assert by_tiles.speculative.accepted > 20 and verify_rows
    assert not {2, 3} & set(verify_rows), verify_rows
    assert costly.speculative.drafted <= 4  # probes only: one token (a row costs a step), one per 20 steps at most
    assert by_tiles.choices[0].token_ids == plain.choices[0].token_ids == costly.choices[0].token_ids
