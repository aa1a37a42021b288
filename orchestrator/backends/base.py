"""The one interface the rest of the orchestrator talks to: ``Backend``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Protocol, runtime_checkable

from orchestrator.errors import EngineError
from orchestrator.types import Completion, GenerationRequest, TokenDelta

__all__ = ["Backend", "complete"]


@runtime_checkable
class Backend(Protocol):
    """Something that generates text: a local engine, a remote server, a fake.

    ``generate`` streams ``TokenDelta`` pieces and ends with exactly one
    ``Completion``. Leaving the iteration early cancels the request.
    """

    name: str

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]: ...


async def complete(backend: Backend, request: GenerationRequest, *,
                   on_delta: Callable[[TokenDelta], Awaitable[None] | None] | None = None) -> Completion:
    """Reads a backend's stream to its completion, passing each ``TokenDelta`` to ``on_delta``
    (a plain or async function) on the way. The one place that checks the stream's contract:
    a stream that ends without a ``Completion`` is an ``EngineError``. Leaving early (an
    exception, a cancel) closes the stream, which cancels the request."""
    async with aclosing(backend.generate(request)) as events:
        async for event in events:
            if isinstance(event, Completion):
                return event
            if on_delta is not None:
                waited = on_delta(event)
                if waited is not None:
                    await waited
    raise EngineError(f"backend {backend.name} ended its stream without a completion")
