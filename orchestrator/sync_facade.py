"""``SyncOrchestrator``: the ``Orchestrator`` for plain threads and GUI code.

One event loop runs in a background thread (an anyio blocking portal); every method may be called
from any thread, at the same time. Streams come back as a ``SyncStream``: iterate it in your
thread, and/or give ``on_event`` (called on the orchestrator's loop thread: a GUI hands the event
to its own main loop from there). ``SyncStream.cancel()``, or a ``CancelHandle`` given to any
call, stops the work from any thread (a local model at its next token).

    with SyncOrchestrator({"small": "smollm2-135m"}) as orch:
        stream = orch.stream("Tell me a story", max_tokens=64, on_event=show)
        stop_button.on_click(stream.cancel)
        status_bar.set_text(stream.result().finish_reason)
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import anyio.from_thread

from orchestrator.backends.base import read_completion
from orchestrator.errors import EngineError
from orchestrator.facade import CancelHandle, ModelSource, Orchestrator
from orchestrator.types import Completion, GenerationRequest, TokenDelta

if TYPE_CHECKING:
    from orchestrator.backends.base import Backend
    from orchestrator.engine import EngineConfig, LocalEngine, PinnedPrefix
    from orchestrator.types import ChatMessage

__all__ = ["Event", "SyncOrchestrator", "SyncStream"]

Event = TokenDelta | Completion
_END = object()


class SyncStream:
    """One streamed request seen from a plain thread. Iterate it once for its events; ``result()``
    waits for the completion; ``cancel()`` works from any thread."""

    def __init__(self, portal: Any, orch: Orchestrator, request: GenerationRequest | str, model: str | None,
                 on_event: Callable[[Event], None] | None, fields: Mapping[str, Any]) -> None:
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancel_handle = CancelHandle()
        self._future: Future[Completion] = portal.start_task_soon(self._pump, orch, request, model, on_event, dict(fields))

    async def _pump(self, orch: Orchestrator, request: GenerationRequest | str, model: str | None,
                    on_event: Callable[[Event], None] | None, fields: dict[str, Any]) -> Completion:
        def deliver(event: Event) -> None:
            if on_event is not None:
                on_event(event)
            self._events.put(event)

        try:
            events = orch.stream(request, model=model, cancel=self.cancel_handle, **fields)
            completion = await read_completion(events, source=f"model {model or orch.default}", on_delta=deliver)
            deliver(completion)
        except BaseException as exc:
            self._events.put(exc)
            raise
        finally:
            self._events.put(_END)
        return completion

    def cancel(self) -> None:
        """Stops the generation at its next token; the stream ends with a ``"cancelled"`` completion."""
        self.cancel_handle.cancel()

    def __iter__(self) -> Iterator[Event]:
        while True:
            item = self._events.get()  # blocks this thread only; the loop thread fills the queue
            if item is _END:
                return
            if isinstance(item, BaseException):
                self._future.result()  # raises the stream's error (or CancelledError) here
                return
            yield item

    def result(self, timeout: float | None = None) -> Completion:
        """Waits for the completion (``TimeoutError`` after ``timeout`` seconds)."""
        return self._future.result(timeout)


class SyncOrchestrator:
    """Runs an ``Orchestrator`` on its own event-loop thread; thread-safe. Close it (or use
    ``with``) to cancel what is in flight, free the models and stop the thread."""

    def __init__(self, models: Mapping[str, ModelSource] | None = None, *, engine_config: EngineConfig | None = None) -> None:
        self.orchestrator = Orchestrator(models, engine_config=engine_config)
        self._portal_cm = anyio.from_thread.start_blocking_portal(name="orchestrator-loop")
        self._portal = self._portal_cm.__enter__()
        self._lock = threading.Lock()
        self._closed = False

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise EngineError("the orchestrator is closed")
        try:
            return self._portal.call(functools.partial(fn, *args, **kwargs))
        except RuntimeError:
            if self._closed:  # closed by another thread meanwhile: the portal has stopped
                raise EngineError("the orchestrator is closed") from None
            raise

    @property
    def models(self) -> list[str]:
        return self.orchestrator.models

    def load(self, model: str | None = None) -> None:
        """Loads a model now rather than on first use (it takes a moment)."""
        self._call(self.orchestrator.backend, model)

    def backend(self, model: str | None = None) -> Backend:
        """The ``Backend`` of a model, loaded (to serve it, or to route over it); see ``Orchestrator.backend``."""
        return self._call(self.orchestrator.backend, model)

    def engine(self, model: str | None = None) -> LocalEngine:
        """The ``LocalEngine`` of a local model, loaded (its stats, KV size, step costs); see ``Orchestrator.engine``."""
        return self._call(self.orchestrator.engine, model)

    def generate(self, request: GenerationRequest | str, *, model: str | None = None, cancel: CancelHandle | None = None,
                 **fields: Any) -> Completion:
        """Blocks until the request completes; see ``Orchestrator.generate``."""
        return self._call(self.orchestrator.generate, request, model=model, cancel=cancel, **fields)

    def stream(self, request: GenerationRequest | str, *, model: str | None = None,
               on_event: Callable[[Event], None] | None = None, **fields: Any) -> SyncStream:
        """Starts a streamed request and returns at once."""
        if self._closed:
            raise EngineError("the orchestrator is closed")
        return SyncStream(self._portal, self.orchestrator, request, model, on_event, fields)

    def pin_prefix(self, messages: str | Sequence[ChatMessage], *, model: str | None = None) -> PinnedPrefix:
        """Blocks while it pins (restored from disk: milliseconds; computed: as long as a prefill); see ``Orchestrator.pin_prefix``."""
        return self._call(self.orchestrator.pin_prefix, messages, model=model)

    def run_agent(self, agent: Any, task: str, *, cancel: CancelHandle | None = None, **options: Any) -> Any:
        return self._call(self.orchestrator.run_agent, agent, task, cancel=cancel, **options)

    def run_graph(self, graph: Any, inputs: Mapping[str, Any] | None = None, *, cancel: CancelHandle | None = None, **options: Any) -> Any:
        return self._call(self.orchestrator.run_graph, graph, inputs, cancel=cancel, **options)

    def resume_graph(self, run_id: str, graph: Any, *, cancel: CancelHandle | None = None, **options: Any) -> Any:
        return self._call(self.orchestrator.resume_graph, run_id, graph, cancel=cancel, **options)

    def close(self) -> None:
        """Cancels in-flight work, frees the models, stops the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._portal.call(self.orchestrator.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> SyncOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
