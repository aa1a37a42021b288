"""Speculative decoding's decisions: what to draft, and how much.

Pure Python, no native calls: the engine feeds these with token ids and
measured step times, and tests drive them with plain data.

- ``Drafter`` is what proposes tokens: prompt lookup (``prompt_lookup.py``) or
  a draft model's slot (``draft_model.py``).
- ``StepCostModel`` learns how a decode step's time grows with its rows (a
  live measurement, for reports: the doctor, the benches).
- ``SpeculationCosts`` is what draft lengths are decided by: the costs fixed
  once per model and machine (``calibration.py``), never live timings, so the
  same request gives the same drafts, batch shapes and tokens every run.
- ``SpeculationCosts.draft_length`` (and ``choose_draft_length``, for a cost linear in the
  rows) picks the draft length that maximises expected tokens per unit of time, or 0 when
  drafting would not pay.
- ``Acceptance`` tracks a sequence's recent per-token acceptance rate, and
  ``AcceptanceByMatch`` one rate per source (this request, earlier ones) and
  length of the lookup match behind the drafts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "Acceptance",
    "AcceptanceByMatch",
    "Drafter",
    "SpeculationCosts",
    "StepCostModel",
    "accept_or_resample",
    "choose_draft_length",
    "expected_tokens",
    "history_acceptance",
    "sampling_distribution",
]


class Drafter(Protocol):
    """Proposes up to ``k`` tokens to follow ``history`` (prompt + generated so far)."""

    def propose(self, history: Sequence[int], k: int) -> list[int]: ...

    def close(self) -> None:
        """Releases what the drafter holds (a draft model's KV slot)."""


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens one verify step yields when each drafted token is accepted with probability ``alpha``.

    The accepted prefix of ``k`` drafts plus the target's own next token:
    1 + alpha + ... + alpha**k.
    """
    if k <= 0:
        return 1.0
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def choose_draft_length(alpha: float, extra_row_cost: float, k_max: int, min_gain: float = 1.05) -> int:
    """The draft length with the best expected tokens per unit time, or 0 if none gains ``min_gain``.

    ``extra_row_cost`` is what one more row adds to a step, as a fraction of a
    one-row step (measured by ``StepCostModel``): ``SpeculationCosts`` without a table.
    """
    return SpeculationCosts(extra_row_cost).draft_length(alpha, k_max, drafted_by_model=False, min_gain=min_gain)


@dataclass(frozen=True)
class SpeculationCosts:
    """What speculation costs, in one-row target steps, fixed when the engine starts.

    ``extra_row_cost``: one more row in a target step, on average up to 8 rows (for reports,
    and the cost past the table). ``step_costs``: a target step of 1, 2, ... rows, measured
    (``step_costs[0]`` is 1). A step's time is far from linear in its rows: llama.cpp's
    matrix kernels work in tiles of rows, so on smollm2-135m Q8_0 here a 2-row step costs
    1.96 one-row steps, 4 rows 2.63 and 8 rows 3.25; a single average (0.32 a row) made
    short drafts look cheap, and they lost. ``draft_cost``: one draft-model decode step
    (0 without a draft model). ``draft_prefill_cost``: one prompt token prefilled by the
    draft model. ``draft_acceptance``: how often the draft model's greedy next token is the
    target's, on the target's own greedy text (measured with the costs; a new request's draft
    lengths start from it, not from a guess). ``quantized`` rounds them to a grid of 1/40, so that calibrations a little
    apart give the same decisions (and a stored one reads back exactly).
    """

    extra_row_cost: float
    draft_cost: float = 0.0
    draft_prefill_cost: float = 0.0
    step_costs: tuple[float, ...] = ()
    draft_acceptance: float = 0.0  # the draft model's greedy agreement with the target, measured (0: unknown)

    _GRID = 40

    def quantized(self) -> SpeculationCosts:
        def q(x: float) -> float:
            return max(round(x * self._GRID), 1) / self._GRID if x > 0 else 0.0

        return SpeculationCosts(q(self.extra_row_cost), q(self.draft_cost), q(self.draft_prefill_cost),
                                tuple(q(c) for c in self.step_costs), q(self.draft_acceptance))

    def step_cost(self, rows: int) -> float:
        """A target step of ``rows`` rows, in one-row steps: from the table, past it by ``extra_row_cost``."""
        known = len(self.step_costs)
        if rows <= known:
            return self.step_costs[rows - 1]
        return (self.step_costs[-1] if known else 1.0) + self.extra_row_cost * (rows - max(known, 1))

    def verify_cost(self, k: int, *, drafted_by_model: bool) -> float:
        """One verify step with ``k`` drafts, in one-row target steps (with the draft model's steps)."""
        return self.step_cost(k + 1) + (self.draft_cost * k if drafted_by_model else 0.0)

    def gain(self, alpha: float, k: int, *, drafted_by_model: bool) -> float:
        """Expected speed over plain decoding of one verify step with ``k`` drafts at acceptance ``alpha``."""
        return expected_tokens(alpha, k) / self.verify_cost(k, drafted_by_model=drafted_by_model)

    def draft_length(self, alpha: float, k_max: int, *, drafted_by_model: bool, min_gain: float = 1.05) -> int:
        """The draft length (up to ``k_max``) with the best expected gain, or 0 if none gains ``min_gain``."""
        best_k, best_gain = 0, 1.0
        for k in range(1, k_max + 1):
            gain = self.gain(alpha, k, drafted_by_model=drafted_by_model)
            if gain > best_gain:
                best_k, best_gain = k, gain
        return best_k if best_gain >= min_gain else 0

    def probe_length(self, k_max: int = 3) -> int:
        """The draft length (up to ``k_max``) whose rows cost least each: a probe of acceptance."""
        return min(range(1, k_max + 1), key=lambda k: (self.step_cost(k + 1) / (k + 1), k))


class StepCostModel:
    """Fits step time = a + b * rows from recent steps (exponentially forgotten least squares).

    Until the steps seen vary enough in size to fit a slope, ``extra_row_cost``
    returns ``prior`` (b / (a + b) measured for smollm2-135m Q4_1 on a 2-core CPU:
    ~0.55); after that, the last good fit.
    """

    def __init__(self, prior: float = 0.55, decay: float = 0.98) -> None:
        self.prior = prior
        self.decay = decay
        self._n = self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._fit = prior  # the last good fit is kept while recent steps are all one size
        self._one_row: float | None = None

    def observe(self, rows: int, seconds: float) -> None:
        d = self.decay
        self._n = self._n * d + 1.0
        self._sx = self._sx * d + rows
        self._sy = self._sy * d + seconds
        self._sxx = self._sxx * d + rows * rows
        self._sxy = self._sxy * d + rows * seconds

    def one_row_seconds(self) -> float | None:
        """The fitted time of a one-row step, once there is a fit."""
        return self._one_row

    def extra_row_cost(self) -> float:
        """b / (a + b): the cost of one more row relative to a one-row step."""
        var = self._n * self._sxx - self._sx**2
        if self._n >= 3 and var >= 0.5 * self._n**2:  # enough steps of different sizes to fit a slope
            b = (self._n * self._sxy - self._sx * self._sy) / var
            a = (self._sy - b * self._sx) / self._n
            if b > 0 and a + b > 0:
                self._fit = b / (a + b)
                self._one_row = a + b
        return self._fit


@dataclass
class Acceptance:
    """Per-token acceptance of one sequence's drafts, starting from a weak prior.

    ``source`` names the drafts it follows: ``"draft"`` (the draft model), ``"prompt"``
    (lookup in the request's own text) or ``"history"`` (lookup in earlier requests).
    """

    drafted: float = 0.0
    accepted: float = 0.0
    prior_rate: float = 0.6
    prior_weight: float = 4.0
    memory: int = 32  # drafted tokens remembered; older ones fade out
    source: str = "draft"

    def update(self, drafted: int, accepted: int) -> None:
        """Counts a verified draft. Acceptance is a chain: the drafts after the first rejected one
        were never judged, so a draft of 16 rejected at its 3rd token is 2 accepted of 3, not of 16
        (counting them all made long drafts look bad and stopped drafting after one early miss)."""
        drafted = min(drafted, accepted + 1)
        self.drafted += drafted
        self.accepted += accepted
        if self.drafted > self.memory:
            scale = self.memory / self.drafted
            self.drafted = self.memory
            self.accepted = self.accepted * scale  # not rounded: one judged token at a time must still fade old ones

    @property
    def rate(self) -> float:
        return (self.accepted + self.prior_rate * self.prior_weight) / (self.drafted + self.prior_weight)


# Prompt-lookup matches grouped by length: 1, 2, 3-4, 5-8, 9-16, 17 or more tokens.
_MATCH_GROUP_ENDS = (1, 2, 4, 8, 16)
# Per-token acceptance of each group before a request has any of its own, measured on
# smollm2-135m over quoting, extraction and open-ended answers: a long match is usually
# a quotation under way, a one-token match a coincidence.
_MATCH_GROUP_PRIORS = (0.3, 0.5, 0.7, 0.85, 0.9, 0.9)
# The same for matches in earlier requests (``history_index.py``, 3 tokens or more): a bit
# lower, since another request's text is less often this request's next words.
_HISTORY_GROUP_PRIORS = (0.2, 0.4, 0.6, 0.8, 0.85, 0.9)


def history_acceptance() -> list[Acceptance]:
    """Fresh per-length rates of drafts from earlier requests (``AcceptanceByMatch.history_groups``)."""
    return [Acceptance(prior_rate=p, source="history") for p in _HISTORY_GROUP_PRIORS]


@dataclass
class AcceptanceByMatch:
    """Per-token acceptance of one sequence's lookup drafts, kept per source and match length.

    One rate for all drafts underestimates a quotation (its drafts are accepted
    nearly whole) and overestimates a chance match; grouping by the length of
    the match behind each draft lets a long match draft long and a short one
    not at all. Matches in the request's own text (``"prompt"``) and in earlier
    requests (``"history"``) keep separate rates; the speculator shares the
    latter among a tenant's requests (whether another request's text goes on
    as this one does is learnt over many requests, not within one).
    """

    groups: list[Acceptance] = field(
        default_factory=lambda: [Acceptance(prior_rate=p, source="prompt") for p in _MATCH_GROUP_PRIORS]
    )
    history_groups: list[Acceptance] = field(default_factory=history_acceptance)

    def group(self, match: int, source: str = "prompt") -> Acceptance:
        groups = self.history_groups if source == "history" else self.groups
        return groups[bisect_left(_MATCH_GROUP_ENDS, match)]


def sampling_distribution(
    logits: np.ndarray, *, temperature: float, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0
) -> np.ndarray:
    """The probabilities llama.cpp's chain (top-k, top-p, min-p, temperature, draw) samples from.

    Same order and rules as the engine's sampler chain: top-k keeps the k best;
    top-p keeps the smallest set of best tokens whose probability reaches p (the
    token that crosses it included); min-p keeps tokens with at least min_p times
    the best one's probability; then temperature scales the surviving logits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    keep = np.ones(logits.shape[0], dtype=bool)
    if 0 < top_k < logits.shape[0]:
        keep[:] = False
        keep[np.argpartition(-logits, top_k - 1)[:top_k]] = True
    if top_p < 1.0 or min_p > 0.0:
        probs = _softmax(np.where(keep, logits, -np.inf))
        if top_p < 1.0:
            order = np.argsort(-probs)
            cum = np.cumsum(probs[order])
            cut = int(np.searchsorted(cum, top_p)) + 1  # include the token that reaches p
            mask = np.zeros_like(keep)
            mask[order[:cut]] = True
            keep &= mask
            probs = _softmax(np.where(keep, logits, -np.inf))
        if min_p > 0.0:
            keep &= probs >= min_p * probs.max()
    return _softmax(np.where(keep, logits / temperature, -np.inf))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


def accept_or_resample(probs: np.ndarray, draft_token: int, rng: np.random.Generator) -> tuple[int, bool]:
    """Speculative sampling for a deterministic draft (Leviathan et al.; Chen et al.).

    The draft proposed ``draft_token`` with certainty (q is one-hot), so it is
    accepted with probability min(1, p/q) = p(draft); on rejection the token is
    drawn from max(0, p - q), renormalised: p without the draft token. The
    result is distributed exactly as ``probs``.
    """
    if rng.random() < probs[draft_token]:
        return draft_token, True
    residual = probs.copy()
    residual[draft_token] = 0.0
    total = residual.sum()
    if total <= 0.0:  # p was all on the draft token: it cannot be rejected
        return draft_token, True
    return int(rng.choice(residual.shape[0], p=residual / total)), False
