"""``Backend`` over an in-process ``LocalEngine``.

A request's output needs are enforced with a grammar (``tools.output_spec``): a response format
alone becomes the grammar of its schema; tools become the grammar of the calls-or-answer reply,
which is read back into ``Choice.tool_calls`` and the answer text (so such a reply is not
streamed token by token: its answer comes as one delta at the end). A conversation holding tool
calls and results is written as the model reads them. Raw ``grammar`` requests pass as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio

from orchestrator.backends.cancel import CancelHandle
from orchestrator.engine.engine import LocalEngine
from orchestrator.engine.pinning import PinnedPrefix
from orchestrator.types import ChatMessage, Completion, GenerationRequest, TokenDelta
from tools.output_spec import decision_grammar, format_grammar, read_choice, text_messages

__all__ = ["LocalBackend", "engine_request"]


def engine_request(request: GenerationRequest) -> GenerationRequest:
    """``request`` as the engine takes it: its tools or response format compiled into a grammar
    (``ToolDefinitionError``, a ``ConfigError``, for a schema no grammar can enforce), its
    conversation written as text."""
    update: dict = {}
    if request.messages is not None and any(m.tool_calls or m.tool_call_id is not None for m in request.messages):
        update["messages"] = text_messages(request.messages)
    if request.tools:
        update.update(grammar=decision_grammar(request), tools=(), tool_choice="auto", response_format=None)
    elif request.response_format is not None:
        update.update(grammar=format_grammar(request.response_format), response_format=None)
    return request.model_copy(update=update) if update else request


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
        handle = self.engine.submit(engine_request(request))
        unregister = cancel.on_cancel(handle.cancel) if cancel is not None else None  # RequestHandle.cancel is thread-safe
        try:
            async for event in handle:
                if not request.tools:
                    yield event
                elif isinstance(event, Completion):
                    # The reply was JSON in the calls-or-answer format: its calls and answer, read back.
                    choices = tuple(read_choice(c, request) for c in event.choices)
                    for c in choices:
                        if c.text:
                            yield TokenDelta(index=c.index, text=c.text)
                    yield event.model_copy(update={"choices": choices})
        finally:
            if unregister is not None:
                unregister()
            handle.cancel()  # the caller left early or was cancelled: stop at the next token (no-op once done)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` (see ``LocalEngine.embed``), computed in a worker thread."""
        vectors = await anyio.to_thread.run_sync(self.engine.embed, texts)
        return [row.tolist() for row in vectors]

    async def pin_prefix(self, messages: Sequence[ChatMessage]) -> PinnedPrefix:
        """Pins the start that conversations beginning with ``messages`` share: kept in the KV
        cache and stored for later processes (``LocalEngine.pin_prefix``); in a worker thread."""
        return await anyio.to_thread.run_sync(self.engine.pin_prefix, tuple(messages))

    def count_tokens(self, text: str) -> int:
        return len(self.engine.tokenize(text))
