"""Cascade: trust the small model's answer, or escalate it to a larger one.

The score comes from the log-probabilities the small model gave its own tokens (the
raw distribution, ``Choice.logprobs``). ``confidence`` is the geometric mean of the
token probabilities, ``exp(mean(logprobs))``: 1.0 when every token was certain, near
0 when the model was guessing. It is the inverse of the answer's perplexity, so its
negative log is the mean surprisal per token, an entropy proxy normalised by length.
A single very unlikely token can also escalate (``min_token_prob``), and a failed
validation (grammar, JSON, schema, self-check) always escalates, whatever the score.

The convention everywhere in ``policies``: escalate when ``score < threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from policies.routing import Candidate, RouteRequest, Verdict

__all__ = ["CascadePolicy", "CascadeSettings", "CascadeVerdict", "LogprobStats", "confidence", "judge_answer", "logprob_stats"]

# A log-probability a little above 0 is rounding noise from the sampler; more is a bug upstream.
_LOGPROB_SLACK = 1e-4


@dataclass(frozen=True)
class LogprobStats:
    """What the token log-probabilities of one answer say. ``tokens == 0`` means no evidence."""

    tokens: int
    mean_logprob: float
    min_logprob: float
    confidence: float
    min_token_prob: float

    @property
    def mean_surprisal(self) -> float:
        """Mean ``-log p`` per token (nats): the length-normalised entropy proxy."""
        return -self.mean_logprob


def _checked(logprobs: Sequence[float]) -> list[float]:
    values = [float(v) for v in logprobs]
    for v in values:
        if math.isnan(v) or v > _LOGPROB_SLACK:
            raise ConfigError(f"a token log-probability must be <= 0 and not NaN, got {v}")
    return [min(v, 0.0) for v in values]


def logprob_stats(logprobs: Sequence[float]) -> LogprobStats:
    """Mean and minimum log-probability, and the derived probabilities, of one answer."""
    values = _checked(logprobs)
    if not values:
        return LogprobStats(tokens=0, mean_logprob=-math.inf, min_logprob=-math.inf, confidence=0.0, min_token_prob=0.0)
    mean = math.fsum(values) / len(values)
    low = min(values)
    return LogprobStats(tokens=len(values), mean_logprob=mean, min_logprob=low, confidence=math.exp(mean), min_token_prob=math.exp(low))


def confidence(logprobs: Sequence[float]) -> float:
    """Geometric mean token probability, in [0, 1]; higher is more confident.

    An empty answer gives 0.0 (no evidence: escalate). Raises ``ConfigError`` for a
    NaN or clearly positive log-probability.
    """
    return logprob_stats(logprobs).confidence


@dataclass(frozen=True)
class CascadeSettings:
    """Escalate when ``confidence < threshold`` or any token's probability ``< min_token_prob``."""

    threshold: float = 0.5
    min_token_prob: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.min_token_prob <= 1.0:
            raise ConfigError("cascade threshold and min_token_prob must lie in [0, 1]")


@dataclass(frozen=True)
class CascadeVerdict:
    escalate: bool
    reason: str
    confidence: float


def judge_answer(logprobs: Sequence[float] | None, settings: CascadeSettings, *, valid: bool = True, invalid_reason: str = "") -> CascadeVerdict:
    """Keep or escalate one small-model answer.

    ``logprobs is None`` (the backend gave none) escalates: the cascade cannot judge
    an answer it has no evidence for. ``valid=False`` escalates whatever the score.
    """
    # 1. A failed validation overrides any score.
    if not valid:
        why = f": {invalid_reason}" if invalid_reason else ""
        return CascadeVerdict(True, f"the answer failed validation{why}", 0.0)
    # 2. No log-probabilities, or no tokens: no evidence.
    if logprobs is None:
        return CascadeVerdict(True, "the backend returned no log-probabilities", 0.0)
    stats = logprob_stats(logprobs)
    if stats.tokens == 0:
        return CascadeVerdict(True, "the answer has no tokens", 0.0)
    # 3. The whole answer's confidence against the threshold.
    if stats.confidence < settings.threshold:
        return CascadeVerdict(True, f"confidence {stats.confidence:.3f} < threshold {settings.threshold:.3f}", stats.confidence)
    # 4. One very unlikely token (a guessed name or number) escalates too.
    if stats.min_token_prob < settings.min_token_prob:
        return CascadeVerdict(
            True, f"a token with probability {stats.min_token_prob:.3g} < {settings.min_token_prob:.3g}", stats.confidence
        )
    return CascadeVerdict(False, f"confidence {stats.confidence:.3f} >= threshold {settings.threshold:.3f}", stats.confidence)


@dataclass(frozen=True)
class CascadePolicy:
    """Picks the smallest allowed backend and plans an escalation to the next one: the router runs
    the small model with log-probabilities, judges the answer (``judge_answer``) and escalates."""

    settings: CascadeSettings = CascadeSettings()
    name: str = "cascade"

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        if len(candidates) < 2:
            return Verdict("pass", "one backend allowed: nothing to escalate to")
        small, large = candidates[0].name, candidates[1].name
        s = self.settings
        floor = f" or a token below {s.min_token_prob:.3g}" if s.min_token_prob else ""
        return Verdict(
            "pick", f"try {small} first; escalate to {large} below confidence {s.threshold:.3g}{floor}", backend=small,
            escalate_to=large, escalate_below=s.threshold, escalate_token_below=s.min_token_prob,
        )
