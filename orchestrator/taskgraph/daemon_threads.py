"""Sync tools run in daemon threads: a hung tool holds neither the event loop nor the process's exit.

anyio's worker threads are not daemons, and Python waits for them at exit: a tool stuck in a
60 s sleep kept the process alive for 60 s after ``main`` returned. Here each call of a sync
tool gets its own daemon thread (``MAX_TOOL_THREADS`` at once; more calls wait their turn).
When the caller stops waiting (the tool's timeout, a cancel), the call is abandoned: a thread
cannot be killed, but it is logged as still running, counted by ``abandoned_calls()``, logged
again if it ever ends, and it does not keep the process from exiting.

Limit: threads share the interpreter lock. A tool that spends seconds inside one C call that
holds it (big-integer arithmetic, a backtracking regex) stalls the event loop for that long, and
its timeout fires only when the call returns. Such a tool must bound its inputs, as the built-in
calculator does, or do its work in a subprocess it can kill.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["MAX_TOOL_THREADS", "abandoned_calls", "run_in_daemon_thread"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_TOOL_THREADS = 32
_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("orchestrator_tool_threads")
_lock = threading.Lock()
_abandoned: set[str] = set()  # names of calls given up on whose threads still run


def _current_limiter() -> anyio.CapacityLimiter:
    """One limiter per event loop (a limiter belongs to the loop that made it)."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(MAX_TOOL_THREADS)
        _limiter.set(limiter)
        return limiter


def abandoned_calls() -> tuple[str, ...]:
    """The calls given up on (timed out or cancelled) whose threads are still running."""
    with _lock:
        return tuple(sorted(_abandoned))


async def run_in_daemon_thread(fn: Callable[[], _T], *, name: str) -> _T:
    """Runs ``fn()`` in a new daemon thread and returns its result (or raises its exception).

    Cancelling the caller (a timeout) returns at once; the thread runs on, abandoned and logged.
    """
    async with _current_limiter():
        done = anyio.Event()
        token = anyio.lowlevel.current_token()
        outcome: dict[str, Any] = {}
        state = {"abandoned": False}

        def work() -> None:
            # 1. Run the tool, keeping its result or its exception.
            start = time.monotonic()
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome["error"] = exc
            # 2. A call given up on only reports that it finally ended; nobody waits for it.
            with _lock:
                abandoned = state["abandoned"]
                _abandoned.discard(name)
            if abandoned:
                log.warning("abandoned tool call %s ended after %.1f s", name, time.monotonic() - start)
                return
            # 3. Wake the caller on its event loop. A loop that is gone has no caller left.
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except RuntimeError:
                pass

        thread = threading.Thread(target=work, name=f"orchestrator-tool-{name}", daemon=True)
        thread.start()
        try:
            await done.wait()
        except BaseException:
            with _lock:
                if thread.is_alive() and "value" not in outcome and "error" not in outcome:
                    state["abandoned"] = True
                    _abandoned.add(name)
            if state["abandoned"]:
                log.warning("gave up waiting for tool call %s; its thread is still running (a daemon: "
                            "it will not keep the process from exiting)", name)
            raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
