"""Policies: pure routing, privacy, limit and approval decisions, tested with plain data.

- ``approval_key`` / ``decide_approval`` (``policies.approvals``): a tool call that needs a
  person's yes runs only when approved for exactly these arguments.

Routing policies arrive with the routing work.
"""

from policies.approvals import ApprovalDecision, approval_key, decide_approval

__all__ = ["ApprovalDecision", "approval_key", "decide_approval"]
