"""Pinned prefixes on the real smollm2-135m: a restored KV state is the computed one, in this
process and in a new one; stale and corrupt files are logged and computed again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents import Agent
from agents.loop import turn_request
from agents.prompting import prompt_messages, shared_prompt_start
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.engine.native import Batch, NativeContext, NativeModel
from orchestrator.engine.prefix_store import PrefixKey, PrefixStore
from orchestrator.sync_facade import SyncOrchestrator
from orchestrator.types import ChatMessage, GenerationRequest
from tests.children import die_with_parent

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You answer questions about the town of Elmsford. " + " ".join(
    f"Fact {i}: the {w} of Elmsford is known for its {v}." for i, (w, v) in enumerate(
        [("river", "old bridges"), ("market", "cheese"), ("library", "maps"), ("harbour", "boats"),
         ("school", "choir"), ("park", "oak trees"), ("museum", "clocks"), ("station", "red roof")]))
PREFIX = (ChatMessage(role="system", content=SYSTEM),)
QUESTION = ChatMessage(role="user", content="What is the market of Elmsford known for?")


def config(folder: Path, **kw) -> EngineConfig:
    return EngineConfig(**{"n_ctx": 1024, "max_sequences": 2, "prefix_cache_slots": 2, "prefix_dir": str(folder), **kw})


def ask(engine: LocalEngine):
    return engine.generate(GenerationRequest(messages=(*PREFIX, QUESTION), max_tokens=12, logprobs=True))


def test_a_restored_state_gives_the_logits_of_a_computed_one(smollm2_path, tmp_path):
    """Native level: a prefix's state saved through the store and loaded into another context
    (into another sequence, beside other cells) gives the next-token logits of computing it all."""
    model = NativeModel(smollm2_path)
    tokens = model.tokenize(SYSTEM + " Which fact is about clocks?", add_special=True, parse_special=True)
    prefix, suffix = tokens[:-6], tokens[-6:]
    contexts: list[NativeContext] = []

    def context() -> tuple[NativeContext, Batch]:
        contexts.append(NativeContext(model, n_ctx=1024, n_batch=512, n_seq_max=4, n_threads=2, type_k="f16", type_v="f16", flash_attn="on"))
        return contexts[-1], Batch(512)

    def decode(ctx: NativeContext, batch: Batch, toks: list[int], start: int, seq: int) -> np.ndarray:
        batch.clear()
        idx = batch.add(toks, start, seq, True)
        ctx.decode(batch)
        return ctx.logits(idx, model.n_vocab)

    try:
        store = PrefixStore(tmp_path)
        key = PrefixKey("0" * 64, "test", {"n_ctx": 1024})
        saver, batch = context()
        decode(saver, batch, prefix, 0, 0)
        store.save(key, prefix, saver.seq_state(0))
        loader, batch = context()
        decode(loader, batch, tokens[:20], 0, 0)  # another sequence holds the first cells
        assert loader.set_seq_state(2, store.load(key, prefix))
        assert loader.seq_positions(2) == (0, len(prefix) - 1)
        restored = decode(loader, batch, suffix, len(prefix), 2)
        fresh, batch = context()
        computed = decode(fresh, batch, tokens, 0, 0)
        assert np.abs(restored - computed).max() <= 1e-4
        assert restored.argmax() == computed.argmax()
    finally:
        for ctx in contexts:
            ctx.free()
        model.free()


def test_a_pinned_prefix_is_restored_in_this_process_and_in_a_new_one(smollm2_path, tmp_path):
    # The reference: computed from nothing, then the prompt's start pinned from the KV cache.
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        reference = ask(engine)
        assert reference.timings.prefill_reused_tokens == 0
        pinned = engine.pin_prefix(PREFIX)
        assert pinned.source == "kv" and pinned.stored is not None and pinned.stored.exists()
        assert engine.stats().pinned_prefixes == 1
    # A new engine restores it when pinned: the same tokens, the same log-probabilities.
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        again = engine.pin_prefix(PREFIX)
        assert again.source == "disk" and again.tokens == pinned.tokens
        restored = ask(engine)
        assert engine.stats().restored_prefix_tokens == pinned.tokens
    assert restored.timings.prefill_reused_tokens == pinned.tokens
    assert restored.choices[0].token_ids == reference.choices[0].token_ids
    np.testing.assert_allclose(restored.choices[0].logprobs, reference.choices[0].logprobs, atol=1e-4)
    # A new process restores it for a request that starts with it, with no pin call at all.
    code = (
        "import json, sys; from pathlib import Path; import tests.test_prefix_pinning as t;"
        "from orchestrator.engine import LocalEngine;"
        "e = LocalEngine(sys.argv[1], t.config(Path(sys.argv[2]))); c = t.ask(e); s = e.stats(); e.close();"
        "print(json.dumps({'ids': c.choices[0].token_ids, 'reused': c.timings.prefill_reused_tokens,"
        " 'restored': s.restored_prefix_tokens}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(smollm2_path), str(tmp_path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         preexec_fn=die_with_parent, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["restored"] == pinned.tokens and child["reused"] == pinned.tokens
    assert tuple(child["ids"]) == reference.choices[0].token_ids


def test_a_stale_prefix_file_is_logged_and_computed_again(smollm2_path, tmp_path, caplog):
    """A file under this engine's name for the prefix, saved with other settings, is not used."""
    with LocalEngine(smollm2_path, config(tmp_path, n_ctx=2048)) as other:
        theirs = other.pin_prefix(PREFIX).stored
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        mine = engine._pins.store.path(engine._pins.key(), engine.prefix_tokens(PREFIX))
        os.replace(theirs, mine)
        with caplog.at_level(logging.WARNING, logger="orchestrator.engine.prefix_store"):
            pinned = engine.pin_prefix(PREFIX)
        assert "stale" in caplog.text and "n_ctx=2048" in caplog.text
        assert pinned.source == "computed" and pinned.stored == mine  # stored again, valid this time
        assert engine.stats().restored_prefix_tokens == 0
        key, tokens = engine._pins.key(), engine.prefix_tokens(PREFIX)
    assert PrefixStore(tmp_path).load(key, tokens) is not None


def test_a_corrupt_or_refused_prefix_file_is_logged_and_the_engine_serves_on(smollm2_path, tmp_path, caplog):
    with LocalEngine(smollm2_path, config(tmp_path, persist_prefixes=False)) as engine:
        reference = ask(engine)
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        path = engine.pin_prefix(PREFIX).stored
        tokens = engine.prefix_tokens(PREFIX)
        key = engine._pins.key()
    # 1. A flipped byte in the state: a new engine indexes the file (its header is fine), then a
    # request that starts with it finds the checksum wrong and computes the prompt itself.
    data = bytearray(path.read_bytes())
    data[-5000] ^= 0x55
    path.write_bytes(bytes(data))
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        with caplog.at_level(logging.WARNING):
            got = ask(engine)
        assert "corrupt" in caplog.text and not path.exists()
        assert engine.stats().restored_prefix_tokens == 0 and got.timings.prefill_reused_tokens == 0
        assert got.choices[0].token_ids == reference.choices[0].token_ids
    # 2. A whole, checksummed file whose state holds one token fewer than its header says:
    # llama.cpp loads it, the positions do not match, so it is refused, logged and deleted.
    store = PrefixStore(tmp_path)
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        shorter = engine.pin_prefix(tokens[:-1]).stored
    state = store.load(key, tokens[:-1])
    shorter.unlink()
    store.save(key, tokens, state)
    caplog.clear()
    with LocalEngine(smollm2_path, config(tmp_path)) as engine:
        with caplog.at_level(logging.WARNING):
            pinned = engine.pin_prefix(PREFIX)
        assert "did not accept" in caplog.text
        assert pinned.source == "computed" and engine.stats().restored_prefix_tokens == 0
        assert ask(engine).choices[0].token_ids == reference.choices[0].token_ids


def test_an_agents_shared_prompt_start_begins_each_of_its_prompts(smollm2):
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    agent = Agent("calc", "You add numbers for the user.", tools=(add,), examples=(("Add 2 and 3", {"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}),))
    start = smollm2.prefix_tokens(shared_prompt_start(agent))
    assert len(start) > len(smollm2.prefix_tokens(shared_prompt_start(agent)[:1]))  # the examples are shared too
    for task in ("Add 10 and 20", "What is 7 plus 8?"):
        prompt = smollm2.prompt_tokens(turn_request(agent, prompt_messages(agent, task)))
        assert prompt[: len(start)] == start and len(prompt) > len(start)


def test_the_facade_pins_a_system_prompt(smollm2_path, tmp_path):
    with SyncOrchestrator({"small": str(smollm2_path)}, engine_config=config(tmp_path)) as orch:
        pinned = orch.pin_prefix(SYSTEM)
        assert pinned.source == "computed" and pinned.stored is not None
        reply = orch.generate(GenerationRequest(messages=(*PREFIX, QUESTION), max_tokens=4))
        assert reply.timings.prefill_reused_tokens == pinned.tokens
