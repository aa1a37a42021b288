"""The thread policy (``orchestrator.engine.thread_policy``) on made-up step durations, the
config field that picks it, and the engine running under it on the real smollm2-135m."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.engine import EngineConfig
from orchestrator.engine.thread_policy import StepThreads, thread_ladder

# Seconds per row of one step, by thread count, as measured on this 2-core machine
# (smollm2-135m, Q4_1): a one-row decode step, and a 512-row prefill step per row.
IDLE = {1: {1: 0.017, 2: 0.011}, 512: {1: 0.0067, 2: 0.0035}}
# Beside one busy process: 2 threads wait for each other, 1 thread keeps its core.
BUSY = {1: {1: 0.0175, 2: 0.035}, 512: {1: 0.0068, 2: 0.0095}}


class FakeMachine:
    """Step durations from a table (its load, switchable), with a fixed +-10% ripple so that no two
    steps are alike; ``now`` is the clock, advanced by each step and by ``pause``."""

    def __init__(self, table: dict[int, dict[int, float]]) -> None:
        self.table = table
        self.n = 0
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def pause(self, seconds: float) -> None:
        self.t += seconds

    def step(self, rows: int, threads: int) -> float:
        self.n += 1
        seconds = self.table[rows][threads] * rows * (1.0 + 0.1 * ((self.n * 7) % 5 - 2) / 2)
        self.t += seconds
        return seconds


def policy_on(machine: FakeMachine, max_threads: int = 2) -> StepThreads:
    return StepThreads(max_threads, clock=machine.now)


def run(policy: StepThreads, machine: FakeMachine, rows: int, steps: int, *, steady: bool = False) -> list[int]:
    """The thread count of each of ``steps`` steps of ``rows`` rows."""
    used = []
    for _ in range(steps):
        threads = policy.threads_for(rows, steady=steady)
        policy.observe(rows, threads, machine.step(rows, threads))
        used.append(threads)
    return used


def seconds(machine_table: dict[int, dict[int, float]], rows: int, used: list[int]) -> float:
    return sum(machine_table[rows][t] * rows for t in used)


def test_ladder_halves_down_to_one():
    assert thread_ladder(1) == (1,)
    assert thread_ladder(2) == (1, 2)
    assert thread_ladder(6) == (1, 3, 6)
    assert thread_ladder(8) == (1, 2, 4, 8)


def test_fixed_policy_always_runs_the_configured_count():
    machine = FakeMachine(BUSY)
    policy = StepThreads(2, adaptive=False, clock=machine.now)
    used = run(policy, machine, 1, 200)
    assert set(used) == {2}
    assert policy.choices() == {"1": 2, "2-3": 2, "4-15": 2, "16-63": 2, "64+": 2}


def test_idle_machine_stays_on_all_threads_after_one_look_below():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    used = run(policy, machine, 1, 1000)
    assert used[0] == 2
    assert used.count(1) <= 3  # the first look below (one probe), then no more probes
    assert policy.choices()["1"] == 2


def test_steady_steps_on_an_idle_machine_never_change_their_count():
    """One-row steps over many KV cells: their logits depend on the count, so an idle run repeats bit for bit."""
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    assert set(run(policy, machine, 1, 1000, steady=True)) == {2}
    machine.pause(60.0)  # a pause makes periodic probes due: still none on steady steps
    assert set(run(policy, machine, 1, 100, steady=True)) == {2}


def test_steady_steps_still_move_when_the_load_changes():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 1, 300, steady=True)
    machine.table = BUSY
    used = run(policy, machine, 1, 300, steady=True)
    assert 1 in used[:20]
    assert policy.choices()["1"] == 1
    machine.table = IDLE
    run(policy, machine, 1, 3000, steady=True)
    assert policy.choices()["1"] == 2  # probes back up are still made: the count is off the top


def test_contention_moves_to_fewer_threads_and_probing_back_costs_little():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 1, 300)
    machine.table = BUSY
    used = run(policy, machine, 1, 600)
    assert 1 in used[:20]
    assert policy.choices()["1"] == 1
    after = used[20:]
    assert after.count(2) / len(after) < 0.05  # probes back up, spaced out
    ideal = seconds(BUSY, 1, [1] * len(after))
    assert seconds(BUSY, 1, after) < 1.05 * ideal


def test_free_cpu_brings_more_threads_back():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 1, 300)
    machine.table = BUSY
    run(policy, machine, 1, 300)
    assert policy.choices()["1"] == 1
    machine.table = IDLE
    used = run(policy, machine, 1, 300)
    back = used.index(2)
    # the next probe up is due within about 1 s (~60 steps at 17 ms)
    assert back < 80 and all(t == 2 for t in used[back + 3 :])


def test_after_a_pause_the_next_step_looks_again():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 1, 300)
    machine.table = BUSY
    run(policy, machine, 1, 300)
    machine.table = IDLE
    machine.pause(5.0)  # no requests for a while; meanwhile the other program ended
    used = run(policy, machine, 1, 10)
    assert used[0] == 2 and policy.choices()["1"] == 2


def test_long_prefill_steps_adapt_within_two_steps():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 512, 3)
    machine.table = BUSY
    used = run(policy, machine, 512, 6)
    assert used[0] == 2 and used[1] == 1  # one slow step starts a probe below, which wins
    assert used[2:] == [1, 1, 1, 1]  # and no costly probe back up right away


def test_a_move_in_one_step_size_makes_the_others_probe_the_same_way():
    machine = FakeMachine(IDLE)
    policy = policy_on(machine)
    run(policy, machine, 512, 3)
    run(policy, machine, 1, 200)
    machine.table = BUSY
    run(policy, machine, 1, 60)
    assert policy.choices()["1"] == 1 and policy.choices()["64+"] == 2
    assert policy.threads_for(512) == 1  # its next step probes 1 thread without a slow step first


def test_a_lower_count_that_is_faster_even_when_idle_is_found():
    # e.g. hyperthreads: 4 threads beat 8 on an idle machine
    machine = FakeMachine({1: {1: 0.040, 2: 0.022, 4: 0.012, 8: 0.016}})
    policy = policy_on(machine, 8)
    run(policy, machine, 1, 2000)
    assert policy.choices()["1"] == 4


def test_unknown_counts_and_bad_maximum():
    policy = StepThreads(2)
    policy.observe(1, 3, 10.0)  # not on its ladder: ignored
    assert policy.threads_for(1) == 2
    with pytest.raises(ValueError, match="at least 1"):
        StepThreads(0)


def test_config_thread_policy_field():
    assert EngineConfig().thread_policy == "adaptive"
    assert EngineConfig(thread_policy="fixed", n_threads=3).threads == 3
    with pytest.raises(ValidationError, match="thread_policy"):
        EngineConfig(thread_policy="spin")
    with pytest.raises(ValidationError, match="n_threads"):
        EngineConfig(n_threads=0)


# -- the real model ------------------------------------------------------------------
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]


@pytest.mark.model
def test_multi_row_steps_and_one_thread_give_the_same_bits_on_any_count(smollm2_path):
    """What the policy relies on: a step's logits do not depend on its thread count, except a
    one-row step over 512 or more KV cells on several threads (see thread_policy's doc)."""
    import numpy as np

    from orchestrator.engine.native import Batch, NativeContext, NativeModel

    model = NativeModel(smollm2_path)
    ctx = NativeContext(model, n_ctx=1024, n_batch=1024, n_seq_max=1, n_threads=2, type_k="f16", type_v="f16",
                        flash_attn="on")
    batch = Batch(1024)
    try:
        tokens = model.tokenize(" ".join(["the river runs to the sea"] * 100), add_special=True, parse_special=False)[:600]
        batch.add(tokens[:-2], 0, 0, False)
        ctx.decode(batch, threads=1)  # 1 thread: quick on a busy machine too
        end = len(tokens) - 2
        rows = {}
        for threads in (1, 2):
            batch.clear()
            batch.add(tokens[-2:], end, 0, True, logits_all=True)
            ctx.decode(batch, threads=threads)
            rows[threads] = ctx.logits(1, model.n_vocab)
            ctx.seq_rm(0, end, -1)
        batch.clear()
        batch.add(tokens[-2:-1], end, 0, True)
        ctx.decode(batch, threads=1)  # the last token alone, on 1 thread
        ctx.seq_rm(0, end + 1, -1)
        batch.clear()
        batch.add(tokens[-1:], end + 1, 0, True)
        ctx.decode(batch, threads=1)
        alone = ctx.logits(0, model.n_vocab)
    finally:
        batch.free()
        ctx.free()
        model.free()
    assert np.array_equal(rows[1], rows[2])
    assert np.array_equal(alone, rows[1])


@pytest.mark.model
def test_engine_under_a_switching_policy_gives_the_same_greedy_tokens(smollm2_path, monkeypatch):
    from orchestrator.engine import LocalEngine, thread_policy
    from orchestrator.engine.native import NativeContext
    from orchestrator.types import GenerationRequest

    counts: list[int | None] = []
    decode = NativeContext.decode

    def spy(self, batch, *, threads=None):
        counts.append(threads)
        decode(self, batch, threads=threads)

    def tokens(config: EngineConfig) -> list[tuple[int, ...]]:
        with LocalEngine(smollm2_path, config, name="smollm2-135m") as engine:
            return [engine.generate(GenerationRequest(prompt=p, max_tokens=24)).choices[0].token_ids for p in PROMPTS]

    settings = dict(n_ctx=512, max_sequences=2, prefix_cache_slots=0)  # under 512 KV cells: exact on any count
    fixed = tokens(EngineConfig(**settings, n_threads=2, thread_policy="fixed"))
    monkeypatch.setattr(thread_policy, "_PROBE_EVERY_S", 0.0)  # probe at every chance: the count keeps changing
    monkeypatch.setattr(thread_policy, "_PROBE_SHARE", 1e9)
    monkeypatch.setattr(NativeContext, "decode", spy)
    adaptive = tokens(EngineConfig(**settings, n_threads=2, thread_policy="adaptive"))
    assert {1, 2} <= set(counts)
    assert adaptive == fixed
