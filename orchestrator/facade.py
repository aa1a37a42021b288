"""``Orchestrator``: the one object an app embeds. It owns the models and runs requests, agents
and task graphs from async code (anyio); ``orchestrator.sync_facade.SyncOrchestrator`` wraps it
for threads and GUI code.

    async with Orchestrator({"small": "smollm2-135m"}) as orch:
        reply = (await orch.generate("Say hi", max_tokens=8)).text
        async for event in orch.stream("Tell a story", cancel=button_handle): ...

Models are given as catalogue names or ``.gguf`` paths (loaded on first use, in a worker
thread, once, and freed by ``aclose``) or as ready ``Backend`` values (a remote server, a router;
not closed by the facade). ``"default"`` names the first model, so agents and graphs that use
the default backend name run on it. A ``CancelHandle`` may be cancelled from any thread (a UI
button): a local model stops at its next token and the stream ends with a completion whose
``finish_reason`` is ``"cancelled"``. Importing this module loads no model and does not
initialise llama.cpp.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from orchestrator.backends.base import Backend
from orchestrator.backends.local import LocalBackend
from orchestrator.errors import (
    ConfigError,
    EngineError,
    RequestError,
    RunCancelledError,
)
from orchestrator.types import (
    ChatMessage,
    Choice,
    Completion,
    GenerationRequest,
    TokenDelta,
)

if TYPE_CHECKING:
    from orchestrator.engine import EngineConfig, LocalEngine

__all__ = ["CancelHandle", "Orchestrator"]

log = logging.getLogger(__name__)

Event = TokenDelta | Completion
ModelSource = str | Path | Backend


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

    def _on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls ``callback`` on cancel (now, if already cancelled); returns the unregistering function."""
        with self._lock:
            if not self._cancelled:
                key, self._next = self._next, self._next + 1
                self._callbacks[key] = callback
                return lambda: self._callbacks.pop(key, None)
        callback()
        return lambda: None


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


class Orchestrator:
    """Owns models (``name -> catalogue name, .gguf path or Backend``) and runs work on them.

    Use it from one event loop (``SyncOrchestrator`` gives other threads a safe way in);
    ``aclose()`` (or ``async with``) cancels what is in flight and frees the models it loaded.
    """

    def __init__(self, models: Mapping[str, ModelSource] | None = None, *, engine_config: EngineConfig | None = None) -> None:
        from orchestrator.models.catalogue import DEFAULT_MODEL

        self._sources: dict[str, ModelSource] = dict(models) if models is not None else {DEFAULT_MODEL: DEFAULT_MODEL}
        if not self._sources:
            raise ConfigError("give at least one model")
        if "default" in self._sources:
            raise ConfigError("'default' is reserved: it names the first model")
        self.default = next(iter(self._sources))
        self.engine_config = engine_config
        self._backends: dict[str, Backend] = {n: s for n, s in self._sources.items() if not isinstance(s, str | Path)}
        self._engines: dict[str, LocalEngine] = {}
        self._load_lock = threading.Lock()
        self._inflight: set[CancelHandle] = set()
        self._closed = False

    @property
    def models(self) -> list[str]:
        return list(self._sources)

    # -- models ----------------------------------------------------------
    async def backend(self, name: str | None = None) -> Backend:
        """The backend of model ``name`` (None or ``"default"``: the first), loading it on first use."""
        name = self.default if name in (None, "default") else name
        if self._closed:
            raise EngineError("the orchestrator is closed")
        if name not in self._sources:
            raise ConfigError(f"no model named {name!r}; known: {', '.join(self._sources)}")
        backend = self._backends.get(name)
        if backend is None:
            backend = await anyio.to_thread.run_sync(self._load, name)
        return backend

    def _load(self, name: str) -> Backend:
        """Loads a local model once, even when several callers ask at the same time (worker thread)."""
        from orchestrator.engine import LocalEngine

        with self._load_lock:
            if name not in self._backends:
                if self._closed:
                    raise EngineError("the orchestrator is closed")
                engine = LocalEngine(self._sources[name], self.engine_config, name=name)  # type: ignore[arg-type]
                self._engines[name] = engine
                self._backends[name] = LocalBackend(engine)
                log.info("loaded model %s", name)
            return self._backends[name]

    # -- generation ------------------------------------------------------
    async def generate(self, request: GenerationRequest | str, *, model: str | None = None, cancel: CancelHandle | None = None,
                       **fields: Any) -> Completion:
        """Runs one request to its completion. A string is sent as a user message; ``fields``
        (``max_tokens``, ``sampling``, ``stop``, ...) go into the ``GenerationRequest``."""
        async with aclosing(self.stream(request, model=model, cancel=cancel, **fields)) as events:
            async for event in events:
                if isinstance(event, Completion):
                    return event
        raise EngineError("the stream ended without a completion")

    async def stream(self, request: GenerationRequest | str, *, model: str | None = None, cancel: CancelHandle | None = None,
                     **fields: Any) -> AsyncIterator[Event]:
        """Streams ``TokenDelta`` pieces, then one ``Completion``. ``cancel`` (from any thread)
        ends it at the next token with finish reason ``"cancelled"``; so does ``aclose()``."""
        request = _as_request(request, fields)
        backend = await self.backend(model)
        cancel = cancel or CancelHandle()
        if cancel.cancelled:  # cancelled before it started: nothing is sent to the model
            yield _cancelled(backend.name, request.n, defaultdict(list))
            return
        self._inflight.add(cancel)
        try:
            direct = backend.direct_request(request) if isinstance(backend, LocalBackend) else None
            if direct is not None:  # the engine's own stream (exact cancel); tools go through the backend, which reads calls back
                events = _engine_events(backend.engine, direct, cancel)
            else:
                events = _backend_events(backend, request, cancel)
            async with aclosing(events):
                async for event in events:
                    yield event
        finally:
            self._inflight.discard(cancel)

    # -- agents and graphs -----------------------------------------------
    async def run_agent(self, agent: Any, task: str, *, cancel: CancelHandle | None = None, **options: Any) -> Any:
        """Runs ``agents.Agent`` on ``task`` (``orchestrator.agent_runner.run_agent``); its
        ``model`` and ``escalate_to`` name models here. Cancelling raises ``RunCancelledError``."""
        from orchestrator.agent_runner import run_agent

        names = {n for n in (agent.model, agent.escalate_to) if n}
        backends = {n: await self.backend(n) for n in names}
        return await self._cancellable(lambda: run_agent(agent, task, backends, **options), cancel)

    async def run_graph(self, graph: Any, inputs: Mapping[str, Any] | None = None, *, models: Sequence[str] | None = None,
                        cancel: CancelHandle | None = None, store: Any = None, limits: Mapping[str, int] | None = None,
                        failure: str = "fail_fast", **options: Any) -> Any:
        """Runs a ``TaskGraph`` with ``orchestrator.taskgraph.scheduler.Runner`` on ``models`` (default: all,
        plus ``"default"``); ``options`` go to ``Runner.run``."""
        from orchestrator.taskgraph.scheduler import Runner

        names = list(models) if models is not None else self.models
        backends = {n: await self.backend(n) for n in names}
        backends.setdefault("default", await self.backend())
        runner = Runner(backends, store=store, limits=limits, failure=failure)  # type: ignore[arg-type]
        return await self._cancellable(lambda: runner.run(graph, inputs, **options), cancel)

    async def _cancellable(self, run: Callable[[], Any], cancel: CancelHandle | None) -> Any:
        cancel = cancel or CancelHandle()
        if cancel.cancelled:
            raise RunCancelledError("cancelled before it started")
        self._inflight.add(cancel)
        try:
            with anyio.CancelScope() as scope:
                unregister = cancel._on_cancel(_threadsafe(scope.cancel))
                try:
                    return await run()
                finally:
                    unregister()
            raise RunCancelledError("cancelled")
        finally:
            self._inflight.discard(cancel)

    # -- shutdown --------------------------------------------------------
    async def aclose(self) -> None:
        """Cancels what is in flight, then frees the models this orchestrator loaded. Idempotent."""
        self._closed = True
        for handle in list(self._inflight):
            handle.cancel()
        with self._load_lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(engine.close)

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _as_request(request: GenerationRequest | str, fields: Mapping[str, Any]) -> GenerationRequest:
    if isinstance(request, GenerationRequest):
        if fields:
            raise ConfigError("give fields either in the GenerationRequest or as keywords, not both")
        return request
    if not isinstance(request, str):
        raise ConfigError(f"a request is a GenerationRequest or a string, not {type(request).__name__}")
    try:
        return GenerationRequest(messages=(ChatMessage(role="user", content=request),), **fields)
    except ValueError as exc:  # pydantic's ValidationError
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise RequestError(f"invalid {where}: {first['msg']}") from None


async def _engine_events(engine: Any, request: GenerationRequest, cancel: CancelHandle) -> AsyncIterator[Event]:
    """A local engine's own stream: cancelling stops its sequences at the next token and the
    engine ends the stream with a ``"cancelled"`` completion (exact token counts)."""
    handle = engine.submit(request)
    unregister = cancel._on_cancel(handle.cancel)  # RequestHandle.cancel is thread-safe
    try:
        async for event in handle:
            yield event
    finally:
        unregister()
        handle.cancel()  # the caller left early: stop at the next token (no-op once done)


async def _backend_events(backend: Backend, request: GenerationRequest, cancel: CancelHandle) -> AsyncIterator[Event]:
    """Any backend's stream; on cancel it is closed and a ``"cancelled"`` completion holds the
    text so far (``tokens`` counts the streamed pieces)."""
    texts: dict[int, list[str]] = defaultdict(list)
    async with aclosing(backend.generate(request)) as events:
        while True:
            # One cancel scope per wait, so the consumer's code between events is never in it.
            with anyio.CancelScope() as scope:
                unregister = cancel._on_cancel(_threadsafe(scope.cancel))
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    raise EngineError(f"backend {backend.name} ended its stream without a completion") from None
                finally:
                    unregister()
            if scope.cancelled_caught or (cancel.cancelled and isinstance(event, TokenDelta)):
                yield _cancelled(backend.name, request.n, texts)
                return
            if isinstance(event, TokenDelta):
                texts[event.index].append(event.text)
            yield event
            if isinstance(event, Completion):
                return


def _cancelled(model: str, n: int, texts: Mapping[int, list[str]]) -> Completion:
    """The completion of a stream cancelled after ``texts`` (pieces per choice) had arrived."""
    choices = tuple(Choice(index=i, text="".join(texts.get(i, ())), tokens=len(texts.get(i, ())), finish_reason="cancelled")
                    for i in range(n))
    return Completion(model=model, choices=choices)
