"""``Hedged``: start on one backend, start a second one after a deadline, keep the first valid answer.

    hedged = Hedged(local_small, remote, deadline_s=2.0, validator=must_be_json)

The primary starts at once. If it has not given a valid answer after ``deadline_s`` (or fails or
answers invalidly before), the secondary starts too; the first valid completion wins and the other
request is cancelled. Answers are whole when they arrive: the winner's text is yielded as one
``TokenDelta`` per choice, then its ``Completion``, whose ``route`` records the hedge.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from orchestrator.backends.base import Backend, complete
from orchestrator.errors import ConfigError, OrchestratorError, RoutingError
from orchestrator.routing.router import Validator
from orchestrator.types import (
    Completion,
    GenerationRequest,
    RouteDecision,
    RouteStep,
    TokenDelta,
)

__all__ = ["Hedged"]

log = logging.getLogger(__name__)

_DEADLINE = "deadline"


@dataclass(frozen=True)
class _Outcome:
    role: str  # "primary" or "secondary"
    backend: str
    completion: Completion | None
    problem: str | None  # why it is not acceptable; None when it is


class Hedged:
    """A ``Backend`` racing ``secondary`` against a ``primary`` that is late. See the module doc."""

    location = "local"

    def __init__(self, primary: Backend, secondary: Backend, *, deadline_s: float, validator: Validator | None = None, name: str | None = None) -> None:
        if not deadline_s >= 0:
            raise ConfigError("Hedged deadline_s must be >= 0")
        if primary is secondary:
            raise ConfigError("Hedged needs two different backends")
        self.primary = primary
        self.secondary = secondary
        self.deadline_s = deadline_s
        self.validator = validator
        self.name = name or f"hedged({primary.name},{secondary.name})"

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        winner, steps = await self._race(request)
        assert winner.completion is not None
        completion = winner.completion
        for choice in completion.choices:
            yield TokenDelta(index=choice.index, text=choice.text)
        steps.append(RouteStep(policy="hedge", action="pick", backend=winner.backend, reason=f"first valid answer came from the {winner.role}"))
        yield completion.model_copy(update={"route": _with_steps(completion.route, winner.backend, steps)})

    async def _race(self, request: GenerationRequest) -> tuple[_Outcome, list[RouteStep]]:
        send, receive = anyio.create_memory_object_stream[_Outcome | str](4)
        steps: list[RouteStep] = []
        failures: list[str] = []
        async with send, receive, anyio.create_task_group() as tg:
            # 1. The primary starts now; a timer announces the deadline on the same stream.
            tg.start_soon(self._attempt, "primary", self.primary, request, send.clone())
            tg.start_soon(_timer, self.deadline_s, send.clone())
            running, secondary_started = 1, False
            while True:
                item = await receive.receive()
                # 2. The deadline (or an early failure) starts the secondary, once.
                if item == _DEADLINE:
                    if not secondary_started:
                        secondary_started, running = True, running + 1
                        steps.append(RouteStep(policy="hedge", action="hedge", backend=self.secondary.name,
                                               reason=f"{self.primary.name} had no valid answer after {self.deadline_s:g}s"))
                        self._start_secondary(tg, request, send)
                    continue
                assert isinstance(item, _Outcome)
                running -= 1
                # 3. The first valid answer wins; the other request is cancelled.
                if item.problem is None:
                    tg.cancel_scope.cancel()
                    return item, steps
                failures.append(f"{item.backend}: {item.problem}")
                steps.append(RouteStep(policy="hedge", action="pass", backend=item.backend, reason=item.problem))
                if not secondary_started:
                    secondary_started, running = True, running + 1
                    self._start_secondary(tg, request, send)
                elif running == 0:
                    tg.cancel_scope.cancel()  # only the timer is left
                    break
        raise RoutingError(f"no valid answer from either hedged backend ({'; '.join(failures)})")

    def _start_secondary(self, tg: TaskGroup, request: GenerationRequest, send: MemoryObjectSendStream[_Outcome | str]) -> None:
        log.info("hedge %s: starting %s", self.name, self.secondary.name)
        tg.start_soon(self._attempt, "secondary", self.secondary, request, send.clone())

    async def _attempt(self, role: str, backend: Backend, request: GenerationRequest, send: MemoryObjectSendStream[_Outcome | str]) -> None:
        async with send:
            try:
                completion = await complete(backend, request)
            except OrchestratorError as exc:
                await send.send(_Outcome(role, backend.name, None, f"{type(exc).__name__}: {exc}"))
                return
            problem = self.validator(completion) if self.validator is not None else None
            await send.send(_Outcome(role, backend.name, completion, problem))


async def _timer(delay: float, send: MemoryObjectSendStream[_Outcome | str]) -> None:
    async with send:
        await anyio.sleep(delay)
        await send.send(_DEADLINE)


def _with_steps(route: RouteDecision | None, backend: str, steps: list[RouteStep]) -> RouteDecision:
    """The winner's own routing decision (if it was routed) with the hedge's steps appended."""
    if route is None:
        last = steps[-1]
        return RouteDecision(backend=backend, policy="hedge", reason=last.reason, trail=tuple(steps))
    return route.model_copy(update={"trail": route.trail + tuple(steps)})
