"""``CancelHandle``: stops one piece of work from any thread (a UI's stop button).

Backends that stop at their next token take one in ``generate(request, cancel=handle)`` (see
``orchestrator.backends.base.Backend``); ``orchestrator.backends.base.stream`` gives every other
backend the same outcome by closing its stream. Either way the stream ends with a completion whose
``finish_reason`` is ``"cancelled"``, made here by ``cancelled_completion`` when the backend did
not make it itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import anyio
import anyio.from_thread
import anyio.lowlevel

from orchestrator.types import Choice, Completion

__all__ = ["CancelHandle", "cancelled_completion"]

log = logging.getLogger(__name__)


class CancelHandle:
    """Cancels one piece of work from any thread. Idempotent; cancelling before the work starts
    makes it end at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls ``callback`` on cancel (now, if already cancelled), in the cancelling thread;
        returns the function that unregisters it. ``callback`` must be thread-safe."""
        with self._lock:
            if not self._cancelled:
                key, self._next = self._next, self._next + 1
                self._callbacks[key] = callback
                return lambda: self._callbacks.pop(key, None)
        callback()
        return lambda: None

    @contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Within the block, cancelling this handle (from any thread) cancels ``scope``, which
        belongs to the event loop running the block."""
        unregister = self.on_cancel(_threadsafe(scope.cancel))
        try:
            yield
        finally:
            unregister()


def _threadsafe(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` (which must run on the current event loop) callable from any thread."""
    token, loop_thread = anyio.lowlevel.current_token(), threading.get_ident()

    def call() -> None:
        if threading.get_ident() == loop_thread:
            fn()
            return
        try:
            anyio.from_thread.run_sync(fn, token=token)
        except RuntimeError:  # the loop has ended: nothing left to cancel
            log.debug("cancel after the event loop ended")

    return call


def cancelled_completion(model: str, n: int, pieces: Mapping[int, Sequence[str]]) -> Completion:
    """The completion of a stream cancelled after ``pieces`` (the text pieces per choice) had
    arrived: each choice holds its text so far, and ``tokens`` counts its pieces."""
    choices = tuple(Choice(index=i, text="".join(pieces.get(i, ())), tokens=len(pieces.get(i, ())), finish_reason="cancelled")
                    for i in range(n))
    return Completion(model=model, choices=choices)
