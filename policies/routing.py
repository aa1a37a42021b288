"""Routing as pure decisions: what a policy sees, what it says, and how policies compose.

A policy sees a ``RouteRequest`` (the text that would be sent, sizes, user labels, task type,
optional features) and the ``Candidate`` backends still allowed, in preference order (the
cheapest tier first: local small, local larger, remote). It returns a ``Verdict``: ``pick``
one backend, ``forbid`` some, or ``pass``. ``decide`` consults the policies in order: a
forbid removes backends for every later policy, the first pick ends the consultation, and
when nobody picks the first allowed candidate wins. Every verdict is kept in the decision's
trail (``orchestrator.types.RouteDecision``), so a trace says who decided and why.

Order matters: put privacy first, then connectivity, so that no later policy can pick a
backend that data may not reach or that is down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from orchestrator.errors import ConfigError, EgressRefusedError, RoutingError
from orchestrator.types import GenerationRequest, RouteDecision, RouteStep

__all__ = ["Candidate", "Location", "RouteRequest", "RoutingPolicy", "Verdict", "decide", "fallback_order"]

Location = Literal["local", "remote"]

# Without a tokenizer at hand, plan with about 4 characters per token (English text, BPE).
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class RouteRequest:
    """What the policies see of one request. ``text`` is everything that would leave the device
    if it went remote (prompt or message contents); it is never copied into a decision.
    ``prompt_tokens`` is an estimate unless given; ``expected_tokens`` defaults to ``max_tokens``."""

    text: str
    prompt_tokens: int
    max_tokens: int
    labels: frozenset[str] = frozenset()
    task_type: str | None = None
    features: tuple[float, ...] | None = None
    expected_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.max_tokens < 1:
            raise ConfigError("prompt_tokens must be >= 0 and max_tokens >= 1")
        if self.expected_tokens is not None and self.expected_tokens < 0:
            raise ConfigError("expected_tokens must be >= 0")

    @property
    def output_tokens(self) -> int:
        """Output tokens to plan for."""
        return self.max_tokens if self.expected_tokens is None else min(self.expected_tokens, self.max_tokens)

    @classmethod
    def of(
        cls,
        request: GenerationRequest,
        *,
        labels: Iterable[str] = (),
        task_type: str | None = None,
        features: Sequence[float] | None = None,
        expected_tokens: int | None = None,
    ) -> RouteRequest:
        """The routing view of a ``GenerationRequest`` (messages joined; tool descriptions included)."""
        parts = [request.prompt] if request.prompt is not None else [m.content for m in request.messages or ()]
        parts += [c.arguments for m in request.messages or () for c in m.tool_calls]  # what calls carried leaves too
        parts += [f"{t.name} {t.description}" for t in request.tools]
        text = "\n".join(parts)
        return cls(
            text=text,
            prompt_tokens=math.ceil(len(text) / _CHARS_PER_TOKEN),
            max_tokens=request.max_tokens,
            labels=frozenset(labels),
            task_type=task_type,
            features=tuple(float(f) for f in features) if features is not None else None,
            expected_tokens=expected_tokens,
        )


@dataclass(frozen=True)
class Candidate:
    """A backend a request may go to, as the policies see it. Measured values are ``None``
    until known: ``ttft_s`` (seconds), ``tok_s`` (decode tokens per second), energy in joules
    per token (prompt and output alike), cost per token in the user's currency."""

    name: str
    location: Location = "local"
    available: bool = True
    ttft_s: float | None = None
    tok_s: float | None = None
    energy_j_per_token: float | None = None
    cost_per_token: float | None = None

    @property
    def remote(self) -> bool:
        return self.location == "remote"


@dataclass(frozen=True)
class Verdict:
    """One policy's say. ``pick`` names ``backend`` (it may also forbid others); ``forbid`` names
    backends no later policy may choose; ``pass`` leaves the choice to later policies.
    ``refuses_egress`` marks a forbid made to keep data on the device; ``data_classes`` names
    private data found. A cascade pick sets ``escalate_to`` and its thresholds."""

    action: Literal["pick", "forbid", "pass"]
    reason: str
    backend: str | None = None
    forbidden: frozenset[str] = frozenset()
    refuses_egress: bool = False
    data_classes: frozenset[str] = frozenset()
    escalate_to: str | None = None
    escalate_below: float | None = None
    escalate_token_below: float = 0.0

    def __post_init__(self) -> None:
        if (self.action == "pick") != (self.backend is not None):
            raise ConfigError("a verdict names a backend exactly when it picks one")
        if self.action == "forbid" and not self.forbidden:
            raise ConfigError("a forbid verdict must name what it forbids")


class RoutingPolicy(Protocol):
    """A pure routing policy: no I/O, no clock, no randomness; same inputs, same verdict."""

    name: str

    def consult(self, request: RouteRequest, candidates: tuple[Candidate, ...]) -> Verdict: ...


def fallback_order(chosen: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """The other allowed backends, nearest tier first: the larger tiers after ``chosen`` in
    order, then the smaller ones before it, nearest first."""
    i = list(allowed).index(chosen)
    return tuple(allowed[i + 1 :]) + tuple(reversed(allowed[:i]))


def decide(request: RouteRequest, candidates: Sequence[Candidate], policies: Sequence[RoutingPolicy]) -> RouteDecision:
    """Consults ``policies`` in order over ``candidates`` (preference order) and returns the decision.

    Raises ``EgressRefusedError`` when a privacy forbid left nothing, ``RoutingError`` when
    other forbids did, ``ConfigError`` for duplicate names or a pick of a backend not allowed.
    """
    names = [c.name for c in candidates]
    if not names:
        raise ConfigError("routing needs at least one candidate backend")
    if len(set(names)) != len(names):
        raise ConfigError(f"candidate backend names must be unique, got {names}")
    allowed = tuple(candidates)
    trail: list[RouteStep] = []
    data_classes: set[str] = set()
    refused_egress = False
    for policy in policies:
        # 1. Ask the policy about the backends still allowed.
        verdict = policy.consult(request, allowed)
        data_classes |= verdict.data_classes
        forbidden = tuple(c.name for c in allowed if c.name in verdict.forbidden)
        trail.append(RouteStep(policy=policy.name, action=verdict.action, reason=verdict.reason, backend=verdict.backend, forbidden=forbidden))
        # 2. Apply its forbids; nothing left is a refusal (an egress refusal if privacy took part).
        if forbidden:
            refused_egress |= verdict.refuses_egress
            allowed = tuple(c for c in allowed if c.name not in verdict.forbidden)
        if not allowed:
            why = "; ".join(f"{s.policy}: {s.reason}" for s in trail if s.forbidden)
            if refused_egress:
                raise EgressRefusedError(f"the request must stay on the device and no local backend may take it ({why})",
                                         data_classes=tuple(sorted(data_classes)))
            raise RoutingError(f"no backend may take the request ({why})")
        # 3. The first pick decides.
        if verdict.action == "pick":
            allowed_names = [c.name for c in allowed]
            if verdict.backend not in allowed_names:
                raise ConfigError(f"policy {policy.name!r} picked {verdict.backend!r}, which is not among the allowed {allowed_names}")
            if verdict.escalate_to is not None and verdict.escalate_to not in allowed_names:
                raise ConfigError(f"policy {policy.name!r} escalates to {verdict.escalate_to!r}, which is not allowed")
            assert verdict.backend is not None
            return RouteDecision(
                backend=verdict.backend, policy=policy.name, reason=verdict.reason, trail=tuple(trail),
                fallbacks=fallback_order(verdict.backend, allowed_names), data_classes=tuple(sorted(data_classes)),
                escalate_to=verdict.escalate_to, escalate_below=verdict.escalate_below,
                escalate_token_below=verdict.escalate_token_below,
            )
    # 4. Nobody picked: the first allowed backend in preference order.
    chosen = allowed[0].name
    reason = "no policy picked; the first allowed backend in preference order"
    trail.append(RouteStep(policy="default", action="pick", reason=reason, backend=chosen))
    return RouteDecision(
        backend=chosen, policy="default", reason=reason, trail=tuple(trail),
        fallbacks=fallback_order(chosen, [c.name for c in allowed]), data_classes=tuple(sorted(data_classes)),
    )
