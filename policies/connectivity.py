"""Connectivity: a backend that is down, or remote while the device is offline, cannot be chosen."""

from __future__ import annotations

from dataclasses import dataclass

from policies.routing import Candidate, RouteRequest, Verdict

__all__ = ["ConnectivityPolicy"]


@dataclass(frozen=True)
class ConnectivityPolicy:
    """Forbids unavailable backends (a remote whose circuit is open, an engine that is closed) and,
    when ``offline``, every remote backend. The router then falls back to what is left: local."""

    offline: bool = False
    name: str = "connectivity"

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict:
        down = frozenset(c.name for c in candidates if not c.available)
        remote = frozenset(c.name for c in candidates if c.remote) if self.offline else frozenset()
        if not down and not remote:
            return Verdict("pass", "every candidate is reachable")
        reasons = []
        if remote:
            reasons.append(f"offline: no remote ({', '.join(sorted(remote))})")
        if down - remote:
            reasons.append(f"down: {', '.join(sorted(down - remote))}")
        return Verdict("forbid", "; ".join(reasons), forbidden=down | remote)
