"""What ``AgentResult.decisions`` reports for each step: who decided, how sure, and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["StepDecision"]


@dataclass(frozen=True)
class StepDecision:
    """One step's decision.

    ``backend`` decided it (the local model, or the tier it was escalated to); ``confidence`` is
    the calibrated probability that the local decision was right (None for a turn the model
    wrote without a scored decision); ``kind`` is what the step did. ``escalated`` says the step
    went to the next tier because ``confidence`` was below the agent's ``escalate_below``;
    ``unsure`` says it was below but stayed local (the routing policies kept the conversation on
    the device, or no tier was left): the result holds the best local answer, and says so here.
    """

    step: int
    backend: str
    confidence: float | None
    kind: Literal["calls", "answer"]
    escalated: bool = False
    unsure: bool = False
    reason: str = ""
