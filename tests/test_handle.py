"""RequestHandle without a model: events put by a worker thread, read sync or async."""

from __future__ import annotations

import subprocess
import sys
import threading

import anyio
import pytest

from orchestrator.engine.handle import RequestHandle
from orchestrator.errors import EngineError
from orchestrator.types import Choice, Completion, TokenDelta


def completion(text: str = "hi") -> Completion:
    return Completion(model="m", choices=(Choice(index=0, text=text, tokens=1, finish_reason="stop"),))


def test_sync_iteration_yields_deltas_then_completion():
    h = RequestHandle(1, lambda: None)
    h.put(TokenDelta(index=0, text="h"))
    h.put(completion())
    events = list(h)
    assert [type(e) for e in events] == [TokenDelta, Completion]
    assert h.result().text == "hi"


def test_errors_from_the_engine_are_raised_to_the_caller():
    h = RequestHandle(1, lambda: None)
    h.put(EngineError("boom"))
    with pytest.raises(EngineError, match="boom"):
        h.result()


def test_result_timeout_is_a_typed_error():
    with pytest.raises(EngineError, match="did not finish"):
        RequestHandle(1, lambda: None).result(timeout=0.05)


def test_cancel_wakes_the_engine_once():
    woken = []
    h = RequestHandle(1, lambda: woken.append(1))
    h.cancel()
    h.cancel()
    assert h.cancel_requested and woken == [1]


def test_abandoned_async_waiter_does_not_swallow_the_completion():
    h = RequestHandle(1, lambda: None)

    async def main() -> None:
        with anyio.move_on_after(0.05):
            await h.completion()  # times out: its waiting thread is abandoned

    # The engine answers a cancelled request with a final completion; it arrives after
    # the async caller gave up, and wakes the abandoned waiter, which must leave it be.
    threading.Timer(0.3, h.put, args=(completion("late"),)).start()
    anyio.run(main)
    assert h.cancel_requested  # leaving the stream early cancels the request
    assert h.result(timeout=5).text == "late"


def test_an_abandoned_waiter_thread_does_not_keep_the_process_alive():
    """anyio's worker threads are not daemons: one stuck forever would hang the app at exit."""
    code = (
        "import anyio\n"
        "from orchestrator.engine.handle import RequestHandle\n"
        "h = RequestHandle(1, lambda: None)\n"
        "async def main():\n"
        "    with anyio.move_on_after(0.05):\n"
        "        await h.completion()\n"
        "anyio.run(main)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=30, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
