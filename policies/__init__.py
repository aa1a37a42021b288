"""Policies: pure routing, privacy, limit and approval decisions, tested with plain data.

- ``approval_key`` / ``decide_approval`` (``policies.approvals``): a tool call that needs a
  person's yes runs only when approved for exactly these arguments.
- Routing (``policies.routing``): ``RouteRequest`` and ``Candidate`` in, ``decide`` consults
  policies in order and returns a ``RouteDecision`` with the trail of every verdict. The policies:
  ``PrivacyPolicy`` (``policies.privacy``: detector and egress grants), ``ConnectivityPolicy``,
  ``BudgetPolicy`` (latency, energy, cost), ``CascadePolicy`` (``policies.cascade``: confidence
  from token log-probabilities), ``LearnedPolicy`` (``policies.learned``: logistic router).
"""

from policies.approvals import ApprovalDecision, approval_key, decide_approval
from policies.budgets import BudgetPolicy
from policies.cascade import CascadePolicy, CascadeSettings, confidence, judge_answer
from policies.connectivity import ConnectivityPolicy
from policies.learned import LearnedPolicy, LogisticRouter, calibrate_threshold
from policies.privacy import PrivacyPolicy, detect
from policies.routing import Candidate, RouteRequest, RoutingPolicy, Verdict, decide

__all__ = [
    "ApprovalDecision",
    "BudgetPolicy",
    "Candidate",
    "CascadePolicy",
    "CascadeSettings",
    "ConnectivityPolicy",
    "LearnedPolicy",
    "LogisticRouter",
    "PrivacyPolicy",
    "RouteRequest",
    "RoutingPolicy",
    "Verdict",
    "approval_key",
    "calibrate_threshold",
    "confidence",
    "decide",
    "decide_approval",
    "detect",
    "judge_answer",
]
