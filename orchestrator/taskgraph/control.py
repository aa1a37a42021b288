"""``RunControl``: stops a run, or one branch of it, from the event loop that runs it.

The application holds it (a UI's stop button calls ``cancel`` or ``cancel_node``); the
scheduler opens the run's cancel scope and one scope per node attempt through it, and asks it
whether the run is stopping before starting anything new.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["RunControl"]


class RunControl:
    """Cancels a run, or one branch of it, from the event loop that runs it (a UI's stop button).

    Cancelling a node stops it where it is (a local generation stops at its next token) and
    skips the nodes that need its output; the rest of the run goes on.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, anyio.CancelScope] = {}  # the running attempt of each node
        self._cancelled_nodes: set[str] = set()
        self._run_scope: anyio.CancelScope | None = None
        self._run_cancelled = False

    # -- for the application ------------------------------------------------
    def cancel(self) -> None:
        """Stops the whole run; it ends as ``cancelled`` and can be resumed."""
        self._run_cancelled = True
        if self._run_scope is not None:
            self._run_scope.cancel()

    def cancel_node(self, key: str) -> None:
        """Stops node ``key`` (running or not yet started) and skips what needs its output."""
        self._cancelled_nodes.add(key)
        scope = self._scopes.get(key)
        if scope is not None:
            scope.cancel()

    # -- for the scheduler --------------------------------------------------
    @property
    def cancelled(self) -> bool:
        """``cancel()`` was called."""
        return self._run_cancelled

    @property
    def stopping(self) -> bool:
        """The run is being stopped (cancelled, or failed fast): nothing new may start."""
        return self._run_scope is not None and self._run_scope.cancel_called

    def node_cancelled(self, key: str) -> bool:
        return key in self._cancelled_nodes

    def stop(self) -> None:
        """Stops what still runs without marking the run cancelled (a fail-fast failure)."""
        if self._run_scope is not None:
            self._run_scope.cancel()

    @contextmanager
    def run_scope(self) -> Iterator[anyio.CancelScope]:
        """The cancel scope the whole run executes in; already cancelled if ``cancel()`` came first."""
        with anyio.CancelScope() as scope:
            self._run_scope = scope
            if self._run_cancelled:
                scope.cancel()
            yield scope

    @contextmanager
    def node_scope(self, key: str) -> Iterator[anyio.CancelScope]:
        """The cancel scope of one attempt of node ``key``, which ``cancel_node(key)`` cancels."""
        with anyio.CancelScope() as scope:
            self._scopes[key] = scope
            try:
                yield scope
            finally:
                self._scopes.pop(key, None)
