"""Approvals for tools that need a person's yes: pure decisions on plain data.

An approval is tied to the exact call: the tool's name and a hash of its canonical JSON
arguments. Approving ``send_email(to="a@x")`` does not approve ``send_email(to="b@x")``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ApprovalDecision", "approval_key", "decide_approval"]


def approval_key(tool: str, arguments: Mapping[str, Any]) -> str:
    """``tool:sha256`` of the arguments as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"{tool}:{hashlib.sha256(canonical.encode()).hexdigest()}"


@dataclass(frozen=True)
class ApprovalDecision:
    action: Literal["run", "ask", "deny"]
    reason: str
    key: str


def decide_approval(tool: str, needs_approval: bool, arguments: Mapping[str, Any], approved: frozenset[str] | set[str], *, can_ask: bool) -> ApprovalDecision:
    """Run a call that needs no approval or was approved before (same key); otherwise ask the
    approver if there is one, else deny (fail closed)."""
    key = approval_key(tool, arguments)
    if not needs_approval:
        return ApprovalDecision("run", "the tool needs no approval", key)
    if key in approved:
        return ApprovalDecision("run", "approved before for these exact arguments", key)
    if can_ask:
        return ApprovalDecision("ask", "the tool needs approval", key)
    return ApprovalDecision("deny", "the tool needs approval and no approver is set", key)
