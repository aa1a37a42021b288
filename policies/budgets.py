"""Budgets: predicted latency, energy and cost of a request on each backend.

Predictions come from measured values on the candidates (kept up to date by the router's stats):

- latency = time to first token + output tokens / decode tokens per second;
- energy = joules per token x (prompt + output tokens);
- cost = cost per token x (prompt + output tokens).

A backend without the measurements a prediction needs is not judged on it (the reason says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.errors import ConfigError
from policies.routing import Candidate, RouteRequest, Verdict

__all__ = ["BudgetPolicy", "Metric", "predict"]

Metric = Literal["latency", "energy", "cost"]
_UNITS = {"latency": "s", "energy": "J", "cost": ""}


def predict(metric: Metric, candidate: Candidate, request: RouteRequest) -> float | None:
    """The predicted ``metric`` of ``request`` on ``candidate``, or ``None`` when unmeasured."""
    if metric == "latency":
        if candidate.ttft_s is None or not candidate.tok_s:
            return None
        return candidate.ttft_s + request.output_tokens / candidate.tok_s
    per_token = candidate.energy_j_per_token if metric == "energy" else candidate.cost_per_token
    if per_token is None:
        return None
    return per_token * (request.prompt_tokens + request.output_tokens)


@dataclass(frozen=True)
class BudgetPolicy:
    """Forbids backends predicted to exceed a budget; with ``prefer``, picks the allowed backend
    with the lowest predicted value of that metric. When every backend is over a budget, it picks
    the one closest on the first budget set and measured (latency, then energy, then cost)
    rather than refuse."""

    max_latency_s: float | None = None
    max_energy_j: float | None = None
    max_cost: float | None = None
    prefer: Metric | None = None
    name: str = "budget"

    def __post_init__(self) -> None:
        if any(v is not None and not v > 0 for v in (self.max_latency_s, self.max_energy_j, self.max_cost)):
            raise ConfigError("budgets must be > 0 when set")

    def _limits(self) -> list[tuple[Metric, float]]:
        pairs: list[tuple[Metric, float | None]] = [("latency", self.max_latency_s), ("energy", self.max_energy_j), ("cost", self.max_cost)]
        return [(m, v) for m, v in pairs if v is not None]

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        # 1. Which candidates are predicted over a budget, and by what.
        over: dict[str, str] = {}
        for c in candidates:
            for metric, limit in self._limits():
                value = predict(metric, c, request)
                if value is not None and value > limit:
                    over.setdefault(c.name, f"{c.name} {metric} {value:.3g}{_UNITS[metric]} > {limit:.3g}{_UNITS[metric]}")
        # 2. All over budget: pick the closest on the first budget instead of refusing.
        if over and len(over) == len(candidates):
            for metric, _ in self._limits():
                scored = [(v, c.name) for c in candidates if (v := predict(metric, c, request)) is not None]
                if scored:
                    best = min(scored)[1]
                    return Verdict("pick", f"no backend fits ({'; '.join(over.values())}); {best} is closest on {metric}", backend=best)
        forbidden = frozenset(over)
        left = [c for c in candidates if c.name not in forbidden]
        # 3. A preference picks the cheapest remaining backend on its metric.
        if self.prefer is not None:
            scored = [(v, c.name) for c in left if (v := predict(self.prefer, c, request)) is not None]
            if scored:
                value, best = min(scored)
                why = f"lowest predicted {self.prefer}: {best} {value:.3g}{_UNITS[self.prefer]}"
                return Verdict("pick", "; ".join([*over.values(), why]), backend=best, forbidden=forbidden)
        if forbidden:
            return Verdict("forbid", "; ".join(over.values()), forbidden=forbidden)
        unmeasured = [c.name for c in candidates if any(predict(m, c, request) is None for m, _ in self._limits())]
        note = f" (unmeasured: {', '.join(unmeasured)})" if unmeasured else ""
        return Verdict("pass", f"every candidate fits the budgets{note}" if self._limits() else "no budget set")
