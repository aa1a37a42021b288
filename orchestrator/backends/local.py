"""``Backend`` over an in-process ``LocalEngine``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestrator.engine.engine import LocalEngine
from orchestrator.errors import ConfigError
from orchestrator.types import Completion, GenerationRequest, TokenDelta

__all__ = ["LocalBackend"]


class LocalBackend:
    """Streams from a local engine; does not own it (close the engine yourself)."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.name = engine.name

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        if request.tools:
            raise ConfigError(
                f"{self.name}: local models call tools through a grammar, not native tool calling; "
                "use an Agent (agents.Agent) or tools.tool_call_grammar"
            )
        handle = self.engine.submit(request)
        try:
            async for event in handle:
                yield event
        finally:
            handle.cancel()  # the caller left early or was cancelled: stop at the next token (no-op once done)
