"""Measured speed and energy of each backend, kept up to date from its completions.

An exponentially weighted moving average per backend of time to first token, decode tokens
per second and joules per token (prompt and output). Routing budgets read the current values;
the CLI seeds them from a stored JSON file or from priors, so a decision needs no model load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.types import Timings

__all__ = ["BackendStats", "Measured"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """Current estimates for one backend; ``None`` until a completion (or a prior) says."""

    ttft_s: float | None = None
    tok_s: float | None = None
    energy_j_per_token: float | None = None
    samples: int = 0


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else (1.0 - alpha) * old + alpha * new


class BackendStats:
    """EWMA of each backend's measured timings; ``alpha`` weighs the newest observation."""

    def __init__(self, *, alpha: float = 0.2, priors: Mapping[str, Measured] | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ConfigError("BackendStats alpha must lie in (0, 1]")
        self.alpha = alpha
        self._by_name: dict[str, Measured] = dict(priors or {})

    def get(self, name: str) -> Measured:
        return self._by_name.get(name, Measured())

    def set(self, name: str, measured: Measured) -> None:
        """Replaces what is known about ``name`` (priors, or values read from elsewhere)."""
        self._by_name[name] = measured

    def observe(self, name: str, timings: Timings) -> Measured:
        """Folds one completion's timings into ``name``'s estimates; zero fields are not measured."""
        m = self.get(name)
        ttft, tok_s, energy = m.ttft_s, m.tok_s, m.energy_j_per_token
        # 1. Time to first token, when the backend measured one.
        if timings.ttft_s > 0:
            ttft = _ewma(ttft, timings.ttft_s, self.alpha)
        # 2. Decode speed: the reported rate, else tokens over the time after the first token.
        rate = timings.decode_tok_s
        if rate <= 0 and timings.decode_tokens > 1 and timings.total_s > timings.ttft_s:
            rate = (timings.decode_tokens - 1) / (timings.total_s - timings.ttft_s)
        if rate > 0:
            tok_s = _ewma(tok_s, rate, self.alpha)
        # 3. Energy per token, prompt and output together.
        tokens = timings.prefill_tokens + timings.decode_tokens
        if timings.energy_j > 0 and tokens > 0:
            energy = _ewma(energy, timings.energy_j / tokens, self.alpha)
        updated = replace(m, ttft_s=ttft, tok_s=tok_s, energy_j_per_token=energy, samples=m.samples + 1)
        self._by_name[name] = updated
        return updated

    def to_json(self) -> str:
        return json.dumps({"alpha": self.alpha, "backends": {k: asdict(v) for k, v in sorted(self._by_name.items())}})

    @classmethod
    def from_json(cls, text: str) -> BackendStats:
        try:
            data = json.loads(text)
            priors = {str(k): Measured(**v) for k, v in data["backends"].items()}
            return cls(alpha=float(data.get("alpha", 0.2)), priors=priors)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"unreadable backend stats: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> BackendStats:
        """Reads stats saved with ``save``; a missing file gives empty stats."""
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            log.debug("no backend stats at %s", path)
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read backend stats {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
