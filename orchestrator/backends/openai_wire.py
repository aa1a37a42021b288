"""The OpenAI-compatible wire format: request bodies out, reply chunks in. Pure, no I/O.

``request_body`` maps a ``GenerationRequest`` to ``/chat/completions`` (chat
``messages``) or ``/completions`` (a raw ``prompt``). ``ReplyAssembler``
takes the reply's JSON objects (stream chunks, or one whole reply) and
returns the text deltas while it gathers each choice's text, chosen-token
log-probabilities, tool calls (streamed argument pieces joined per call
index) and finish reason.

llama.cpp extras: with ``llama_cpp_extras`` the body also carries
``top_k``, ``min_p``, ``repeat_penalty``, ``repeat_last_n`` and ``grammar``,
fields llama.cpp's servers read and other servers may reject. Without it a
request with a grammar is refused (a generic server cannot promise the
constraint), and the llama.cpp-only sampling knobs are left out.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import ConfigError, RemoteProtocolError, RemoteServerError
from orchestrator.types import Choice, FinishReason, FunctionCall, GenerationRequest, TokenDelta

__all__ = ["MAX_ERROR_MESSAGE_CHARS", "ReplyAssembler", "Usage", "request_body", "server_error"]

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_CHARS = 4000
"""A server's error message is kept whole up to this length (a hostile one may be megabytes)."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


def request_body(request: GenerationRequest, *, model: str, stream: bool, llama_cpp_extras: bool, n: int | None = None) -> tuple[str, dict[str, Any]]:
    """The path (relative to the API base) and JSON body for ``request``; ``n`` overrides ``request.n``."""
    s = request.sampling
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "temperature": s.temperature, "top_p": s.top_p, "n": n or request.n}
    if request.stop:
        body["stop"] = list(request.stop)
    if s.seed is not None:
        body["seed"] = s.seed
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    # llama.cpp-only fields: sent when the endpoint says it is llama.cpp, else dropped (grammar refused).
    if llama_cpp_extras:
        body.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty, repeat_last_n=s.repeat_last_n)
        if request.grammar is not None:
            body["grammar"] = request.grammar
    elif request.grammar is not None:
        raise ConfigError("this endpoint takes no grammar; set llama_cpp_extras=True for a llama.cpp server, or use a local backend")
    elif (s.top_k, s.min_p, s.repeat_penalty) != (0, 0.0, 1.0):
        log.debug("top_k/min_p/repeat_penalty are llama.cpp extras; not sent to this endpoint")
    if request.prompt is not None:
        if request.tools:
            raise ConfigError("tools need chat messages, not a raw prompt")
        body["prompt"] = request.prompt
        if request.logprobs:
            body["logprobs"] = 1
        return "completions", body
    body["messages"] = [_message(m) for m in request.messages or ()]
    if request.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = 1  # some servers (llama-cpp-python) send chat logprobs only when this is set
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in request.tools
        ]
        body["tool_choice"] = _tool_choice(request)
    return "chat/completions", body


def _message(message: Any) -> dict[str, Any]:
    out = {"role": message.role, "content": message.content}
    if message.name is not None:
        out["name"] = message.name
    return out


def _tool_choice(request: GenerationRequest) -> Any:
    # "required" with a single tool is sent as that tool by name: the same meaning, and more
    # servers enforce it (llama-cpp-python's server ignores "required" but grammar-forces a named tool).
    if request.tool_choice == "required" and len(request.tools) == 1:
        return {"type": "function", "function": {"name": request.tools[0].name}}
    return request.tool_choice


# -- reply parsing -------------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _FunctionDelta(_Wire):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(_Wire):
    index: int | None = None
    id: str | None = None
    function: _FunctionDelta | None = None


class _Message(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _TokenLogprob(_Wire):
    logprob: float


class _ChatLogprobs(_Wire):
    content: list[_TokenLogprob] | None = None


class _TextLogprobs(_Wire):
    token_logprobs: list[float | None] | None = None


class _Choice(_Wire):
    index: int = 0
    delta: _Message | None = None
    message: _Message | None = None
    text: str | None = None
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class Usage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ErrorBody(_Wire):
    message: str = ""


class _Reply(_Wire):
    model: str | None = None
    choices: list[_Choice] = []
    usage: Usage | None = None
    error: _ErrorBody | str | None = None


class _Call:
    """One tool call being assembled from its streamed pieces."""

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _State:
    """What arrived so far for one choice."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.pieces = 0
        self.logprobs: list[float] | None = None
        self.calls: dict[int, _Call] = {}
        self.finish: FinishReason | None = None


class ReplyAssembler:
    """Gathers a reply's choices from its JSON objects; ``chat`` says which endpoint answered."""

    def __init__(self, *, n: int, chat: bool, endpoint: str | None = None, index_offset: int = 0) -> None:
        self.n = n
        self.chat = chat
        self.endpoint = endpoint
        self.index_offset = index_offset
        self.model: str | None = None
        self.usage: Usage | None = None
        self.seen: set[int] = set()
        self._states = [_State() for _ in range(n)]

    def feed(self, obj: Any) -> list[TokenDelta]:
        """Takes one parsed JSON object of the reply; returns its text deltas."""
        if not isinstance(obj, dict):
            raise RemoteProtocolError("a reply chunk is not a JSON object", endpoint=self.endpoint)
        try:
            reply = _Reply.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RemoteProtocolError(f"malformed reply field {where}: {first['msg']}", endpoint=self.endpoint) from None
        if reply.error is not None:
            raise server_error(obj["error"], endpoint=self.endpoint)
        self.model = reply.model or self.model
        if reply.usage is not None:
            self.usage = reply.usage
        deltas = []
        for choice in reply.choices:
            if not 0 <= choice.index < self.n:
                raise RemoteProtocolError(f"choice index {choice.index} outside 0..{self.n - 1}", endpoint=self.endpoint)
            self.seen.add(choice.index)
            text = self._choice(self._states[choice.index], choice)
            if text:
                deltas.append(TokenDelta(index=choice.index + self.index_offset, text=text))
        return deltas

    def _choice(self, state: _State, choice: _Choice) -> str:
        # 1. The text piece: "text" on /completions, delta (stream) or message (whole reply) on chat.
        body = choice.delta or choice.message
        text = (body.content if body else None) if self.chat else choice.text
        if text:
            state.text.append(text)
            state.pieces += 1
        # 2. Chosen tokens' log-probabilities, when the server sends them.
        if choice.logprobs is not None:
            values = self._logprobs(choice.logprobs)
            if values:
                state.logprobs = (state.logprobs or []) + values
        # 3. Tool-call pieces: id and name once, arguments concatenated per call index.
        for position, piece in enumerate((body.tool_calls or []) if body else []):
            call = state.calls.setdefault(piece.index if piece.index is not None else position, _Call())
            call.id = call.id or (piece.id or "")
            if piece.function is not None:
                call.name = call.name or (piece.function.name or "")
                if piece.function.arguments:
                    call.arguments.append(piece.function.arguments)
                    state.pieces += 1
        # 4. The finish reason closes the choice.
        if choice.finish_reason is not None:
            reason = _FINISH.get(choice.finish_reason)
            if reason is None:
                raise RemoteProtocolError(f"unknown finish_reason {choice.finish_reason[:40]!r}", endpoint=self.endpoint)
            state.finish = reason
        return text or ""

    def _logprobs(self, raw: dict[str, Any]) -> list[float]:
        """Chosen tokens' log-probabilities: ``content[].logprob`` on chat, ``token_logprobs`` on completions."""
        try:
            if self.chat:
                return [t.logprob for t in _ChatLogprobs.model_validate(raw).content or ()]
            return [v for v in _TextLogprobs.model_validate(raw).token_logprobs or () if v is not None]
        except ValidationError:
            raise RemoteProtocolError("malformed logprobs in the reply", endpoint=self.endpoint) from None

    def choices(self) -> tuple[Choice, ...]:
        """The finished choices; a tool call without a name is a protocol error."""
        out = []
        for index, state in enumerate(self._states):
            calls = []
            for key in sorted(state.calls):
                call = state.calls[key]
                if not call.name:
                    raise RemoteProtocolError(f"a tool call (choice {index}) has no function name", endpoint=self.endpoint)
                calls.append(FunctionCall(id=call.id or f"call_{index}_{key}", name=call.name, arguments="".join(call.arguments)))
            finish = state.finish or "stop"
            if calls and finish == "stop":
                finish = "tool_calls"
            tokens = len(state.logprobs) if state.logprobs is not None else state.pieces
            out.append(
                Choice(
                    index=index + self.index_offset,
                    text="".join(state.text),
                    tokens=tokens,
                    finish_reason=finish,
                    logprobs=tuple(state.logprobs) if state.logprobs is not None else None,
                    tool_calls=tuple(calls),
                )
            )
        return tuple(out)


def server_error(error: Any, *, endpoint: str | None = None) -> RemoteServerError:
    """The error a server reported inside its reply, as a ``RemoteServerError`` with the server's
    own message. ``error`` is what it sent: an object like ``{"code": 500, "message": "...",
    "type": "server_error"}`` (llama.cpp's streamed ``error:`` line, OpenAI's ``error`` field),
    possibly wrapped once more in ``{"error": ...}``, or plain text."""
    if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
        error = error["error"]
    status = None
    if isinstance(error, dict):
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            status = code
        message = error.get("message")
        kind = error.get("type")
        text = message if isinstance(message, str) else ""
        if isinstance(kind, str) and kind:
            text = f"{text} ({kind[:60]})"
    else:
        text = str(error)
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        text = text[:MAX_ERROR_MESSAGE_CHARS] + f"... ({len(text)} characters, cut)"
    where = f" (HTTP {status})" if status is not None else ""
    return RemoteServerError(f"the server reported an error{where}: {text or 'no message'}", endpoint=endpoint, status=status)
