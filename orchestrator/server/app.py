"""The ASGI app: OpenAI's ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/embeddings``, and ``/health``. Body fields the schemas do not read are decided per field
(``fields``): ignored when they do not change the output, else a 400.

Each served model is a ``Backend`` under a name (a local engine, a remote server, a router).
Every request is checked in this order: API key (401), body size (413), JSON (400), fields (400),
model (404), then admission: ``max_active`` requests generate at once and ``max_queued`` wait;
past that, 429. A stream's first event is awaited before the response starts, so a request the
backend refuses still gets its proper status. When the client goes away (mid-stream or while
waiting for a whole reply) the generation is cancelled: local engines stop at the next token.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from orchestrator.backends.base import Backend, complete, stream
from orchestrator.errors import ConfigError, ModelNotFoundError
from orchestrator.server.config import ServerConfig
from orchestrator.server.convert import (
    Prepared,
    chat_response,
    completion_response,
    prepare_chat,
    prepare_completion,
)
from orchestrator.server.embeddings import embedding_response
from orchestrator.server.fields import check_fields
from orchestrator.server.health import health_response
from orchestrator.server.http_errors import ApiError, error_body, to_api_error
from orchestrator.server.schemas import ChatBody, CompletionBody, EmbeddingBody
from orchestrator.server.streaming import ChatChunks, CompletionChunks
from orchestrator.types import Completion, GenerationRequest, TokenDelta

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError("the server needs the 'server' extra: pip install 'on-device-orchestrator[server]'") from exc

__all__ = ["Event", "ServerStats", "create_app"]

log = logging.getLogger("orchestrator.server")

Event = TokenDelta | Completion


@dataclass
class ServerStats:
    """Counters since the app started (read them from ``app.state.stats``)."""

    requests: int = 0
    completed: int = 0
    rejected: int = 0
    disconnected: int = 0
    active: int = 0
    waiting: int = 0


class _Admission:
    """At most ``active`` generations at once and ``queued`` waiting; more get a 429.

    A request is counted as waiting before the first ``await`` (the check and the count happen
    in one step of the event loop), so a burst can never slip past the limit while earlier
    requests are still on their way to the semaphore.
    """

    def __init__(self, config: ServerConfig, stats: ServerStats) -> None:
        self.config = config
        self.stats = stats
        self._sem: anyio.Semaphore | None = None

    async def acquire(self) -> None:
        if self._sem is None:  # made on the server's event loop, on first use
            self._sem = anyio.Semaphore(self.config.max_active)
        # 1. Check and count at once, with no await in between: active and waiting together are
        #    every request admitted so far (one holding a free slot may not be "active" yet).
        if self.stats.active + self.stats.waiting >= self.config.max_active + self.config.max_queued:
            raise ApiError(429, "the server is busy; retry shortly", "server_error", code="overloaded")
        self.stats.waiting += 1
        # 2. Wait for a slot; the request stays counted as waiting until it has one.
        try:
            await self._sem.acquire()
        finally:
            self.stats.waiting -= 1
        self.stats.active += 1

    def release(self) -> None:
        assert self._sem is not None
        self.stats.active -= 1
        self._sem.release()


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


class _Api:
    def __init__(self, backends: Mapping[str, Backend], config: ServerConfig) -> None:
        if not backends:
            raise ConfigError("serve at least one model")
        self.backends = dict(backends)
        self.config = config
        self.stats = ServerStats()
        self.admission = _Admission(config, self.stats)

    # -- checks ----------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key", "authentication_error", code="invalid_api_key")

    async def _json(self, request: Request) -> dict:
        cap = self.config.max_body_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise ApiError(413, f"the body is larger than {cap} bytes", code="body_too_large")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > cap:
                raise ApiError(413, f"the body is larger than {cap} bytes", code="body_too_large")
        try:
            data = json.loads(bytes(body), parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _backend(self, name: str) -> Backend:
        backend = self.backends.get(name)
        if backend is None:
            raise ModelNotFoundError(f"no model named {name!r} is served here (see GET /v1/models)")
        return backend

    # -- endpoints -------------------------------------------------------
    async def models(self, request: Request) -> Response:
        self._authorize(request)
        return JSONResponse({"object": "list", "data": [_model_card(n) for n in self.backends]})

    async def model(self, request: Request) -> Response:
        self._authorize(request)
        name = request.path_params["name"]
        self._backend(name)
        return JSONResponse(_model_card(name))

    async def health(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except ApiError:
            return JSONResponse(health_response(self.backends, authorized=False))
        return JSONResponse(health_response(self.backends, authorized=True))

    async def embeddings(self, request: Request) -> Response:
        self._authorize(request)
        data = await self._json(request)
        check_fields(data, _read(EmbeddingBody))
        body = EmbeddingBody.model_validate(data)
        return JSONResponse(await embedding_response(self._backend(body.model), body, self.admission.acquire, self.admission.release))

    async def chat(self, request: Request) -> Response:
        self._authorize(request)
        data = await self._json(request)
        check_fields(data, _read(ChatBody))
        body = ChatBody.model_validate(data)
        backend = self._backend(body.model)
        prep = prepare_chat(body, self.config, remote=getattr(backend, "location", "local") == "remote")
        if body.stream:
            return await self._stream(request, backend, prep, ChatChunks(prep))
        return JSONResponse(chat_response(prep, await self._whole(request, backend, prep.request)))

    async def completions(self, request: Request) -> Response:
        self._authorize(request)
        data = await self._json(request)
        check_fields(data, _read(CompletionBody), completions=True)
        body = CompletionBody.model_validate(data)
        backend = self._backend(body.model)
        prep = prepare_completion(body, self.config)
        if body.stream:
            return await self._stream(request, backend, prep, CompletionChunks(prep))
        return JSONResponse(completion_response(prep, await self._whole(request, backend, prep.request)))

    # -- generation ------------------------------------------------------
    async def _whole(self, request: Request, backend: Backend, gen: GenerationRequest) -> Completion:
        """Runs a request to its completion, cancelled if the client disconnects meanwhile."""

        await self.admission.acquire()
        try:
            completion = await _unless_disconnected(request.receive, lambda: complete(backend, gen), self.stats)
        finally:
            self.admission.release()
        if completion is None:
            raise ApiError(499, "the client closed the request")
        self.stats.completed += 1
        return completion

    async def _stream(self, request: Request, backend: Backend, prep: Prepared, chunks: ChatChunks | CompletionChunks) -> Response:
        """Starts a stream: waits for its first event (errors still get their status), then
        hands the rest to an SSE response that owns the admission slot and the backend stream."""
        await self.admission.acquire()
        events = stream(backend, prep.request)  # checked: a stream without a completion raises EngineError
        try:
            first = await _unless_disconnected(request.receive, events.__anext__, self.stats)
            if first is None:
                raise ApiError(499, "the client closed the request")
        except BaseException:
            await events.aclose()
            self.admission.release()
            raise
        return _EventStream(events, first, chunks, self)


class _EventStream(Response):
    """Server-sent events from a backend stream; ends with ``data: [DONE]``."""

    def __init__(self, events: AsyncIterator[Event], first: Event, chunks: ChatChunks | CompletionChunks, api: _Api) -> None:
        super().__init__(media_type="text/event-stream")
        self.events, self.first, self.chunks, self.api = events, first, chunks, api

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
        try:
            done = await _unless_disconnected(receive, lambda: self._pump(send), self.api.stats)
            if done:
                self.api.stats.completed += 1
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()  # a local engine stops at the next token
            self.api.admission.release()

    async def _pump(self, send: Callable[[dict], Awaitable[None]]) -> bool:
        async def put(data: dict | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            await send({"type": "http.response.body", "body": f"data: {text}\n\n".encode(), "more_body": True})

        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for chunk in self.chunks.start():
                await put(chunk)
            event = self.first
            while True:
                if isinstance(event, Completion):
                    for chunk in self.chunks.end(event):
                        await put(chunk)
                    break
                for chunk in self.chunks.delta(event):
                    await put(chunk)
                event = await self.events.__anext__()
        except OSError:
            return False  # the client went away while we were writing
        except Exception as exc:  # noqa: BLE001 - after the 200 the error goes out as an event, never a trace
            error: dict | None = error_body(to_api_error(exc))
        else:
            error = None
        try:
            if error is not None:
                await put(error)
            await put("[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return False
        return error is None


async def _unless_disconnected(receive: Callable[[], Awaitable[dict]], fn: Callable[[], Awaitable[Any]], stats: ServerStats) -> Any:
    """``await fn()``, cancelled when the client disconnects first (then None). Errors of ``fn`` propagate."""
    outcome: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass  # the rest of a body already read; wait on
            if outcome:
                return  # the response was complete: the server reports that as a disconnect too
            stats.disconnected += 1
            log.info("client disconnected; generation cancelled")
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            outcome.append((True, await fn()))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller below, outside the task group
            outcome.append((False, exc))
        tg.cancel_scope.cancel()
    if not outcome:
        return None
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _read(schema: type) -> frozenset[str]:
    """The body fields a schema reads (by their JSON names)."""
    return frozenset(f.alias or name for name, f in schema.model_fields.items())  # type: ignore[attr-defined]


def _model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "orchestrator"}


def _handle(fn: Callable[[Request], Awaitable[Response]], stats: ServerStats) -> Callable[[Request], Awaitable[Response]]:
    """Runs an endpoint; any error becomes its status and an OpenAI-style JSON body."""

    async def endpoint(request: Request) -> Response:
        stats.requests += 1
        try:
            return await fn(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status; to_api_error logs ours
            err = to_api_error(exc)
            stats.rejected += 1
            headers = {"www-authenticate": "Bearer"} if err.status == 401 else {"retry-after": "1"} if err.status == 429 else None
            return JSONResponse(error_body(err), status_code=err.status, headers=headers)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "no such endpoint", 405: "method not allowed"}.get(status, "internal server error" if status == 500 else "request refused")
    if status == 500:
        log.error("internal error", exc_info=exc)
    return JSONResponse(error_body(ApiError(status, message)), status_code=status)


def create_app(backends: Mapping[str, Backend], config: ServerConfig | None = None) -> Starlette:
    """The ASGI app serving ``backends`` (name -> backend) under ``config``."""
    config = config or ServerConfig()
    api = _Api(backends, config)
    routes = [
        Route("/v1/models", _handle(api.models, api.stats), methods=["GET"]),
        Route("/v1/models/{name:path}", _handle(api.model, api.stats), methods=["GET"]),
        Route("/v1/chat/completions", _handle(api.chat, api.stats), methods=["POST"]),
        Route("/v1/completions", _handle(api.completions, api.stats), methods=["POST"]),
        Route("/v1/embeddings", _handle(api.embeddings, api.stats), methods=["POST"]),
        Route("/health", _handle(api.health, api.stats), methods=["GET"]),
    ]
    middleware = []
    if config.cors_origins:  # only the listed origins; no CORS headers at all otherwise
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                                     allow_headers=["authorization", "content-type"]))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error, Exception: _http_error})
    app.state.stats = api.stats
    app.state.config = config
    return app
