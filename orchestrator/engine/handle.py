"""The caller's side of one request: stream its events, wait for it, cancel it.

The engine's worker thread puts events into a thread-safe queue; callers read
it from plain threads (``iter``, ``result``) or from async code (``async for``,
``await handle.completion()``), which waits in a worker thread so the event
loop never blocks. Cancelling, or leaving an ``async for`` early, stops the
request's sequences at their next token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import anyio

from orchestrator.errors import EngineError
from orchestrator.types import Completion, TokenDelta

__all__ = ["Event", "RequestHandle"]

Event = TokenDelta | Completion


class RequestHandle:
    """One submitted request. Iterate it once: sync or async, not both."""

    def __init__(self, request_id: int, wake: Callable[[], None]) -> None:
        self.id = request_id
        self._events: queue.SimpleQueue[Event | BaseException] = queue.SimpleQueue()
        self._wake = wake
        self._cancelled = threading.Event()
        self._completion: Completion | None = None

    # -- engine side -----------------------------------------------------
    def put(self, event: Event | BaseException) -> None:
        self._events.put(event)

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled.is_set()

    # -- caller side -----------------------------------------------------
    def cancel(self) -> None:
        """Stops the request at its next token and frees its KV cells. Idempotent."""
        if not self._cancelled.is_set():
            self._cancelled.set()
            self._wake()

    def _take(self, item: Event | BaseException) -> Event:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Completion):
            self._completion = item
        return item

    def __iter__(self) -> Iterator[Event]:
        while self._completion is None:
            yield self._take(self._events.get())

    def result(self, timeout: float | None = None) -> Completion:
        """Blocks until the request ends; returns its completion."""
        while self._completion is None:
            try:
                self._take(self._events.get(timeout=timeout))
            except queue.Empty:
                raise EngineError(f"request {self.id} did not finish within {timeout} s") from None
        return self._completion

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while self._completion is None:
                item = await anyio.to_thread.run_sync(self._events.get, abandon_on_cancel=True)
                yield self._take(item)
                while self._completion is None:  # drain what is already there without a thread hop
                    try:
                        item = self._events.get_nowait()
                    except queue.Empty:
                        break
                    yield self._take(item)
        finally:
            if self._completion is None:
                self.cancel()

    async def completion(self) -> Completion:
        async for _ in self:
            pass
        assert self._completion is not None
        return self._completion
