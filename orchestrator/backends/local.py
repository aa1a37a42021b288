"""``Backend`` over an in-process ``LocalEngine``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestrator.backends.cancel import CancelHandle
from orchestrator.engine.engine import LocalEngine
from orchestrator.errors import ConfigError
from orchestrator.types import Completion, GenerationRequest, TokenDelta

__all__ = ["LocalBackend"]


class LocalBackend:
    """Streams from a local engine; does not own it (close the engine yourself).

    Stops at the next token on cancel (``stops_on_cancel``): the engine ends the request with a
    ``"cancelled"`` completion holding the exact token counts, and frees its KV cells.
    """

    stops_on_cancel = True

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.name = engine.name

    async def generate(self, request: GenerationRequest, *, cancel: CancelHandle | None = None) -> AsyncIterator[TokenDelta | Completion]:
        if request.tools:
            raise ConfigError(
                f"{self.name}: local models call tools through a grammar, not native tool calling; "
                "use an Agent (agents.Agent) or tools.tool_call_grammar"
            )
        handle = self.engine.submit(request)
        unregister = cancel.on_cancel(handle.cancel) if cancel is not None else None  # RequestHandle.cancel is thread-safe
        try:
            async for event in handle:
                yield event
        finally:
            if unregister is not None:
                unregister()
            handle.cancel()  # the caller left early or was cancelled: stop at the next token (no-op once done)
