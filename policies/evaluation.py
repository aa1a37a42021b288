"""How good a router is, measured on labelled outcomes (pure numpy, no I/O).

A router gives each task a score; the convention everywhere in ``policies`` is that a
low score escalates. Given, per task, whether the small model's answer was right and
whether the larger tier's would have been:

- ``auroc``: how well the score ranks the small model's right answers above its wrong
  ones (1.0 perfect, 0.5 random, ties count one half);
- ``quality_curve``: the share of right answers when the lowest-scored fraction of tasks
  goes to the larger tier, for each escalation share;
- ``apgr``: the average share of the quality gap (small alone -> large alone) recovered,
  over evenly spaced escalation shares from 0 to 1. Random routing recovers ``s`` at
  share ``s``: 0.5 on average.

Tasks that tie on the score are escalated together by an equal fraction each, which is
the expected outcome of breaking the tie at random: a constant score is exactly random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orchestrator.errors import ConfigError

__all__ = ["DEFAULT_SHARES", "apgr", "auroc", "escalation_weights", "quality_curve"]

# 0%, 5%, ..., 100% of tasks escalated.
DEFAULT_SHARES: tuple[float, ...] = tuple(float(s) for s in np.linspace(0.0, 1.0, 21))


def _vector(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ConfigError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} holds NaN or infinite values")
    return arr


def _outcomes(values: object, name: str, n: int) -> np.ndarray:
    arr = _vector(values, name)
    if arr.size != n:
        raise ConfigError(f"{name} has {arr.size} entries, the scores {n}")
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise ConfigError(f"{name} must hold only 0/1 (or False/True) outcomes")
    return arr


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values share the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, dtype=np.float64)
    sorted_x = x[order]
    # Start of each run of equal values, and its end (exclusive).
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return ranks


def auroc(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray) -> float:
    """P(score of a random right answer > score of a random wrong one), ties counting 1/2.

    Mann-Whitney U from average ranks. Needs both outcomes present.
    """
    s = _vector(scores, "scores")
    y = _outcomes(correct, "correct", s.size)
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        raise ConfigError("AUROC needs both right and wrong answers among the outcomes")
    ranks = _average_ranks(s)
    # U counts the (right, wrong) pairs ordered correctly; ranks of the right ones minus their own pairs.
    u = ranks[y == 1.0].sum() - pos * (pos + 1) / 2.0
    return float(u / (pos * neg))


def escalation_weights(scores: Sequence[float] | np.ndarray, share: float) -> np.ndarray:
    """How much of each task goes to the larger tier when ``share`` of all tasks are escalated,
    lowest scores first; a tie group straddling the cut is escalated by an equal fraction."""
    s = _vector(scores, "scores")
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"an escalation share must lie in [0, 1], got {share}")
    left = share * s.size  # tasks' worth still to escalate
    weights = np.zeros(s.size)
    # Walk the distinct scores upwards, escalating whole tie groups until the share is spent.
    for value in np.unique(s):
        if left <= 1e-12:
            break
        group = s == value
        count = int(group.sum())
        take = min(float(count), left)
        weights[group] = take / count
        left -= take
    return weights


def quality_curve(
    scores: Sequence[float] | np.ndarray,
    small_correct: Sequence[bool] | np.ndarray,
    large_correct: Sequence[bool] | np.ndarray,
    shares: Sequence[float] = DEFAULT_SHARES,
) -> np.ndarray:
    """The expected share of right answers at each escalation share (lowest scores escalated)."""
    s = _vector(scores, "scores")
    small = _outcomes(small_correct, "small_correct", s.size)
    large = _outcomes(large_correct, "large_correct", s.size)
    out = []
    for share in shares:
        w = escalation_weights(s, share)
        out.append(float(np.mean(w * large + (1.0 - w) * small)))
    return np.asarray(out)


def apgr(
    scores: Sequence[float] | np.ndarray,
    small_correct: Sequence[bool] | np.ndarray,
    large_correct: Sequence[bool] | np.ndarray,
    shares: Sequence[float] = DEFAULT_SHARES,
) -> float:
    """Average performance gap recovered: the mean over ``shares`` of
    ``(quality(share) - quality(small alone)) / (quality(large alone) - quality(small alone))``.

    Random routing scores 0.5 in expectation (with the default evenly spaced shares). An
    oracle scores less than 1 unless the tasks that need escalating are a vanishing share:
    at share ``s`` it can only have escalated ``s`` of the tasks. Raises ``ConfigError``
    when the larger tier is not better than the small one alone (no gap to recover).
    """
    small = _vector(small_correct, "small_correct")
    large = _vector(large_correct, "large_correct")
    gap = float(large.mean() - small.mean())
    if gap <= 0.0:
        raise ConfigError(f"the larger tier is not better than the small one (gap {gap:+.3f}): APGR is undefined")
    curve = quality_curve(scores, small, large, shares)
    return float(np.mean((curve - small.mean()) / gap))
