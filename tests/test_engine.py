"""The local engine on the real smollm2-135m model."""

from __future__ import annotations

import time

import anyio
import pytest

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.errors import (
    CapacityError,
    ContextLengthError,
    EngineError,
    GrammarError,
    ModelFileError,
)
from orchestrator.types import ChatMessage, Completion, GenerationRequest, SamplingParams, TokenDelta
from tests.exactness import NEAR_TIE, same_or_near_tie, top2_gap

pytestmark = pytest.mark.model

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colours are",
    "To make a cup of tea, first",
    "In 1969, the first humans",
    "The quick brown fox",
    "Water boils at",
]


def greedy(prompt: str, max_tokens: int = 24, **kw) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, **kw)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_greedy_generation_is_deterministic(smollm2_path):
    runs = []
    for _ in range(2):
        with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024)) as engine:
            runs.append(engine.generate(greedy(PROMPTS[0])))
    assert runs[0].tokens > 0 and runs[0].text.strip()
    assert runs[0].choices[0].token_ids == runs[1].choices[0].token_ids


def batched_vs_alone(model_path, max_tokens: int) -> list[tuple[int | None, float | None]]:
    """For each prompt: where batched decoding first differs from decoding alone, and the top-2 gap there."""
    cfg = EngineConfig(n_ctx=4096, prefix_cache_slots=0)
    with LocalEngine(model_path, cfg) as engine:
        alone = [engine.generate(greedy(p, max_tokens)).choices[0].token_ids for p in PROMPTS]
        prompts = [engine._model.tokenize(p, add_special=True, parse_special=True) for p in PROMPTS]
    with LocalEngine(model_path, cfg) as engine:
        handles = [engine.submit(greedy(p, max_tokens)) for p in PROMPTS]
        together = [h.result().choices[0].token_ids for h in handles]
        assert engine.stats().decode_steps < sum(len(t) for t in together)  # they really shared steps
    report = []
    for a, t, p in zip(alone, together, prompts):
        first = next((i for i, (x, y) in enumerate(zip(a, t)) if x != y), None)
        if first is None:
            assert len(a) == len(t)
            report.append((None, None))
        else:
            report.append((first, top2_gap(model_path, list(p) + list(a[:first]))))
    return report


def test_batched_output_matches_each_sequence_alone(smollm2_path):
    """Identical, except where the two best logits nearly tie (llama.cpp's kernels differ by batch shape)."""
    report = batched_vs_alone(smollm2_path, 24)
    for first, gap in report:
        assert first is None or gap < NEAR_TIE, report
    assert any(first is None for first, _ in report), report


@pytest.mark.slow
def test_gemma3_batched_divergence_only_at_near_ties(gemma3_path):
    report = batched_vs_alone(gemma3_path, 24)
    for first, gap in report:
        assert first is None or gap < NEAR_TIE, report


def test_prefix_reuse_gives_same_text_and_computes_less(smollm2_path):
    shared = "You are a helpful assistant. " * 12
    first, second = shared + "Question: what is two plus two?", shared + "Question: name a fruit."
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=0)) as fresh:
        expected = fresh.generate(greedy(second))
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, prefix_cache_slots=4)) as engine:
        engine.generate(greedy(first))
        reused = engine.generate(greedy(second))
        prompt_tokens = engine._model.tokenize(second, add_special=True, parse_special=True)
    assert same_or_near_tie(smollm2_path, prompt_tokens, reused.choices[0].token_ids, expected.choices[0].token_ids)
    assert reused.choices[0].token_ids[:1] == expected.choices[0].token_ids[:1]  # a clear win (gap ~0.5) right after the prompt
    assert reused.timings.prefill_reused_tokens > 50
    assert reused.timings.prefill_tokens < expected.timings.prefill_tokens
    assert reused.timings.prefill_tokens + reused.timings.prefill_reused_tokens == expected.timings.prefill_tokens


def test_concurrent_requests_share_a_prefix_being_prefilled(smollm2_path):
    shared = "Rules: answer briefly and politely. " * 10
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096)) as engine:
        handles = [engine.submit(greedy(shared + f"Item {i}:", max_tokens=4)) for i in range(4)]
        results = [h.result() for h in handles]
    assert sum(r.timings.prefill_reused_tokens for r in results) >= 3 * 50


def test_cancel_frees_kv_so_a_17th_sequence_fits(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=8192, max_sequences=16, prefix_cache_slots=0)) as engine:
        endless = 'root ::= [0-9, ]+'  # never ends on its own: no end-of-generation token allowed
        long = [engine.submit(greedy(f"Count: {i},", max_tokens=400, grammar=endless)) for i in range(16)]
        wait_for(lambda: engine.stats().live_sequences == 16)
        extra = engine.submit(greedy("Hello", max_tokens=3))
        wait_for(lambda: engine.stats().waiting_requests == 1)  # the 17th waits for a free sequence
        time.sleep(0.2)
        assert engine.stats().waiting_requests == 1 and engine.stats().live_sequences == 16
        long[0].cancel()
        done = extra.result(timeout=60)
        assert done.finish_reason == "length" and done.tokens == 3
        assert long[0].result().finish_reason == "cancelled"
        for h in long[1:]:
            h.cancel()
        assert all(h.result().finish_reason == "cancelled" for h in long)
        wait_for(lambda: engine.stats().kv_cells_used == 0)


def test_admission_waits_for_kv_cells_and_refuses_what_never_fits(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=256, prefix_cache_slots=0)) as engine:
        with pytest.raises(CapacityError):
            engine.submit(greedy("Hello", max_tokens=300, n=2))
        a = engine.submit(greedy("Story one:", max_tokens=150))
        b = engine.submit(greedy("Story two:", max_tokens=150))
        ra, rb = a.result(timeout=60), b.result(timeout=60)
        assert rb.timings.queue_s > 0.5 * ra.timings.total_s  # b waited for a's cells
        assert ra.tokens == rb.tokens == 150


def test_prompt_longer_than_context_is_a_typed_error(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=128)) as engine:
        with pytest.raises(ContextLengthError):
            engine.submit(greedy("word " * 400))


def test_stop_strings_and_max_tokens(smollm2):
    free = smollm2.generate(greedy("1, 2, 3, 4, 5,", max_tokens=20))
    assert " 7" in free.text
    stopped = smollm2.generate(greedy("1, 2, 3, 4, 5,", max_tokens=20, stop=(" 7",)))
    assert stopped.finish_reason == "stop"
    assert " 7" not in stopped.text and free.text.startswith(stopped.text)
    capped = smollm2.generate(greedy("1, 2, 3,", max_tokens=5))
    assert (capped.finish_reason, capped.tokens) == ("length", 5)


def test_n_samples_share_the_prompt_and_seeds_reproduce(smollm2_path):
    req = greedy("My favourite animal is", max_tokens=12, n=3, sampling=SamplingParams(temperature=1.0, seed=11))
    runs = []
    for _ in range(2):
        with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024)) as engine:
            runs.append(engine.generate(req))
    a, b = runs
    assert len(a.choices) == 3 and [c.index for c in a.choices] == [0, 1, 2]
    assert [c.token_ids for c in a.choices] == [c.token_ids for c in b.choices]
    assert len({c.token_ids for c in a.choices}) > 1
    prompt_len = a.timings.prefill_tokens + a.timings.prefill_reused_tokens
    assert a.timings.prefill_reused_tokens >= 2 * (prompt_len // 3)


def test_grammar_constrains_output_and_bad_grammar_fails_at_submit(smollm2):
    r = smollm2.generate(greedy("Is the sky blue? Answer:", max_tokens=8, grammar='root ::= " yes" | " no"'))
    assert r.text in (" yes", " no")
    with pytest.raises(GrammarError):
        smollm2.submit(greedy("x", grammar="root ::= ( unclosed"))


def test_chat_messages_use_the_models_template(smollm2):
    req = GenerationRequest(
        messages=(ChatMessage(role="user", content="What is the capital of France?"),), max_tokens=24
    )
    r = smollm2.generate(req)
    content_tokens = len(smollm2.tokenize("What is the capital of France?"))
    assert r.timings.prefill_tokens + r.timings.prefill_reused_tokens > content_tokens + 10  # the template's turns
    assert r.text.strip() and "<|im_start|>" not in r.text
    assert r.timings.ttft_s > 0 and r.timings.decode_tok_s > 0 and r.timings.prefill_tok_s > 0
    assert r.timings.cpu_s > 0 and r.timings.energy_source in ("rapl", "estimate") and r.timings.energy_j > 0


def test_async_stream_and_leaving_early_cancels(smollm2):
    async def main() -> tuple[str, Completion, int]:
        pieces, final = [], None
        async for event in smollm2.submit(greedy(PROMPTS[2], max_tokens=16)):
            if isinstance(event, TokenDelta):
                pieces.append(event.text)
            else:
                final = event
        handle = smollm2.submit(greedy(PROMPTS[3], max_tokens=500))
        seen = 0
        async for event in handle:
            seen += 1
            if seen == 3:
                break
        return "".join(pieces), final, handle

    text, final, handle = anyio.run(main)
    assert final is not None and text == final.text
    assert handle.result(timeout=30).finish_reason == "cancelled"


def test_quantized_kv_cache_shrinks_bytes_per_token(smollm2_path):
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024, type_k="q8_0", type_v="q8_0")) as engine:
        r = engine.generate(greedy(PROMPTS[0], max_tokens=8))
        q8 = engine.kv_bytes_per_token
    with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024)) as engine:
        f16 = engine.kv_bytes_per_token
    assert r.tokens == 8
    assert q8 < 0.6 * f16
    with pytest.raises(ValueError, match="flash attention"):
        EngineConfig(type_v="q4_0", flash_attn="off")


def test_kv_budget_refuses_a_cache_that_does_not_fit(smollm2_path):
    with pytest.raises(CapacityError, match="budget"):
        LocalEngine(smollm2_path, EngineConfig(n_ctx=65536, kv_budget_bytes=1 << 20))


def test_bad_model_file_fails_before_native_load(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 20)
    with pytest.raises(ModelFileError):
        LocalEngine(bad)


def test_close_fails_pending_requests_and_refuses_new_ones(smollm2_path):
    engine = LocalEngine(smollm2_path, EngineConfig(n_ctx=2048))
    handle = engine.submit(greedy(PROMPTS[0], max_tokens=2000))
    engine.close()
    with pytest.raises(EngineError):
        handle.result(timeout=30)
    with pytest.raises(EngineError):
        engine.submit(greedy("x"))


def test_greedy_fast_path_picks_what_the_c_sampler_chain_picks(smollm2_path):
    """Greedy reads the argmax off the logits; top_k=1 sampling goes through llama.cpp's chain."""
    outputs = []
    for sampling in (SamplingParams(), SamplingParams(temperature=1.0, top_k=1, seed=3)):
        with LocalEngine(smollm2_path, EngineConfig(n_ctx=1024, prefix_cache_slots=0)) as engine:
            outputs.append([engine.generate(greedy(p, 16, sampling=sampling)).choices[0].token_ids for p in PROMPTS[:3]])
    assert outputs[0] == outputs[1]
