"""The ``Backend`` contract's reading and cancelling helpers: ``stream``, ``complete`` and
``read_completion`` (``orchestrator.backends.base``), and ``CancelHandle``.

Logic on ``ScriptedBackend`` and small fakes; cancelling a real engine at its next token on
smollm2-135m.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from orchestrator.backends import CancelHandle, LocalBackend, ScriptedBackend, complete, read_completion, stream
from orchestrator.errors import EngineError
from orchestrator.routing.router import Router
from orchestrator.types import Completion, GenerationRequest, SamplingParams, TokenDelta

pytestmark = pytest.mark.timeout(60)

REQUEST = GenerationRequest(prompt="x", max_tokens=100)


class Endless:
    """Streams words until closed, without ``stops_on_cancel``: it gets the generic cancel."""

    def __init__(self) -> None:
        self.name = "endless"
        self.closed = threading.Event()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        try:
            while True:
                await anyio.sleep(0.005)
                yield TokenDelta(index=0, text=" w")
        finally:
            self.closed.set()


class NoCompletion:
    """Breaks the contract: two pieces, then the end, no completion."""

    name = "broken"
    location = "local"

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        yield TokenDelta(index=0, text="half")
        yield TokenDelta(index=0, text=" an answer")


async def _read(events: AsyncIterator[TokenDelta | Completion], cancel: CancelHandle | None = None,
                at: int = 0) -> tuple[list[str], Completion]:
    """Reads a stream to its completion, cancelling ``cancel`` from another thread after ``at`` pieces."""
    pieces: list[str] = []
    async for event in events:
        if isinstance(event, Completion):
            return pieces, event
        pieces.append(event.text)
        if cancel is not None and len(pieces) == at:
            await anyio.to_thread.run_sync(cancel.cancel)  # a UI thread presses "stop"
    raise AssertionError("no completion")


# -- cancelling --------------------------------------------------------------------------------


def test_scripted_backend_stops_at_its_next_word_with_exact_counts():
    backend = ScriptedBackend(lambda r: "one two three four five six")
    cancel = CancelHandle()

    pieces, done = anyio.run(lambda: _read(backend.generate(REQUEST, cancel=cancel), cancel, at=2))
    assert pieces == ["one", " two"]  # nothing after the cancel
    assert (done.text, done.tokens, done.finish_reason) == ("one two", 2, "cancelled")


def test_scripted_backend_cancelled_in_its_first_choice_starts_no_other():
    backend = ScriptedBackend(["a b c", "never asked"])
    cancel = CancelHandle()
    pieces, done = anyio.run(lambda: _read(stream(backend, GenerationRequest(prompt="x", n=2), cancel=cancel), cancel, at=1))
    assert pieces == ["a"]
    assert [(c.text, c.tokens, c.finish_reason) for c in done.choices] == [("a", 1, "cancelled"), ("", 0, "cancelled")]
    assert backend._script == ["never asked"]  # the second reply was never taken


def test_a_finished_choice_keeps_its_reason():
    backend = ScriptedBackend(["a b", "c d e"])
    cancel = CancelHandle()
    pieces, done = anyio.run(lambda: _read(stream(backend, GenerationRequest(prompt="x", n=2), cancel=cancel), cancel, at=3))
    assert pieces == ["a", " b", "c"]
    assert [(c.text, c.finish_reason) for c in done.choices] == [("a b", "stop"), ("c", "cancelled")]


def test_cancelled_before_it_starts_asks_nothing():
    backend = ScriptedBackend(["unused"])
    cancel = CancelHandle()
    cancel.cancel()
    done = anyio.run(lambda: complete(backend, REQUEST, cancel=cancel))
    assert (done.text, done.tokens, done.finish_reason) == ("", 0, "cancelled")
    assert backend.requests == []


def test_any_backend_gets_the_generic_cancel_from_another_thread():
    backend = Endless()
    cancel = CancelHandle()
    pieces, done = anyio.run(lambda: _read(stream(backend, REQUEST, cancel=cancel), cancel, at=4))
    assert pieces == [" w"] * 4 and backend.closed.is_set()
    assert (done.text, done.tokens, done.finish_reason) == (" w w w w", 4, "cancelled")


def test_cancel_handle_callbacks_run_once_and_can_be_unregistered():
    cancel = CancelHandle()
    calls: list[str] = []
    unregister = cancel.on_cancel(lambda: calls.append("a"))
    cancel.on_cancel(lambda: calls.append("b"))
    unregister()
    cancel.cancel()
    cancel.cancel()
    cancel.on_cancel(lambda: calls.append("late"))  # already cancelled: called at once
    assert calls == ["b", "late"] and cancel.cancelled


# -- reading to the completion -----------------------------------------------------------------


def test_complete_passes_each_delta_to_a_plain_or_async_callback():
    backend = ScriptedBackend(lambda r: "alpha beta gamma")
    plain: list[str] = []
    waited: list[str] = []

    async def slow(delta: TokenDelta) -> None:
        await anyio.sleep(0)
        waited.append(delta.text)

    async def main() -> tuple[Completion, Completion]:
        return (await complete(backend, REQUEST, on_delta=lambda d: plain.append(d.text)),
                await complete(backend, REQUEST, on_delta=slow))

    first, second = anyio.run(main)
    assert plain == waited == ["alpha", " beta", " gamma"]
    assert first.text == second.text == "alpha beta gamma"


def test_an_error_in_the_callback_closes_the_stream():
    backend = Endless()

    def stop(delta: TokenDelta) -> None:
        raise KeyError("the UI is gone")

    with pytest.raises(KeyError):
        anyio.run(lambda: complete(backend, REQUEST, on_delta=stop))
    assert backend.closed.is_set()


def test_a_stream_without_a_completion_is_an_engine_error():
    async def pieces() -> AsyncIterator[TokenDelta | Completion]:
        yield TokenDelta(index=0, text="x")

    with pytest.raises(EngineError, match="backend broken ended its stream without a completion"):
        anyio.run(complete, NoCompletion(), REQUEST)
    with pytest.raises(EngineError, match="the facade ended its stream without a completion"):
        anyio.run(lambda: read_completion(pieces(), source="the facade"))


def test_the_router_does_not_fall_back_after_a_broken_stream():
    # Before: the router moved on to the next backend after the first had sent half an answer.
    fallback = ScriptedBackend(["a second answer"], name="second")
    router = Router([NoCompletion(), fallback])
    with pytest.raises(EngineError, match="without a completion"):
        anyio.run(complete, router, REQUEST)
    assert fallback.requests == []


# -- the real engine ---------------------------------------------------------------------------


@pytest.mark.model
def test_local_backend_stops_at_its_next_token_with_exact_counts(smollm2):
    backend = LocalBackend(smollm2)
    request = GenerationRequest(prompt="Once upon a time", max_tokens=400, sampling=SamplingParams(temperature=0.0))
    cancel = CancelHandle()
    pieces, done = anyio.run(lambda: _read(stream(backend, request, cancel=cancel), cancel, at=3))
    choice = done.choices[0]
    assert choice.finish_reason == "cancelled"
    assert 3 <= choice.tokens <= 12  # the next token or so, far from 400
    assert choice.tokens == len(choice.token_ids) >= len(pieces)  # exact counts; a piece may hold more than one token
    assert "".join(pieces) == choice.text
    # The engine is free again: its KV cells were released.
    assert anyio.run(complete, backend, GenerationRequest(prompt="Hi", max_tokens=2)).tokens <= 2
