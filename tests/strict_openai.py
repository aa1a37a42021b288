"""A strict fake of OpenAI's chat API on loopback, for tests: it checks every request body against
the ``openai`` package's own request types and answers from a script, with native tool calls.

Strict means what OpenAI's server refuses is refused here (400, and kept in ``rejected``):

- every field and every nested key must be one the ``openai`` package's request TypedDicts
  declare (``openai.types.chat.completion_create_params``), with the declared types; no
  ``grammar``, no ``name`` on tool messages, ``arguments`` as a string;
- the conversation must hold together: each ``tool`` message answers a ``tool_call_id`` of the
  assistant message before it, and each call of an assistant message is answered before the
  next message of another role;
- ``response_format`` and ``tools`` only as OpenAI's shapes (checked by the types).

A script entry is ``Reply``: text, native tool calls (several in one turn allowed), and whether
to stream the calls in pieces (arguments split across chunks, as OpenAI streams them). With
``native=False`` the fake plays a server that has neither native tools nor structured output:
requests with ``tools`` or ``response_format`` are refused.
"""

from __future__ import annotations

import collections.abc
import json
import socket
import threading
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from openai.types.chat import completion_create_params
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from typing_extensions import NotRequired, Required, is_typeddict

__all__ = ["Reply", "StrictOpenAI", "conforms"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``content`` and/or ``calls`` ((name, arguments dict) pairs)."""

    content: str | None = None
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    stream_pieces: int = 3  # a streamed call's arguments arrive in this many pieces


def conforms(value: Any, tp: Any, path: str = "body") -> str | None:
    """Why ``value`` does not match the typing type ``tp`` exactly (no undeclared keys), or None."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return None
    if origin is typing.Annotated or origin in (Required, NotRequired):
        return conforms(value, args[0], path)
    if origin is typing.Union or origin is types.UnionType:
        errors = [conforms(value, a, path) for a in args]
        if any(e is None for e in errors):
            return None
        specific = [e for e in errors if e and not e.endswith("(wrong type)")]
        return specific[0] if len(specific) == 1 else f"{path}: matches none of {len(args)} shapes ({'; '.join(e or '' for e in errors)[:300]})"
    if origin is typing.Literal:
        return None if any(value == a and type(value) is type(a) for a in args) else f"{path}: {value!r} not one of {args}"
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return f"{path}: expected an object (wrong type)"
        hints = typing.get_type_hints(tp, include_extras=True)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            return f"{path}: unknown field(s) {unknown}"
        # openai's TypedDicts are total=False with Required[...] keys (read from the hints: with
        # postponed annotations the class itself does not know them).
        required = set(tp.__required_keys__) | {k for k, h in hints.items() if typing.get_origin(h) is Required}
        missing = sorted(required - set(value))
        if missing:
            return f"{path}: missing {missing}"
        return next((e for k in value if (e := conforms(value[k], hints[k], f"{path}.{k}"))), None)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or getattr(origin, "__name__", "") == "SequenceNotStr":
        if not isinstance(value, list):
            return f"{path}: expected a list (wrong type)"
        return next((e for i, v in enumerate(value) if (e := conforms(v, args[0], f"{path}.{i}"))), None)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return f"{path}: expected an object (wrong type)"
        return next((e for k, v in value.items() if (e := conforms(v, args[1], f"{path}.{k}"))), None)
    if tp is type(None):
        return None if value is None else f"{path}: expected null (wrong type)"
    if tp is float:
        return None if isinstance(value, int | float) and not isinstance(value, bool) else f"{path}: expected a number (wrong type)"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{path}: expected an integer (wrong type)"
    if isinstance(tp, type):
        return None if isinstance(value, tp) else f"{path}: expected {tp.__name__} (wrong type)"
    return f"{path}: cannot check type {tp!r}"


def _conversation_error(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's rule: tool messages answer the calls of the assistant message just before them."""
    pending: set[str] = set()
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if m["tool_call_id"] not in pending:
                return f"messages.{i}: a tool message must answer a tool_call_id of the preceding assistant message"
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return f"messages.{i}: tool calls {sorted(pending)} were not answered"
        if m["role"] == "assistant":
            pending = {c["id"] for c in m.get("tool_calls") or ()}
    return None


@dataclass
class StrictOpenAI:
    """The fake, served from a background thread on loopback; a context manager.

    ``script`` is a list of ``Reply`` used in order, or a function of the request body.
    ``requests`` holds every body that passed the checks; ``rejected`` every refusal's reason."""

    script: list[Reply] | Callable[[dict[str, Any]], Reply]
    native: bool = True
    model: str = "strict-gpt"
    requests: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"]),
                                Route("/v1/models", self._models, methods=["GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> StrictOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ----------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        error = self._check(body)
        if error is not None:
            self.rejected.append(error)
            return JSONResponse({"error": {"message": error, "type": "invalid_request_error", "param": None, "code": None}}, status_code=400)
        self.requests.append(body)
        reply = self.script(body) if callable(self.script) else self.script.pop(0)
        calls = [{"id": "call_" + uuid.uuid4().hex[:12], "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                 for n, a in reply.calls]
        if body.get("stream"):
            return StreamingResponse(self._chunks(body, reply, calls), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else "stop"
        return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    def _check(self, body: Any) -> str | None:
        params = (completion_create_params.CompletionCreateParamsStreaming if isinstance(body, dict) and body.get("stream")
                  else completion_create_params.CompletionCreateParamsNonStreaming)
        error = conforms(body, params)
        if error is None:
            error = _conversation_error(body["messages"])
        if error is None and not self.native and ({"tools", "tool_choice", "response_format"} & set(body)):
            error = "this server supports neither tools nor response_format"
        return error

    async def _chunks(self, body: dict[str, Any], reply: Reply, calls: list[dict[str, Any]]) -> Iterable[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        for i, word in enumerate((reply.content or "").split(" ") if reply.content else ()):
            yield chunk({"content": word if i == 0 else " " + word})
        for k, call in enumerate(calls):
            args = call["function"]["arguments"]
            size = max(1, -(-len(args) // reply.stream_pieces))
            yield chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for start in range(0, len(args), size):
                yield chunk({"tool_calls": [{"index": k, "function": {"arguments": args[start:start + size]}}]})
        yield chunk({}, "tool_calls" if calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield f"data: {json.dumps({'id': 'chatcmpl-1', 'object': 'chat.completion.chunk', 'created': 0, 'model': body['model'], 'choices': [], 'usage': {'prompt_tokens': 10, 'completion_tokens': 5, 'total_tokens': 15}})}\n\n".encode()
        yield b"data: [DONE]\n\n"
