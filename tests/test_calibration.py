"""Speculation's stored costs: read back exactly, untrusted when they do not fit, never stored when busy."""

from __future__ import annotations

import logging

import pytest

from orchestrator.engine import calibration
from orchestrator.engine.calibration import costs_path, load_costs, save_costs
from orchestrator.engine.speculative import SpeculationCosts
from orchestrator.models.variants import Machine

MACHINE = Machine(cpu="test cpu", threads=2, llama_cpp="0.3.36")


def test_costs_round_to_a_grid_so_close_measurements_decide_alike():
    a = SpeculationCosts(0.512, 0.241, 0.049).quantized()
    b = SpeculationCosts(0.498, 0.253, 0.051).quantized()
    assert a == b == SpeculationCosts(0.5, 0.25, 0.05)
    assert SpeculationCosts(0.001).quantized().extra_row_cost == 1 / 40  # a cost is never rounded to free
    assert SpeculationCosts(0.0).quantized().extra_row_cost == 0.0


def test_gain_counts_draft_steps_only_for_model_drafts():
    costs = SpeculationCosts(0.1, 0.4)
    assert costs.gain(1.0, 2, drafted_by_model=False) == pytest.approx(3 / 1.2)
    assert costs.gain(1.0, 2, drafted_by_model=True) == pytest.approx(3 / 2.0)


# Step costs by rows as timed for smollm2-135m Q8_0 on this machine: the kernels work in tiles
# of 4 rows, so 2 or 3 rows cost almost as much as 4, and 8 little more than 5.
TILED = SpeculationCosts(0.325, step_costs=(1.0, 1.95, 2.575, 2.625, 3.175, 3.2, 3.8, 3.25, 3.8))


def test_the_step_cost_table_decides_and_extends_linearly():
    assert TILED.step_cost(1) == 1.0 and TILED.step_cost(4) == 2.625
    assert TILED.step_cost(11) == pytest.approx(3.8 + 2 * 0.325)  # past the table: the average row cost
    assert SpeculationCosts(0.5).step_cost(3) == 2.0  # no table: linear
    assert TILED.verify_cost(3, drafted_by_model=False) == 2.625
    assert SpeculationCosts(0.5, 0.25).verify_cost(2, drafted_by_model=True) == pytest.approx(2.0 + 0.5)


def test_tiled_costs_never_draft_one_or_two_tokens():
    """A linear cost (0.325 a row) drafts one token at 60% acceptance; the table shows that a
    2-row step costs 1.95 steps for 1.6 tokens, and drafts only where a whole tile pays."""
    linear = SpeculationCosts(0.325)
    assert linear.draft_length(0.6, 16, drafted_by_model=False) > 0
    assert TILED.draft_length(0.6, 16, drafted_by_model=False) == 0
    assert TILED.draft_length(0.9, 16, drafted_by_model=False) in (3, 7)  # 4 or 8 rows
    for alpha in (0.5, 0.7, 0.8, 0.9, 0.99):
        assert TILED.draft_length(alpha, 16, drafted_by_model=False) not in (1, 2)
    assert TILED.probe_length() == 3  # 4 rows: the cheapest rows each
    assert SpeculationCosts(0.2).probe_length() == 3 and SpeculationCosts(0.2).probe_length(2) == 2


def test_a_draft_request_starts_from_the_measured_acceptance_of_the_draft_model_and_auto_from_a_guess():
    from orchestrator.engine.speculator import _DRAFT_PRIOR_RATE, _starting_acceptance

    def _draft_prior(costs, auto=False):
        return _starting_acceptance(costs, auto=auto).prior_rate

    measured = SpeculationCosts(0.15, 0.425, 0.15, (1.0, 1.35, 1.625, 1.65, 1.825), draft_acceptance=0.975)
    assert _draft_prior(measured) == 0.975 and _draft_prior(SpeculationCosts(0.15, 0.425)) == _DRAFT_PRIOR_RATE
    assert _draft_prior(measured, auto=True) == _DRAFT_PRIOR_RATE  # auto: earned by probes on the request's own text
    # the F32/Q4_1 pair's costs: at the old guess (0.8) no draft length paid, so requests began without
    # drafting and rarely probed; at the measured acceptance they draft long from the first step
    assert measured.draft_length(_DRAFT_PRIOR_RATE, 16, drafted_by_model=True) == 0
    assert measured.draft_length(_draft_prior(measured), 16, drafted_by_model=True) >= 5


def test_a_measured_agreement_outweighs_one_early_miss():
    """The F32/Q4_1 pair's costs, where drafting pays only above ~96% acceptance: a request starting
    from the measured 99% keeps drafting after a draft rejected at its 10th token; a weak prior of
    the same rate would have stopped for good."""
    from orchestrator.engine.speculative import Acceptance
    from orchestrator.engine.speculator import _starting_acceptance

    pair = SpeculationCosts(0.25, 0.575, 0.225, (1.0, 1.7, 2.05, 2.1, 2.4, 2.475, 2.725, 2.8, 2.85), draft_acceptance=0.99)
    start = _starting_acceptance(pair, auto=False)
    weak = Acceptance(prior_rate=0.99)
    for acceptance in (start, weak):
        acceptance.update(16, 9)
    assert pair.draft_length(start.rate, 16, drafted_by_model=True) > 0
    assert pair.draft_length(weak.rate, 16, drafted_by_model=True) == 0
    assert _starting_acceptance(pair, auto=True).prior_rate == 0.8  # auto: a guess, weakly held


def test_stored_costs_read_back_for_the_same_files_and_machine_only(tmp_path):
    costs = SpeculationCosts(0.5, 0.25, 0.05, (1.0, 1.5, 2.0), draft_acceptance=0.875)
    save_costs("target:1:2", "draft:3:4", MACHINE, costs, tmp_path)
    assert load_costs("target:1:2", "draft:3:4", MACHINE, tmp_path) == costs
    assert load_costs("target:1:3", "draft:3:4", MACHINE, tmp_path) is None  # the target file changed
    assert load_costs("target:1:2", "", MACHINE, tmp_path) is None  # no draft model
    other = MACHINE.model_copy(update={"threads": 1})
    assert load_costs("target:1:2", "draft:3:4", other, tmp_path) is None


def test_the_attention_a_target_runs_with_keys_its_costs(tmp_path):
    """Flash attention or not, and the KV cache's types, price a step's rows differently: each keeps its own record."""
    from orchestrator.engine import EngineConfig
    from orchestrator.engine.calibration import target_identity

    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    keys = {target_identity(weights, EngineConfig(**kw)) for kw in ({}, {"flash_attn": "off"}, {"type_k": "q8_0", "type_v": "q8_0"})}
    assert len(keys) == 3
    assert target_identity(weights, EngineConfig(flash_attn="on")) == target_identity(weights, EngineConfig())  # "auto" runs it on
    costs = SpeculationCosts(0.5, 0.25, 0.05, (1.0, 1.5, 2.0))
    with_flash, without = target_identity(weights, EngineConfig()), target_identity(weights, EngineConfig(flash_attn="off"))
    save_costs(with_flash, "", MACHINE, costs, tmp_path)
    assert load_costs(with_flash, "", MACHINE, tmp_path) == costs and load_costs(without, "", MACHINE, tmp_path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"target": "target:1:2"}',
        b"{" + b" " * 5000 + b"}",
        b'{"target": "target:1:2", "draft": "", "machine": {"cpu": "test cpu", "threads": 2, "llama_cpp": "0.3.36"},'
        b' "extra_row_cost": -1, "draft_cost": 0, "draft_prefill_cost": 0}',
        b'{"target": "target:1:2", "draft": "", "machine": {"cpu": "test cpu", "threads": 2, "llama_cpp": "0.3.36"},'
        b' "extra_row_cost": 0.5, "draft_cost": 0, "draft_prefill_cost": 0, "__class__": "os.system"}',
        b'{"target": "target:1:2", "draft": "", "machine": {"cpu": "test cpu", "threads": 2, "llama_cpp": "0.3.36"},'
        b' "extra_row_cost": 0.5, "draft_cost": 0, "draft_prefill_cost": 0, "step_costs": [1.0, -3.0]}',
    ],
)
def test_a_corrupt_or_hostile_record_is_ignored_and_logged(tmp_path, caplog, content):
    path = costs_path("target:1:2", "", MACHINE, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="orchestrator.engine.calibration"):
        assert load_costs("target:1:2", "", MACHINE, tmp_path) is None
    assert "ignoring the stored speculation costs" in caplog.text


def test_a_record_copied_from_other_files_is_not_trusted(tmp_path, caplog):
    save_costs("target:1:2", "", MACHINE, SpeculationCosts(0.5), tmp_path)
    theirs = costs_path("target:1:2", "", MACHINE, tmp_path)
    mine = costs_path("other:5:6", "", MACHINE, tmp_path)
    mine.write_bytes(theirs.read_bytes())
    with caplog.at_level(logging.WARNING, logger="orchestrator.engine.calibration"):
        assert load_costs("other:5:6", "", MACHINE, tmp_path) is None
    assert "measured for other files" in caplog.text


def test_a_folder_that_cannot_be_written_costs_only_a_log_line(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="orchestrator.engine.calibration"):
        save_costs("target:1:2", "", MACHINE, SpeculationCosts(0.5), blocker)
    assert "could not store" in caplog.text


def test_machine_busy_reads_the_load_per_cpu(monkeypatch):
    monkeypatch.setattr(calibration.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(calibration.os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert calibration.machine_busy()
    monkeypatch.setattr(calibration.os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert not calibration.machine_busy()


def _timer(seconds_by_rows, slow_calls=()):
    """A fake step timer: fixed seconds per size, the listed calls (0-based) three times slower."""
    calls = []

    def time_step(rows):
        calls.append(rows)
        return seconds_by_rows[rows] * (3.0 if len(calls) - 1 in slow_calls else 1.0)

    return time_step, calls


TARGET_S = {1: 0.010, 2: 0.018, 4: 0.022, 8: 0.030}
DRAFT_S = {1: 0.005, 32: 0.032}


def test_measured_costs_are_ratios_to_the_one_row_step_with_the_table_interpolated():
    target, _ = _timer(TARGET_S)
    draft, _ = _timer(DRAFT_S)
    costs, steady = calibration.measure_costs(target, draft, rows=(1, 2, 4, 8), max_rows=10)
    assert steady
    assert costs.step_costs[:8] == (1.0, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0)  # 3 rows between 2 and 4, ...
    assert costs.step_costs[8:] == (3.0, 3.0)  # past the last timed size: held
    assert (costs.draft_cost, costs.draft_prefill_cost) == (0.5, 0.1)
    assert costs.extra_row_cost == pytest.approx(round(2.0 / 7 * 40) / 40)  # from the 1-row and 8-row steps
    given, _ = calibration.measure_costs(target, None, rows=(1, 2, 4, 8), max_rows=8, extra_row_cost=0.3)
    assert given.extra_row_cost == 0.3 and given.draft_cost == 0.0


def test_a_moment_of_contention_moves_one_round_not_the_costs():
    """A one-row step three times slower (another program took the CPU) made every ratio to it a
    third: the least of the samples kept it; the median over rounds does not."""
    calm, _ = calibration.measure_costs(_timer(TARGET_S)[0], _timer(DRAFT_S)[0], rows=(1, 2, 4, 8), max_rows=8)
    # each round times 1, 2, 4, 8 then 1 again: call 5 is the second round's first one-row step
    target, calls = _timer(TARGET_S, slow_calls={5})
    spiked, steady = calibration.measure_costs(target, _timer(DRAFT_S)[0], rows=(1, 2, 4, 8), max_rows=8)
    assert calls[:6] == [1, 2, 4, 8, 1, 1] and len(calls) == 5 * 5
    assert spiked == calm
    assert not steady  # but the rounds disagreed: used, not stored


def test_auto_stops_speculating_once_it_is_three_percent_of_the_request_behind_plain():
    """Counted by the fixed costs: 3 drafts at 0.5 a row, one kept, is 1.5 steps lost per verify."""
    from types import SimpleNamespace

    from orchestrator.engine.speculative import Acceptance
    from orchestrator.engine.speculator import Speculator

    spec = Speculator(
        ctx=None, model=None, ledger=None, batch=None, scratch_slot=0, max_positions=100,
        draft_length=None, draft_model=None, draft_error=None,
    )
    spec._fixed = SpeculationCosts(0.5)
    closed = []
    lookup = SimpleNamespace(close=lambda: closed.append("lookup"))
    seq = SimpleNamespace(
        job=SimpleNamespace(spec_note=None, max_tokens=64), drafter=SimpleNamespace(close=lambda: closed.append("draft model")),
        lookup=lookup, acceptance=Acceptance(),
        draft_group=None, spec_balance=0.0, target_steps=1,
    )
    spec._stop_if_losing(seq, drafted=3, kept=2)  # 2 tokens for 2.5 steps: -0.5
    assert seq.drafter is not None and seq.spec_balance == pytest.approx(-0.5)
    spec._stop_if_losing(seq, drafted=3, kept=4)  # a whole draft accepted: +1.5
    assert seq.spec_balance == pytest.approx(1.0)
    for _ in range(2):
        spec._stop_if_losing(seq, drafted=3, kept=1)  # -1.5 each: down to -2.0, not yet below
    assert seq.drafter is not None
    spec._stop_if_losing(seq, drafted=1, kept=1)  # -0.5 more: off for the rest of the request
    # the draft model's slot is given back; the lookup stays to add the text to its tenant's history
    assert seq.drafter is None and seq.lookup is lookup and closed == ["draft model"]
    assert "speculation off" in seq.job.spec_note
    # a long request may fall further behind before it stops (3% of its tokens): a bad start
    # does not end the speculation of a 256-token agent turn
    seq.job, seq.drafter, seq.spec_balance = SimpleNamespace(spec_note=None, max_tokens=256), lookup, 0.0
    for _ in range(5):
        spec._stop_if_losing(seq, drafted=3, kept=1)  # -7.5
    assert seq.drafter is lookup
    spec._stop_if_losing(seq, drafted=1, kept=1)  # -8.0, past 7.68
    assert seq.drafter is None


def _idle_probes(costs: SpeculationCosts, *, by_model: bool, steps: int = 400) -> list[int]:
    """The steps (of ``steps`` with acceptance 0) at which a sequence probes with a short draft."""
    from types import SimpleNamespace

    from orchestrator.engine.speculative import Acceptance
    from orchestrator.engine.speculator import Speculator

    spec = Speculator(
        ctx=None, model=None, ledger=None, batch=None, scratch_slot=0, max_positions=1000,
        draft_length=None, draft_model=None, draft_error=None,
    )
    spec.use_costs(costs)
    seq = SimpleNamespace(idle_draft_steps=0)
    never = Acceptance(prior_rate=0.0, prior_weight=1.0)
    return [step for step in range(steps) if spec._draft_length_for(seq, never, 16, by_model=by_model) > 0]


def test_an_idle_draft_model_probes_only_where_reading_the_text_it_missed_is_cheap():
    """Lookup probes now and then: its drafts are free. A draft model must first read every token it
    missed while idle; at 0.225 of a target step each (the F32/Q4_1 pair) a probe after n idle
    steps costs 0.225 n, more than the 5% share those steps allow, so it stays idle: its probes
    through a long story had each re-read 50-150 tokens (draft mode 0.69x of plain)."""
    pair = SpeculationCosts(0.275, 0.575, 0.225, (1.0, 1.75, 2.1, 2.15))
    assert _idle_probes(pair, by_model=False)  # lookup: probes
    assert _idle_probes(pair, by_model=True) == []
    tiny_draft = SpeculationCosts(0.275, 0.05, 0.01, (1.0, 1.75, 2.1, 2.15))  # a draft 1/40 of the target
    lookup_probes, model_probes = _idle_probes(tiny_draft, by_model=False), _idle_probes(tiny_draft, by_model=True)
    assert model_probes and len(model_probes) < len(lookup_probes)  # probes, further apart
