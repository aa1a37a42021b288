"""A circuit breaker: after enough consecutive failures an endpoint is marked down for a while.

States: ``closed`` (requests flow), ``open`` (fail fast, no socket opened)
and ``half-open`` (the cooldown passed: exactly one trial request may go;
its success closes the circuit, its failure opens it again). The clock is
injected, so tests step time by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BreakerSettings", "CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half-open"]


class BreakerSettings(BaseModel):
    """``failure_threshold`` consecutive failed requests open the circuit for ``cooldown_s`` seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(5, ge=1, le=1000)
    cooldown_s: float = Field(30.0, ge=0.0, le=86_400.0)


class CircuitBreaker:
    """Tracks one endpoint's recent failures. Not thread-safe: use it from one event loop."""

    def __init__(self, settings: BreakerSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.settings.cooldown_s:
            return "half-open"
        return "open"

    @property
    def available(self) -> bool:
        """Whether a request may be sent now (closed, or half-open with no trial already out)."""
        state = self.state
        return state == "closed" or (state == "half-open" and not self._trial_out)

    @property
    def retry_in_s(self) -> float:
        """Seconds until the circuit lets a trial through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.settings.cooldown_s - (self._clock() - self._opened_at))

    def acquire(self) -> bool:
        """Asks to send a request; in half-open state this takes the single trial slot."""
        if not self.available:
            return False
        if self.state == "half-open":
            self._trial_out = True
        return True

    def record_success(self) -> None:
        """The server answered: close the circuit and forget past failures."""
        self._failures = 0
        self._opened_at = None
        self._trial_out = False

    def record_failure(self) -> None:
        """The request failed for a reason that says the endpoint is down."""
        self._failures += 1
        # A failed trial reopens at once; otherwise open when the threshold is reached.
        if self._trial_out or self._failures >= self.settings.failure_threshold:
            self._opened_at = self._clock()
        self._trial_out = False

    def release(self) -> None:
        """The request ended without a verdict (the caller left early): free the trial slot."""
        self._trial_out = False
