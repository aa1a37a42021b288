"""``Router``: a backend that asks the routing policies where each request goes, then runs it there.

    router = Router([LocalBackend(small), LocalBackend(large), remote],
                    policies=[PrivacyPolicy(allow_egress=True), ConnectivityPolicy(), CascadePolicy()])
    completion = await complete(router, request)
    completion.route   # RouteDecision: backend, policy, reason, the whole trail

The backends are given in preference order (cheapest tier first). Privacy is always consulted
first; without a grant no remote backend is ever chosen, and a request whose data may not leave
the device, with only remote backends left, raises ``EgressRefusedError`` before any socket opens.
A remote that turns out to be down before its first token (``RemoteUnavailableError``, a stream
that broke, or the server's own 5xx/429 error) falls back to the next allowed backend; once a token
reached the caller the request is never re-sent. A cascade runs the small model with log-probabilities and escalates
a weak or invalid answer. ``decide`` shows the decision without running anything.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing

import anyio

from orchestrator.routing.backend_stats import BackendStats
from orchestrator.backends.base import Backend, read_completion, stream
from orchestrator.errors import (
    ConfigError,
    RemoteError,
    RemoteServerError,
    RemoteUnavailableError,
    StreamBrokenError,
)
from orchestrator.types import (
    Completion,
    GenerationRequest,
    RouteDecision,
    RouteStep,
    TokenDelta,
)
from policies.cascade import (
    CascadePolicy,
    CascadeSettings,
    CascadeVerdict,
    judge_answer,
)
from policies.connectivity import ConnectivityPolicy
from policies.privacy import PrivacyPolicy, check_labels
from policies.routing import Candidate, RouteRequest, RoutingPolicy, decide

__all__ = ["DECIDE_IN_THREAD_CHARS", "Featurize", "Router", "Validator", "backend_available", "backend_location", "tiered_router"]

log = logging.getLogger(__name__)

Validator = Callable[[Completion], str | None]
"""Says what is wrong with an answer (a short reason), or ``None`` when it is acceptable."""

Featurize = Callable[[GenerationRequest], Sequence[float]]

DECIDE_IN_THREAD_CHARS = 32_768
"""Requests with more text than this are decided in a worker thread: the privacy detectors scan
the whole text (linear time, still some milliseconds per 100 KB), and the event loop must keep
serving other requests meanwhile. Shorter ones are decided on the loop, without a thread hop."""
_DECIDE_THREADS = 2  # per router: large decisions at once; more wait their turn


def backend_location(backend: object) -> str:
    """``"remote"`` or ``"local"`` (a backend without a ``location`` attribute is local)."""
    location = getattr(backend, "location", "local")
    if location not in ("local", "remote"):
        raise ConfigError(f"backend {getattr(backend, 'name', backend)!r} has location {location!r}; expected 'local' or 'remote'")
    return location


def backend_available(backend: object) -> bool:
    """Reads an ``available`` (or ``is_available``) attribute or method; absent means available.
    A probe that raises counts as unavailable (and is logged)."""
    for attr in ("available", "is_available"):
        try:
            probe = getattr(backend, attr, None)  # may be a property that runs code
            if probe is None:
                continue
            return bool(probe() if callable(probe) else probe)
        except Exception:  # a failing probe means we cannot count on the backend
            log.warning("availability probe of %s failed; treating it as down", getattr(backend, "name", backend), exc_info=True)
            return False
    return True


def _backend_failed(exc: RemoteError) -> bool:
    """Whether a remote failure says the backend failed (so another may serve the request), not
    that the request was wrong: unreachable or down, a broken stream, the server's 5xx or 429."""
    if isinstance(exc, RemoteServerError):
        return exc.status is None or exc.status >= 500 or exc.status == 429
    return isinstance(exc, (RemoteUnavailableError, StreamBrokenError))


class Router:
    """A ``Backend`` over named backends in preference order, routed by ``policies``.

    ``policies`` must start with a ``PrivacyPolicy`` (default: privacy without egress, then
    connectivity). ``labels`` mark every request as holding those private data classes
    (``labelled`` makes a copy with more). ``featurize`` gives the learned router its features.
    ``validator`` judges answers for the cascade. ``on_decision`` sees every final decision.
    ``costs`` are per token (local backends default to 0).
    """

    location = "local"  # the router itself runs here; where requests go is decided per request

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        policies: Sequence[RoutingPolicy] | None = None,
        name: str = "router",
        stats: BackendStats | None = None,
        costs: Mapping[str, float] | None = None,
        labels: Iterable[str] = (),
        featurize: Featurize | None = None,
        validator: Validator | None = None,
        on_decision: Callable[[RouteDecision], None] | None = None,
    ) -> None:
        self.name = name
        self.backends: dict[str, Backend] = {}
        for b in backends:
            if b.name in self.backends:
                raise ConfigError(f"two routed backends are named {b.name!r}")
            backend_location(b)  # fails early on a bad location
            self.backends[b.name] = b
        if not self.backends:
            raise ConfigError("a Router needs at least one backend")
        self.policies: tuple[RoutingPolicy, ...] = tuple(policies) if policies is not None else (PrivacyPolicy(), ConnectivityPolicy())
        if not self.policies or not isinstance(self.policies[0], PrivacyPolicy):
            raise ConfigError("the first routing policy must be a PrivacyPolicy (privacy is consulted first)")
        self.stats = stats if stats is not None else BackendStats()
        self.costs = dict(costs or {})
        self.labels = check_labels(labels)
        self.featurize = featurize
        self.validator = validator
        self.on_decision = on_decision
        self._decide_limiter = anyio.CapacityLimiter(_DECIDE_THREADS)

    def labelled(self, *labels: str) -> Router:
        """The same router (same backends and stats) marking its requests with more data classes."""
        copy = Router.__new__(Router)
        copy.__dict__.update(self.__dict__)
        copy.labels = self.labels | check_labels(labels)
        return copy

    # ------------------------------------------------------------------ deciding

    def candidates(self) -> tuple[Candidate, ...]:
        """The backends as the policies see them now: location, availability, measured stats."""
        out = []
        for name, b in self.backends.items():
            location = backend_location(b)
            m = self.stats.get(name)
            cost = self.costs.get(name, 0.0 if location == "local" else None)
            out.append(Candidate(name=name, location=location, available=backend_available(b),  # type: ignore[arg-type]
                                 ttft_s=m.ttft_s, tok_s=m.tok_s, energy_j_per_token=m.energy_j_per_token, cost_per_token=cost))
        return tuple(out)

    def route_request(self, request: GenerationRequest, *, labels: Iterable[str] = (), task_type: str | None = None) -> RouteRequest:
        features = self.featurize(request) if self.featurize is not None else None
        return RouteRequest.of(request, labels=self.labels | check_labels(labels), task_type=task_type, features=features)

    def decide(self, request: GenerationRequest, *, labels: Iterable[str] = ()) -> RouteDecision:
        """The routing decision for ``request``, without running anything (no model, no socket)."""
        return decide(self.route_request(request, labels=labels), self.candidates(), self.policies)

    # ------------------------------------------------------------------ running

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        # Features may need the model (an embedding), and a long text takes the detectors a while:
        # either way the decision runs in a worker thread so that the event loop stays free.
        if self.featurize is not None:  # concurrent embeddings batch in the engine: the default pool
            decision = await anyio.to_thread.run_sync(self.decide, request)
        elif _text_chars(request) > DECIDE_IN_THREAD_CHARS:
            decision = await anyio.to_thread.run_sync(self.decide, request, limiter=self._decide_limiter)
        else:
            decision = self.decide(request)
        log.debug("route %s: %s by %s (%s)", self.name, decision.backend, decision.policy, decision.reason)
        if decision.escalate_to is not None:
            completion = await self._cascade(request, decision)
            for choice in completion.choices:
                yield TokenDelta(index=choice.index, text=choice.text)
        else:
            completion = None
            async with aclosing(self._stream([decision.backend, *decision.fallbacks], request, decision)) as stream:
                async for event in stream:
                    if isinstance(event, Completion):
                        completion = event
                    else:
                        yield event
            assert completion is not None
        self._record(completion.route or decision)
        yield completion

    def _record(self, decision: RouteDecision) -> None:
        log.info("routed to %s by %s: %s", decision.backend, decision.policy, decision.reason)
        if self.on_decision is not None:
            self.on_decision(decision)

    async def _stream(self, order: Sequence[str], request: GenerationRequest, decision: RouteDecision) -> AsyncIterator[TokenDelta | Completion]:
        """Streams from the first backend of ``order`` that is up; falls back only before any
        token was sent (a request is never re-issued after the caller saw part of it)."""
        trail = list(decision.trail)
        for i, name in enumerate(order):
            started = False
            try:
                async with aclosing(stream(self.backends[name], request)) as events:  # checked: ends with a completion
                    async for event in events:
                        if isinstance(event, Completion):
                            self.stats.observe(name, event.timings)
                            final = decision.model_copy(update={"backend": name, "trail": tuple(trail)}) if name != decision.backend else decision
                            yield event.model_copy(update={"route": final})
                            return
                        started = True
                        yield event
            except RemoteError as exc:
                if started or i + 1 == len(order) or not _backend_failed(exc):
                    raise
                nxt = order[i + 1]
                log.warning("%s unavailable (%s); falling back to %s", name, exc, nxt)
                trail.append(RouteStep(policy="router", action="fallback", backend=nxt, reason=f"{name} unavailable: {exc}"))
                decision = decision.model_copy(update={"policy": "router", "reason": f"fell back from {name}: unavailable"})
        raise ConfigError("nothing to route to: no backend in the order")

    async def _run(self, order: Sequence[str], request: GenerationRequest, decision: RouteDecision) -> Completion:
        return await read_completion(self._stream(order, request, decision), source=f"router {self.name}")

    async def _cascade(self, request: GenerationRequest, decision: RouteDecision) -> Completion:
        """Small model first, with log-probabilities; escalate a weak or invalid answer."""
        assert decision.escalate_to is not None
        # 1. The small model's answer, whole (it is judged before the caller sees it).
        try:
            small: Completion | None = await self._run([decision.backend], request.model_copy(update={"logprobs": True}), decision)
        except RemoteError as exc:  # the caller saw nothing yet: a failed small model escalates
            if not _backend_failed(exc):
                raise
            small, weakest = None, CascadeVerdict(True, f"{decision.backend} unavailable: {exc}", 0.0)
        trail = list(decision.trail)
        if small is not None:
            # 2. Judge it: validation first, then the token log-probabilities of every choice.
            problem = self.validator(small) if self.validator is not None else None
            cfg = CascadeSettings(threshold=decision.escalate_below or 0.0, min_token_prob=decision.escalate_token_below)
            verdicts = [judge_answer(c.logprobs, cfg, valid=problem is None, invalid_reason=problem or "") for c in small.choices]
            weakest = min(verdicts, key=lambda v: (not v.escalate, v.confidence))
        if small is not None and not weakest.escalate:
            trail.append(RouteStep(policy="cascade", action="keep", backend=decision.backend, reason=weakest.reason))
            kept = decision.model_copy(update={"trail": tuple(trail), "reason": f"{decision.reason}; kept: {weakest.reason}"})
            return small.model_copy(update={"route": kept})
        # 3. Escalate; the larger tiers' own fallbacks still apply, never to a forbidden backend.
        target = decision.escalate_to
        trail.append(RouteStep(policy="cascade", action="escalate", backend=target, reason=weakest.reason))
        escalated = decision.model_copy(update={"backend": target, "reason": f"escalated from {decision.backend}: {weakest.reason}",
                                                "trail": tuple(trail)})
        order = [target, *(f for f in decision.fallbacks if f not in (target, decision.backend))]
        try:
            return await self._run(order, request, escalated)
        except RemoteError as exc:
            if small is None or not _backend_failed(exc):
                raise
            # 4. Nothing larger is up: the small answer is better than none.
            trail.append(RouteStep(policy="router", action="keep", backend=decision.backend, reason=f"escalation failed: {exc}"))
            kept = decision.model_copy(update={"trail": tuple(trail), "policy": "router",
                                               "reason": f"kept {decision.backend}'s answer: the escalation target was unavailable"})
            return small.model_copy(update={"route": kept})


def _text_chars(request: GenerationRequest) -> int:
    """How much text the policies will read: the prompt or the messages, and the tools' descriptions."""
    parts = [request.prompt] if request.prompt is not None else [m.content for m in request.messages or ()]
    return sum(len(p or "") for p in parts) + sum(len(t.name) + len(t.description or "") for t in request.tools)


def tiered_router(backends: Sequence[Backend], *, name: str = "router", allow_egress: bool = False,
                  cascade: float | None = None) -> Router:
    """A ``Router`` over ``backends`` in preference order with the usual policies: privacy (no
    egress unless ``allow_egress``), connectivity, and, with ``cascade``, a confidence cascade
    that escalates answers below that threshold to the next tier."""
    policies: list[RoutingPolicy] = [PrivacyPolicy(allow_egress=allow_egress), ConnectivityPolicy()]
    if cascade is not None:
        policies.append(CascadePolicy(CascadeSettings(threshold=cascade)))
    return Router(backends, policies=policies, name=name)
