"""Where one agent turn may go: the privacy policy over the agent's own backends.

An agent names its backends (``model``, ``escalate_to``); any of them may be a remote server.
Before a turn's conversation goes to a remote backend, and before a step escalates, the
privacy policy is consulted over that conversation (``policies.privacy``: detected private data
and the caller's labels stay on the device unless granted), the same way the ``Router`` does:

- a turn for a remote backend whose data may not leave raises ``EgressRefusedError`` before
  any socket opens;
- an escalation gets a ``RouteDecision``: the target when it may go there, else the backend it
  escalates from, with the policy's reason in the trail.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.backends.base import Backend
from orchestrator.routing.router import backend_available, backend_location
from orchestrator.types import GenerationRequest, RouteDecision
from policies.privacy import PrivacyPolicy, check_labels
from policies.routing import Candidate, RouteRequest, decide

__all__ = ["DEFAULT_AGENT_PRIVACY", "turn_decision"]

DEFAULT_AGENT_PRIVACY = PrivacyPolicy(allow_egress=True)
"""Naming a remote backend for an agent grants egress, but never for detected or labelled private data."""


def turn_decision(request: GenerationRequest, target: tuple[str, Backend], stay: tuple[str, Backend] | None = None, *,
                  privacy: PrivacyPolicy = DEFAULT_AGENT_PRIVACY, labels: Iterable[str] = ()) -> RouteDecision:
    """Whether ``request`` may go to ``target`` (name, backend); else to ``stay``. With no
    ``stay``, a refusal raises ``EgressRefusedError``."""
    options = [target] if stay is None or stay[0] == target[0] else [target, stay]
    candidates = [Candidate(name=name, location=backend_location(b), available=backend_available(b)) for name, b in options]  # type: ignore[arg-type]
    return decide(RouteRequest.of(request, labels=check_labels(labels)), candidates, (privacy,))
