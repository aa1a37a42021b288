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
request with a raw grammar is refused (a generic server cannot promise the
constraint), and the llama.cpp-only sampling knobs are left out.

A request's output needs (``tools``, ``response_format``) go out as ``output`` says:

- ``"native"``: OpenAI's ``tools``/``tool_choice`` (``parallel_tool_calls: false`` when one call
  is allowed) and ``response_format``; the conversation keeps its ``tool_calls`` and
  ``tool_call_id`` fields;
- ``"grammar"`` (llama.cpp servers): the grammar a local engine would use, in ``grammar``, and the
  conversation written as text (``tools.output_spec``); the reply is read back by the backend;
- ``"prompt"`` (servers with neither): the format and its schema in the system message, the
  conversation written as text; the reply is read back and checked by the backend.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import ConfigError, RemoteProtocolError, RemoteServerError
from orchestrator.types import ChatMessage, Choice, FinishReason, FunctionCall, GenerationRequest, TokenDelta
from tools.output_spec import decision_grammar, format_grammar, prompt_instructions, text_messages

__all__ = ["MAX_ERROR_MESSAGE_CHARS", "OutputMode", "ReplyAssembler", "Usage", "request_body", "server_error"]

OutputMode = Literal["native", "grammar", "prompt"]

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


def request_body(request: GenerationRequest, *, model: str, stream: bool, llama_cpp_extras: bool, n: int | None = None,
                 output: OutputMode = "native") -> tuple[str, dict[str, Any]]:
    """The path (relative to the API base) and JSON body for ``request``; ``n`` overrides ``request.n``;
    ``output`` says how tools and the response format are enforced (see the module docstring)."""
    s = request.sampling
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "temperature": s.temperature, "top_p": s.top_p, "n": n or request.n}
    if request.stop:
        body["stop"] = list(request.stop)
    if s.seed is not None:
        body["seed"] = s.seed
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    grammar = request.grammar
    if output == "grammar" and (request.tools or request.response_format is not None):
        if not llama_cpp_extras:
            raise ConfigError("output='grammar' needs a llama.cpp server (llama_cpp_extras=True)")
        grammar = decision_grammar(request) if request.tools else format_grammar(request.response_format)
    # llama.cpp-only fields: sent when the endpoint says it is llama.cpp, else dropped (grammar refused).
    if llama_cpp_extras:
        body.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty, repeat_last_n=s.repeat_last_n)
        if grammar is not None:
            body["grammar"] = grammar
    elif grammar is not None:
        raise ConfigError("this endpoint takes no grammar; set llama_cpp_extras=True for a llama.cpp server, or use a local backend")
    elif (s.top_k, s.min_p, s.repeat_penalty) != (0, 0.0, 1.0):
        log.debug("top_k/min_p/repeat_penalty are llama.cpp extras; not sent to this endpoint")
    if request.prompt is not None:
        if output == "native" and request.response_format is not None:
            raise ConfigError("response_format needs chat messages on this endpoint (OpenAI's /completions has none)")
        body["prompt"] = _prompted(request.prompt, request) if output == "prompt" else request.prompt
        if request.logprobs:
            body["logprobs"] = 1
        return "completions", body
    body["messages"] = _messages(request, output)
    if request.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = 1  # some servers (llama-cpp-python) send chat logprobs only when this is set
    if output == "native":
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in request.tools
            ]
            body["tool_choice"] = _tool_choice(request)
            if request.max_tool_calls == 1:
                body["parallel_tool_calls"] = False
        if request.response_format is not None:
            body["response_format"] = _response_format(request)
    return "chat/completions", body


def _messages(request: GenerationRequest, output: OutputMode) -> list[dict[str, Any]]:
    """The conversation as this endpoint reads it: OpenAI's shape, or tool calls written as text."""
    messages = tuple(request.messages or ())
    if output == "native":
        return [_message(m) for m in messages]
    # Tool results as one user message: servers read "tool" messages only as answers to native calls.
    messages = tuple(m.model_copy(update={"role": "user"}) if m.role == "tool" else m for m in text_messages(messages))
    extra = prompt_instructions(request) if output == "prompt" else None
    if extra is not None:  # the format goes after the system prompt, or in a system message of its own
        if messages[0].role == "system":
            messages = (messages[0].model_copy(update={"content": f"{messages[0].content}\n\n{extra}"}), *messages[1:])
        else:
            messages = (ChatMessage(role="system", content=extra), *messages)
    return [_message(m) for m in messages]


def _prompted(prompt: str, request: GenerationRequest) -> str:
    extra = prompt_instructions(request)
    return f"{extra}\n\n{prompt}" if extra else prompt


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in message.tool_calls]
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ConfigError("a tool message needs the tool_call_id of the call it answers on this endpoint")
        out["tool_call_id"] = message.tool_call_id  # OpenAI's tool messages have no name
    elif message.name is not None:
        out["name"] = message.name
    return out


def _response_format(request: GenerationRequest) -> dict[str, Any]:
    fmt = request.response_format
    assert fmt is not None
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.json_schema, "strict": fmt.strict}}


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
    token: str | None = None


class _ChatLogprobs(_Wire):
    content: list[_TokenLogprob] | None = None


class _TextLogprobs(_Wire):
    token_logprobs: list[float | None] | None = None
    tokens: list[str] | None = None


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
        self.token_texts: list[str] | None = []  # None once a token came without its text
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
            text, logprobs = self._choice(self._states[choice.index], choice)
            if text:
                values = tuple(lp for lp, _ in logprobs) if logprobs else None
                texts = tuple(t for _, t in logprobs) if logprobs and all(t is not None for _, t in logprobs) else None
                deltas.append(TokenDelta(index=choice.index + self.index_offset, text=text, logprobs=values, token_texts=texts))  # type: ignore[arg-type]
        return deltas

    def _choice(self, state: _State, choice: _Choice) -> tuple[str, list[tuple[float, str | None]]]:
        # 1. The text piece: "text" on /completions, delta (stream) or message (whole reply) on chat.
        body = choice.delta or choice.message
        text = (body.content if body else None) if self.chat else choice.text
        if text:
            state.text.append(text)
            state.pieces += 1
        # 2. Chosen tokens' log-probabilities (and their text, when the server sends it).
        values: list[tuple[float, str | None]] = []
        if choice.logprobs is not None:
            values = self._logprobs(choice.logprobs)
            if values:
                state.logprobs = (state.logprobs or []) + [lp for lp, _ in values]
                state.token_texts = None if state.token_texts is None or any(t is None for _, t in values) else \
                    state.token_texts + [t for _, t in values]  # type: ignore[misc]
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
        return text or "", values

    def _logprobs(self, raw: dict[str, Any]) -> list[tuple[float, str | None]]:
        """Chosen tokens' log-probabilities and texts: ``content[]`` on chat, ``token_logprobs``
        and ``tokens`` on completions."""
        try:
            if self.chat:
                return [(t.logprob, t.token) for t in _ChatLogprobs.model_validate(raw).content or ()]
            text = _TextLogprobs.model_validate(raw)
            tokens = text.tokens if text.tokens is not None and len(text.tokens) == len(text.token_logprobs or ()) else None
            return [(v, tokens[i] if tokens else None) for i, v in enumerate(text.token_logprobs or ()) if v is not None]
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
                    token_texts=tuple(state.token_texts) if state.logprobs is not None and state.token_texts is not None else None,
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
