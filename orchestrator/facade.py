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
button): the stream ends with a completion whose ``finish_reason`` is ``"cancelled"``, a local
model at its next token (the ``Backend`` contract, ``orchestrator.backends.base``). The command
line and the demo go through this facade too: ``lazy_backend`` (a Router that loads only what it
routes to), ``engine`` (an engine's stats and costs) and ``resume_graph`` are there for them.
Importing this module loads no model and does not initialise llama.cpp.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator.backends.base import Backend, read_completion
from orchestrator.backends.base import stream as backend_stream
from orchestrator.backends.cancel import CancelHandle
from orchestrator.backends.local import LocalBackend
from orchestrator.errors import (
    ConfigError,
    EngineError,
    RequestError,
    RunCancelledError,
)
from orchestrator.types import (
    ChatMessage,
    Completion,
    GenerationRequest,
    TokenDelta,
)

if TYPE_CHECKING:
    from orchestrator.engine import EngineConfig, LocalEngine, PinnedPrefix

__all__ = ["CancelHandle", "Event", "ModelSource", "Orchestrator"]

log = logging.getLogger(__name__)

Event = TokenDelta | Completion
ModelSource = str | Path | Backend


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
    def _known(self, name: str | None) -> str:
        """``name`` checked (None or ``"default"``: the first model)."""
        name = self.default if name in (None, "default") else name
        if self._closed:
            raise EngineError("the orchestrator is closed")
        if name not in self._sources:
            raise ConfigError(f"no model named {name!r}; known: {', '.join(self._sources)}")
        return name  # type: ignore[return-value]

    async def backend(self, name: str | None = None) -> Backend:
        """The backend of model ``name`` (None or ``"default"``: the first), loading it on first use."""
        name = self._known(name)
        backend = self._backends.get(name)
        if backend is None:
            backend = await anyio.to_thread.run_sync(self._load, name)
        return backend

    def lazy_backend(self, name: str | None = None) -> Backend:
        """A ``Backend`` for model ``name`` that loads it only when it first generates (a ready
        ``Backend`` is returned as it is). A ``Router`` over such backends decides without loading
        anything and loads only the models it routes to; it counts a model that is not installed
        here as unavailable."""
        name = self._known(name)
        return self._backends.get(name) or _LoadedOnFirstUse(self, name)

    async def engine(self, name: str | None = None) -> LocalEngine:
        """The ``LocalEngine`` of local model ``name``, loading it on first use: for what only an
        engine shows (its stats, KV size and step costs). A model given as a ready ``Backend``
        has none: ``ConfigError``."""
        name = self._known(name)
        await self.backend(name)
        engine = self._engines.get(name)
        if engine is None:
            raise ConfigError(f"model {name!r} was given as a ready backend; it has no local engine here")
        return engine

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
        events = self.stream(request, model=model, cancel=cancel, **fields)
        return await read_completion(events, source=f"model {model or self.default}")

    async def stream(self, request: GenerationRequest | str, *, model: str | None = None, cancel: CancelHandle | None = None,
                     **fields: Any) -> AsyncIterator[Event]:
        """Streams ``TokenDelta`` pieces, then one ``Completion``. ``cancel`` (from any thread)
        ends it at the next token with finish reason ``"cancelled"``; so does ``aclose()``."""
        request = _as_request(request, fields)
        backend = await self.backend(model)
        cancel = cancel or CancelHandle()
        self._inflight.add(cancel)
        try:
            async with aclosing(backend_stream(backend, request, cancel=cancel)) as events:
                async for event in events:
                    yield event
        finally:
            self._inflight.discard(cancel)

    async def pin_prefix(self, messages: str | Sequence[ChatMessage], *, model: str | None = None) -> PinnedPrefix:
        """Pins the start your conversations share (a long system prompt, a document, worked
        examples) on local model ``model``: it stays in the KV cache, is stored on disk, and the
        next process running this model with the same engine settings restores it instead of
        computing it (see ``orchestrator.engine.pinning``). A string is one system message.
        Requests whose messages start with ``messages`` then reuse it::

            await orch.pin_prefix(SYSTEM)
            await orch.generate(GenerationRequest(messages=(ChatMessage(role="system", content=SYSTEM), question)))
        """
        messages = (ChatMessage(role="system", content=messages),) if isinstance(messages, str) else tuple(messages)
        backend = await self.backend(model)
        pin = getattr(backend, "pin_prefix", None)
        if pin is None:
            raise ConfigError(f"model {model or self.default!r} is not a local engine here: it cannot pin a prefix")
        return await pin(messages)

    # -- agents and graphs -----------------------------------------------
    async def run_agent(self, agent: Any, task: str, *, cancel: CancelHandle | None = None, **options: Any) -> Any:
        """Runs ``agents.Agent`` on ``task`` (``orchestrator.agent_runner.run_agent``); its
        ``model`` and ``escalate_to`` name models here. Cancelling raises ``RunCancelledError``."""
        from orchestrator.agent_runner import run_agent

        names = {n for n in (agent.model, agent.escalate_to) if n}
        backends = {n: await self.backend(n) for n in names}
        return await self._cancellable(lambda: run_agent(agent, task, backends, **options), cancel)

    async def run_graph(self, graph: Any, inputs: Mapping[str, Any] | None = None, *, models: Sequence[str] | None = None,
                        backends: Mapping[str, Backend] | None = None, cancel: CancelHandle | None = None, store: Any = None,
                        limits: Mapping[str, int] | None = None, failure: str = "fail_fast", **options: Any) -> Any:
        """Runs a ``TaskGraph`` with ``orchestrator.taskgraph.scheduler.Runner`` on ``models`` (default:
        all, loaded first), ``backends`` (named backends of your own, e.g. a ``Router`` over these
        models; they take precedence) and ``"default"`` (the first model, unless named otherwise);
        ``options`` go to ``Runner.run``."""
        runner = await self._runner(models, backends, store=store, limits=limits, failure=failure)
        return await self._cancellable(lambda: runner.run(graph, inputs, **options), cancel)

    async def resume_graph(self, run_id: str, graph: Any, *, store: Any, models: Sequence[str] | None = None,
                           backends: Mapping[str, Backend] | None = None, cancel: CancelHandle | None = None, **options: Any) -> Any:
        """Finishes a stored run that was interrupted or failed (``Runner.resume``), with the
        models and backends of ``run_graph``; ``options`` (``rerun_uncertain``, ``on_event``) go
        to ``Runner.resume``."""
        runner = await self._runner(models, backends, store=store)
        return await self._cancellable(lambda: runner.resume(run_id, graph, **options), cancel)

    async def _runner(self, models: Sequence[str] | None, backends: Mapping[str, Backend] | None, **settings: Any) -> Any:
        from orchestrator.taskgraph.scheduler import Runner

        found = {n: await self.backend(n) for n in (models if models is not None else self.models)}
        found.update(backends or {})
        if "default" not in found:  # the first model, loaded only if a node uses it
            found["default"] = self.lazy_backend()
        return Runner(found, **settings)

    async def _cancellable(self, run: Callable[[], Any], cancel: CancelHandle | None) -> Any:
        cancel = cancel or CancelHandle()
        if cancel.cancelled:
            raise RunCancelledError("cancelled before it started")
        self._inflight.add(cancel)
        try:
            with anyio.CancelScope() as scope, cancel.cancels(scope):
                return await run()
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


class _LoadedOnFirstUse:
    """A ``Backend`` for one of an orchestrator's local models that loads it when it first
    generates (``Orchestrator.lazy_backend``)."""

    location = "local"
    stops_on_cancel = True  # it hands the cancel on to the loaded backend

    def __init__(self, orch: Orchestrator, name: str) -> None:
        self._orch = orch
        self.name = name

    @property
    def available(self) -> bool:
        """Loaded, or loadable without fetching anything."""
        from orchestrator.models.catalogue import is_installed

        return self.name in self._orch._backends or is_installed(self._orch._sources[self.name])  # type: ignore[arg-type]

    async def generate(self, request: GenerationRequest, *, cancel: CancelHandle | None = None) -> AsyncIterator[Event]:
        backend = await self._orch.backend(self.name)
        async with aclosing(backend_stream(backend, request, cancel=cancel)) as events:
            async for event in events:
                yield event


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
