"""The one interface the rest of the orchestrator talks to: ``Backend``, and the helpers that read
it: ``stream`` (its events, checked, optionally cancellable), ``complete`` (to its completion)
and ``read_completion`` (any such stream to its completion)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Protocol, runtime_checkable

import anyio

from orchestrator.backends.cancel import CancelHandle, cancelled_completion
from orchestrator.errors import EngineError
from orchestrator.types import Completion, GenerationRequest, TokenDelta

__all__ = ["Backend", "Event", "OnDelta", "complete", "read_completion", "stream"]

Event = TokenDelta | Completion
OnDelta = Callable[[TokenDelta], Awaitable[None] | None]


@runtime_checkable
class Backend(Protocol):
    """Something that generates text: a local engine, a remote server, a fake.

    ``generate`` streams ``TokenDelta`` pieces and ends with exactly one ``Completion``.

    Cancelling is part of the contract, at two levels:

    - Every backend: closing the stream (leaving the iteration early, an error, a cancel scope)
      cancels the request and frees what it holds.
    - A backend that can stop at its next token and say exactly what it generated sets the class
      attribute ``stops_on_cancel = True`` and takes ``generate(request, cancel=handle)``. Once the
      ``CancelHandle`` is cancelled (from any thread; before the request started, too) it emits no
      more pieces and ends its stream normally, with a ``Completion`` whose unfinished choices have
      ``finish_reason="cancelled"`` and exact token counts (choices that had already finished
      keep theirs). ``LocalBackend`` and ``ScriptedBackend`` do.

    Callers use ``stream(backend, request, cancel=handle)``, which gives every backend the second
    behaviour: for one without ``stops_on_cancel`` it closes the stream at the cancel and makes the
    ``"cancelled"`` completion from the pieces that had arrived (``tokens`` counts those pieces).
    """

    name: str

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]: ...


async def stream(backend: Backend, request: GenerationRequest, *, cancel: CancelHandle | None = None) -> AsyncIterator[Event]:
    """A backend's stream, checked: its ``TokenDelta`` pieces, then its one ``Completion``, then
    the end. A stream that ends without a completion is an ``EngineError``. With ``cancel``,
    cancelling it (from any thread) ends the stream at the next token with a ``"cancelled"``
    completion, whatever the backend (see ``Backend``). Closing this stream closes the backend's."""
    if cancel is None:
        events = backend.generate(request)
    elif cancel.cancelled:  # cancelled before it started: nothing is sent to the model
        yield cancelled_completion(backend.name, request.n, {})
        return
    elif getattr(backend, "stops_on_cancel", False) is True:
        events = backend.generate(request, cancel=cancel)  # type: ignore[call-arg]
    else:
        events = _closed_on_cancel(backend, request, cancel)
    async with aclosing(events):
        async for event in events:
            yield event
            if isinstance(event, Completion):
                return
    raise EngineError(f"backend {backend.name} ended its stream without a completion")


async def complete(backend: Backend, request: GenerationRequest, *, on_delta: OnDelta | None = None,
                   cancel: CancelHandle | None = None) -> Completion:
    """Reads a backend's stream to its completion, passing each ``TokenDelta`` to ``on_delta``
    (a plain or async function) on the way. Leaving early (an exception, a cancel scope) closes
    the stream, which cancels the request; ``cancel`` works as in ``stream``."""
    return await read_completion(stream(backend, request, cancel=cancel), source=f"backend {backend.name}", on_delta=on_delta)


async def read_completion(events: AsyncIterator[Event], *, source: str = "the stream", on_delta: OnDelta | None = None) -> Completion:
    """Reads a stream of events (a backend's, the facade's, a router's) to its ``Completion``,
    passing each ``TokenDelta`` to ``on_delta`` on the way, and closes it. A stream that ends
    without a completion is an ``EngineError`` naming ``source``."""
    async with aclosing(events):  # type: ignore[type-var]  # async generators have aclose
        async for event in events:
            if isinstance(event, Completion):
                return event
            if on_delta is not None:
                waited = on_delta(event)
                if waited is not None:
                    await waited
    raise EngineError(f"{source} ended its stream without a completion")


async def _closed_on_cancel(backend: Backend, request: GenerationRequest, cancel: CancelHandle) -> AsyncIterator[Event]:
    """The generic cancel for any backend: the stream is closed at the cancel and a ``"cancelled"``
    completion holds the text so far (``tokens`` counts the streamed pieces)."""
    pieces: dict[int, list[str]] = {}
    async with aclosing(backend.generate(request)) as events:
        while True:
            # One cancel scope per wait, so the consumer's code between events is never in it.
            with anyio.CancelScope() as scope, cancel.cancels(scope):
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    return  # no completion: ``stream`` says so
            if scope.cancelled_caught or (cancel.cancelled and isinstance(event, TokenDelta)):
                yield cancelled_completion(backend.name, request.n, pieces)
                return
            if isinstance(event, TokenDelta):
                pieces.setdefault(event.index, []).append(event.text)
            yield event
            if isinstance(event, Completion):
                return
