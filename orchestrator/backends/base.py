"""The one interface the rest of the orchestrator talks to: ``Backend``."""

from __future__ import annotations

from collections.abc import AsyncIterator
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


async def complete(backend: Backend, request: GenerationRequest) -> Completion:
    """Runs a request to the end and returns its completion."""
    async for event in backend.generate(request):
        if isinstance(event, Completion):
            return event
    raise EngineError(f"backend {backend.name} ended its stream without a completion")
