"""The caller's side of one request: stream its events, wait for it, cancel it.

The engine's worker thread appends events under a condition variable; callers
read them from plain threads (``iter``, ``result``) or from async code
(``async for``, ``await handle.completion()``), which waits in a worker thread
so the event loop never blocks, and takes events only on the loop's side, so a
waiter abandoned by cancellation never swallows one. Cancelling, or leaving an ``async for`` early, stops the
request's sequences at their next token.
"""

from __future__ import annotations

import threading
from collections import deque
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
        self._events: deque[Event | BaseException] = deque()
        self._ready = threading.Condition()
        self._final = False
        self._streaming = False
        self._wake = wake
        self._cancelled = threading.Event()
        self._completion: Completion | None = None

    # -- engine side -----------------------------------------------------
    def put(self, event: Event | BaseException) -> None:
        final = isinstance(event, Completion | BaseException)
        with self._ready:
            self._events.append(event)
            self._final = self._final or final
            # A caller waiting only for the result sleeps through the tokens: waking it
            # for each one would take CPU and the GIL from the decode loop.
            if final or self._streaming:
                self._ready.notify_all()

    def _wait(self, timeout: float | None = None, *, final: bool = False) -> bool:
        """Waits until an event (or the final one) is there, without taking it,
        so an abandoned waiter loses nothing."""
        with self._ready:
            self._streaming = self._streaming or not final
            return self._ready.wait_for(lambda: self._final if final else self._events, timeout)

    def _wait_for_async(self) -> None:
        """The worker-thread side of ``async for``: returns when an event is there, or soon
        after the request was cancelled, so a waiter its task abandoned never outlives it."""
        while not self._wait(0.5):
            if self._cancelled.is_set():
                return  # the caller loops while nothing came; an abandoned thread ends here

    def _pop(self) -> Event:
        with self._ready:
            item = self._events.popleft()
        return self._take(item)

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
            self._wait()
            yield self._pop()

    def result(self, timeout: float | None = None) -> Completion:
        """Blocks until the request ends; returns its completion."""
        if self._completion is None and not self._wait(timeout, final=True):
            raise EngineError(f"request {self.id} did not finish within {timeout} s")
        while self._completion is None:
            self._pop()
        return self._completion

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while self._completion is None:
                while not self._events:  # wait in a worker thread; the event loop never blocks
                    await anyio.to_thread.run_sync(self._wait_for_async, abandon_on_cancel=True)
                yield self._pop()
        finally:
            if self._completion is None:
                self.cancel()

    async def completion(self) -> Completion:
        async for _ in self:
            pass
        assert self._completion is not None
        return self._completion
