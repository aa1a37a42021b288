"""Which weight format a model should run in on this machine: the pure decision.

The engine measures (``orchestrator.engine.variants``); this module only decides,
from plain values, so the rule is tested with plain data:

- ``candidate_formats``: which formats are worth making from a shipped file;
- ``choose_weights``: keep the candidate with the most throughput for the engine's
  expected use (``DecisionRule.rows`` rows per step: parallel sequences, verified
  drafts) that loses no more quality than the rule allows, by a clear margin over
  the shipped file; otherwise the shipped file;
- ``StepCosts``: a variant's measured step times in the shape the speculator's cost
  model wants (one-row time, and the cost of one more row).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ConfigError

__all__ = [
    "CANDIDATE_FORMATS",
    "SHIPPED",
    "DecisionRule",
    "Fidelity",
    "StepCosts",
    "VariantMeasurement",
    "Verdict",
    "WeightChoice",
    "candidate_formats",
    "choose_weights",
]

SHIPPED = "shipped"
# Formats with batched kernels on common CPUs (x86: llamafile sgemm for F16/Q8_0/Q4_0;
# ARM: Q4_0 repacked), made from the shipped file by llama.cpp's quantizer.
CANDIDATE_FORMATS = ("q8_0", "q4_0", "f16")
# Bits per weight of the float formats, to skip candidates that only add bits to a float file.
_FLOAT_BITS = {"F32": 32, "F16": 16, "BF16": 16}


class Fidelity(BaseModel):
    """Next-token agreement with the full-precision reference over a fixed text."""

    model_config = ConfigDict(frozen=True)

    top1: float = Field(ge=0.0, le=1.0)  # fraction of positions whose best token is the reference's
    mean_kl: float = Field(ge=0.0)  # mean KL(reference || this), nats
    positions: int = Field(ge=1)


class VariantMeasurement(BaseModel):
    """One weights file as measured on one machine."""

    model_config = ConfigDict(frozen=True)

    format: str  # "shipped" or a candidate format ("q8_0", ...)
    file_type: str  # as the GGUF header says ("Q4_1", "Q8_0", ...)
    size: int = Field(ge=0)
    sha256: str
    step_s: dict[int, float]  # rows per step -> median seconds of one step
    fidelity: Fidelity

    def tok_s(self, rows: int) -> float:
        """Aggregate tokens per second with ``rows`` rows per step."""
        seconds = self.step_s.get(rows)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"{self.format}: no step time measured at {rows} rows (have {sorted(self.step_s)})")
        return rows / seconds


class DecisionRule(BaseModel):
    """The bound a variant must meet to replace the shipped file.

    Quality, against the full-precision dequantization of the shipped file: mean KL
    at most ``kl_ratio`` times the shipped file's own, and top-1 agreement at most
    ``top1_points`` percentage points below it. Speed: aggregate tok/s at ``rows``
    rows per step at least ``margin`` times the shipped file's (a clear margin, so
    timing noise does not flip the choice between runs), and one-row tok/s at
    least ``min_single`` times the shipped file's (one sequence must not get much slower).
    """

    model_config = ConfigDict(frozen=True)

    rows: int = Field(8, ge=1)
    margin: float = Field(1.15, ge=1.0)
    min_single: float = Field(0.85, gt=0.0)
    kl_ratio: float = Field(1.5, ge=1.0)
    top1_points: float = Field(1.0, ge=0.0)


class Verdict(BaseModel):
    """What the rule said about one candidate, and why."""

    model_config = ConfigDict(frozen=True)

    format: str
    passed: bool
    reason: str


class WeightChoice(BaseModel):
    """The format chosen, with the measured reason and every candidate's verdict."""

    model_config = ConfigDict(frozen=True)

    format: str
    file_type: str
    reason: str
    verdicts: tuple[Verdict, ...] = ()


class StepCosts(BaseModel):
    """Measured decode-step times of one weights file: seconds by rows per step.

    ``one_row_s`` and ``extra_row_cost`` come from a least-squares line through the
    points (time = a + b * rows): a one-row step costs a + b, and one more row costs
    b / (a + b) of it, the quantity ``StepCostModel.extra_row_cost`` estimates live.
    """

    model_config = ConfigDict(frozen=True)

    step_s: dict[int, float]

    @property
    def one_row_s(self) -> float:
        a, b = self._line()
        return a + b

    @property
    def extra_row_cost(self) -> float:
        a, b = self._line()
        return b / (a + b)

    def _line(self) -> tuple[float, float]:
        points = sorted((r, s) for r, s in self.step_s.items() if r >= 1 and s > 0)
        if len(points) < 2:
            raise ConfigError(f"step costs need two or more row counts, got {sorted(self.step_s)}")
        n = len(points)
        mx = sum(r for r, _ in points) / n
        my = sum(s for _, s in points) / n
        b = sum((r - mx) * (s - my) for r, s in points) / sum((r - mx) ** 2 for r, _ in points)
        b = max(b, 0.0)  # a noisy measurement never makes rows free of cost below zero
        a = max(my - b * mx, 1e-9)
        return a, b


def candidate_formats(shipped_type: str, formats: Sequence[str] = CANDIDATE_FORMATS) -> tuple[str, ...]:
    """The formats worth making from a file of ``shipped_type``: not its own format, and no float
    format with as many bits or more than a float original (F16 from F16 or BF16 adds nothing)."""
    shipped = shipped_type.upper()
    out = []
    for fmt in formats:
        if fmt.upper() == shipped:
            continue
        if shipped in _FLOAT_BITS and _FLOAT_BITS.get(fmt.upper(), 0) >= _FLOAT_BITS[shipped]:
            continue
        out.append(fmt)
    return tuple(out)


def choose_weights(
    shipped: VariantMeasurement,
    candidates: Sequence[VariantMeasurement],
    rule: DecisionRule | None = None,
    previous: str | None = None,
) -> WeightChoice:
    """The candidate with the most throughput at ``rule.rows`` rows among those within the bound; else shipped.

    1. Quality: a candidate outside the bound is refused, whatever its speed.
    2. Speed: it must beat the shipped file by the margin at ``rule.rows`` rows, and keep one row fast enough.
    3. The fastest candidate left wins; none left, the shipped file.
    4. Hysteresis: ``previous`` (the format an earlier tune on this machine chose) stays, if it is still
       within the quality bound (and, a variant, not too slow for one row), unless the new winner beats
       it by the margin too. So a re-run's timing noise does not flip the choice back and forth.
    """
    rule = rule or DecisionRule()
    base_rows, base_one = shipped.tok_s(rule.rows), shipped.tok_s(1)
    verdicts: list[Verdict] = []
    best: VariantMeasurement | None = None
    for cand in candidates:
        failed = _quality_failure(cand, shipped, rule) or _speed_failure(cand, base_rows, base_one, rule)
        verdicts.append(Verdict(format=cand.format, passed=failed is None, reason=failed or _figures(cand, shipped, rule)))
        if failed is None and (best is None or cand.tok_s(rule.rows) > best.tok_s(rule.rows)):
            best = cand
    winner = best or shipped
    kept = _kept_previous(previous, winner, shipped, candidates, rule)
    if kept is not None:
        return WeightChoice(format=kept.format, file_type=kept.file_type, reason=(
            f"kept the earlier choice, {kept.file_type}: {winner.file_type} is not {rule.margin:g}x faster than it at "
            f"{rule.rows} rows ({winner.tok_s(rule.rows):.0f} vs {kept.tok_s(rule.rows):.0f} tok/s); "
            + (_figures(kept, shipped, rule) if kept is not shipped else _own(shipped, rule))
        ), verdicts=tuple(verdicts))
    if best is None:
        why = "no variant is clearly faster within the quality bound" if candidates else "no candidate format to try"
        return WeightChoice(format=SHIPPED, file_type=shipped.file_type, reason=f"{why}; {_own(shipped, rule)}", verdicts=tuple(verdicts))
    return WeightChoice(format=best.format, file_type=best.file_type, reason=_figures(best, shipped, rule), verdicts=tuple(verdicts))


def _kept_previous(
    previous: str | None,
    winner: VariantMeasurement,
    shipped: VariantMeasurement,
    candidates: Sequence[VariantMeasurement],
    rule: DecisionRule,
) -> VariantMeasurement | None:
    """The earlier choice's measurement when it should stay (step 4 of ``choose_weights``), else None."""
    if previous is None or previous == winner.format:
        return None
    old = shipped if previous == SHIPPED else next((c for c in candidates if c.format == previous), None)
    if old is None:
        return None
    if old is not shipped and (_quality_failure(old, shipped, rule) or old.tok_s(1) < rule.min_single * shipped.tok_s(1)):
        return None
    return old if winner.tok_s(rule.rows) < rule.margin * old.tok_s(rule.rows) else None


def _quality_failure(cand: VariantMeasurement, shipped: VariantMeasurement, rule: DecisionRule) -> str | None:
    c, s = cand.fidelity, shipped.fidelity
    if c.mean_kl > rule.kl_ratio * s.mean_kl:
        return f"mean KL {c.mean_kl:.4f} > {rule.kl_ratio:g}x the shipped file's {s.mean_kl:.4f}"
    if (s.top1 - c.top1) * 100 > rule.top1_points:
        return f"top-1 agreement {c.top1:.1%} is more than {rule.top1_points:g} point(s) below the shipped file's {s.top1:.1%}"
    return None


def _speed_failure(cand: VariantMeasurement, base_rows: float, base_one: float, rule: DecisionRule) -> str | None:
    rows, one = cand.tok_s(rule.rows) / base_rows, cand.tok_s(1) / base_one
    if rows < rule.margin:
        return f"{rule.rows} rows {rows:.2f}x the shipped file's throughput, below the {rule.margin:g}x margin"
    if one < rule.min_single:
        return f"one row {one:.2f}x the shipped file's speed, below {rule.min_single:g}x"
    return None


def _figures(cand: VariantMeasurement, shipped: VariantMeasurement, rule: DecisionRule) -> str:
    c, s = cand.fidelity, shipped.fidelity
    return (
        f"{cand.file_type}: {cand.tok_s(rule.rows):.0f} tok/s at {rule.rows} rows vs {shipped.tok_s(rule.rows):.0f} shipped "
        f"({cand.tok_s(rule.rows) / shipped.tok_s(rule.rows):.2f}x), one row {cand.tok_s(1) / shipped.tok_s(1):.2f}x; "
        f"top-1 {c.top1:.1%} vs {s.top1:.1%}, mean KL {c.mean_kl:.4f} vs {s.mean_kl:.4f}"
    )


def _own(shipped: VariantMeasurement, rule: DecisionRule) -> str:
    f = shipped.fidelity
    return (
        f"shipped {shipped.file_type}: {shipped.tok_s(rule.rows):.0f} tok/s at {rule.rows} rows, "
        f"{shipped.tok_s(1):.0f} at one; top-1 {f.top1:.1%}, mean KL {f.mean_kl:.4f}"
    )

