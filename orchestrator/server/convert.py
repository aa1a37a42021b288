"""OpenAI request bodies to ``GenerationRequest`` values, and completions back to OpenAI JSON.

Defaults follow OpenAI's API: ``temperature`` 1 and ``top_p`` 1 unless given; ``max_tokens``
(or ``max_completion_tokens``) defaults to the server's setting and is capped by it. A backend
whose ``location`` is ``"remote"`` gets the tools natively (``GenerationRequest.tools``) and the
conversation in OpenAI's shape (``tool_calls``, ``tool_call_id``); any other gets them through a
grammar (``local_tools``), or, next to a ``response_format``, natively too: the local backend's
own calls-or-answer grammar. ``response_format`` goes into the request, which every backend
enforces its own way; for a local one the schema is compiled here first, so a schema no grammar
can enforce is a 400 before anything runs.
Log-probabilities carry each token's text. Pure code: no I/O.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from orchestrator.errors import RequestError
from orchestrator.server.config import ServerConfig
from orchestrator.server.http_errors import ApiError
from orchestrator.server.local_tools import (
    ToolPlan,
    plan_local_tools,
    read_choice,
    render_call,
)
from orchestrator.server.schemas import (
    ChatBody,
    ChatMessageIn,
    CompletionBody,
    NamedToolChoice,
    ResponseFormatIn,
)
from orchestrator.types import (
    ChatMessage,
    Choice,
    Completion,
    FunctionCall,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    ToolSpec,
)
from tools.output_spec import decision_grammar, format_grammar

__all__ = ["Prepared", "chat_logprobs", "chat_response", "completion_response", "finish_reason", "prepare_chat", "prepare_completion",
           "route", "text_logprobs", "usage"]


@dataclass(frozen=True)
class Prepared:
    """What the server runs for one body: the request, the local tool plan if any, and ids."""

    request: GenerationRequest
    plan: ToolPlan | None
    id: str
    created: int
    model: str
    include_usage: bool


def _sampling(body: ChatBody | CompletionBody, config: ServerConfig) -> dict:
    asked = getattr(body, "max_completion_tokens", None) or body.max_tokens
    if asked is not None and asked > config.max_tokens_cap:
        raise ApiError(400, f"max_tokens may be at most {config.max_tokens_cap} on this server", param="max_tokens")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    extras = {k: v for k, v in (("top_k", body.top_k), ("min_p", body.min_p), ("repeat_penalty", body.repeat_penalty)) if v is not None}
    sampling = SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        **extras,
    )
    return {"max_tokens": asked or config.max_tokens, "stop": stop, "sampling": sampling, "n": body.n, "user": body.user or None}


def _text(message: ChatMessageIn, index: int) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"only text content is supported (got a {part.type!r} part)", param=f"messages.{index}.content")
        parts.append(part.text)
    return "".join(parts)


def _messages(body: ChatBody, plan: ToolPlan | None) -> tuple[ChatMessage, ...]:
    """The conversation as ``ChatMessage`` values: ``developer`` is a system message. Under a
    local tool plan earlier assistant calls are written back as the model writes them; otherwise
    they stay ``tool_calls`` and each tool result keeps the ``tool_call_id`` it answers."""
    names: dict[str, str] = {}
    out: list[ChatMessage] = []
    for i, m in enumerate(body.messages):
        text = _text(m, i)
        calls: tuple[FunctionCall, ...] = ()
        if m.role == "assistant" and m.tool_calls:
            for call in m.tool_calls:
                names[call.id] = call.function.name
            if plan is not None:
                text = text + "".join(render_call(c.function.name, c.function.arguments) for c in m.tool_calls)
            else:
                calls = tuple(FunctionCall(id=c.id or f"call_{i}_{k}", name=c.function.name, arguments=c.function.arguments)
                              for k, c in enumerate(m.tool_calls))
        name = names.get(m.tool_call_id or "") if m.role == "tool" else m.name
        role = "system" if m.role == "developer" else m.role
        answers = m.tool_call_id if m.role == "tool" and plan is None and m.tool_call_id else None
        out.append(ChatMessage(role=role, content=text, name=name, tool_calls=calls, tool_call_id=answers))
    if plan is not None:  # the tools go first in the (first) system message
        if out and out[0].role == "system":
            out[0] = ChatMessage(role="system", content=out[0].content + "\n\n" + plan.system_text)
        else:
            out.insert(0, ChatMessage(role="system", content=plan.system_text))
    return tuple(out)


def _tool_choice(body: ChatBody) -> str | None:
    choice = body.tool_choice
    return choice.function.name if isinstance(choice, NamedToolChoice) else choice


def prepare_chat(body: ChatBody, config: ServerConfig, *, remote: bool) -> Prepared:
    """The generation request for a chat body; ``remote`` backends get native tools."""
    tools = [(t.function.name, t.function.description, t.function.parameters) for t in body.tools or ()]
    choice = _tool_choice(body)
    if choice not in (None, "none", "auto", "required") and choice not in {n for n, _, _ in tools}:
        raise ApiError(400, f"tool_choice names {choice!r}, which is not among the tools", param="tool_choice")
    if choice == "required" and not tools:
        raise ApiError(400, "tool_choice 'required' needs tools", param="tool_choice")
    fields = _sampling(body, config)
    plan = None
    native: dict = {}
    fmt = _response_format(body.response_format)
    if (remote or fmt is not None) and tools and choice != "none":
        # Native tools: a remote backend's, or a local backend's own calls-or-answer grammar when the
        # answer has a format too (the text-or-call plan below has no place for one).
        specs = tuple(ToolSpec(name=n, description=d, parameters=p) for n, d, p in tools)
        if choice not in (None, "auto", "required"):  # one named tool: offer only it, and require it
            specs, choice = tuple(s for s in specs if s.name == choice), "required"
        native = {"tools": specs, "tool_choice": choice or "auto", "max_tool_calls": 1 if body.parallel_tool_calls is False else 4}
    else:
        plan = plan_local_tools(tools, choice)
    if fmt is not None and not remote:  # a schema no grammar can enforce is refused now (ToolDefinitionError: a 400)
        if native:
            decision_grammar(GenerationRequest(messages=(ChatMessage(role="user", content="-"),), response_format=fmt, **native))
        else:
            format_grammar(fmt)
    request = GenerationRequest(
        messages=_messages(body, plan), grammar=plan.grammar if plan else None, logprobs=body.logprobs, response_format=fmt,
        **fields, **native
    )
    return Prepared(request, plan, "chatcmpl-" + uuid.uuid4().hex, int(time.time()), body.model, body.include_usage)


def _response_format(given: ResponseFormatIn | None) -> ResponseFormat | None:
    if given is None or given.type == "text":
        return None
    if given.type == "json_object":
        return ResponseFormat(type="json_object")
    if given.json_schema is None or given.json_schema.schema_ is None:
        raise ApiError(400, "response_format json_schema needs json_schema.schema", param="response_format.json_schema")
    return ResponseFormat(type="json_schema", json_schema=given.json_schema.schema_, name=given.json_schema.name,
                          strict=given.json_schema.strict is not False)


def prepare_completion(body: CompletionBody, config: ServerConfig) -> Prepared:
    """The generation request for a text completion body (one prompt)."""
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise ApiError(400, "give exactly one prompt (a string, or a list holding one string)", param="prompt")
    if not prompts[0]:
        raise RequestError("the prompt must not be empty")
    request = GenerationRequest(prompt=prompts[0], logprobs=bool(body.logprobs), **_sampling(body, config))
    return Prepared(request, None, "cmpl-" + uuid.uuid4().hex, int(time.time()), body.model, body.include_usage)


def finish_reason(reason: str) -> str:
    """OpenAI has no ``cancelled``; a cancelled choice was cut short like a stop."""
    return "stop" if reason == "cancelled" else reason


def usage(completion: Completion) -> dict:
    t = completion.timings
    prompt = t.prefill_tokens + t.prefill_reused_tokens
    done = sum(c.tokens for c in completion.choices)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def chat_logprobs(logprobs: tuple[float, ...] | None, texts: tuple[str, ...] | None) -> dict | None:
    """OpenAI's chat ``logprobs`` object: each chosen token's text, its bytes and log-probability
    (``top_logprobs`` lists stay empty: alternatives are not computed)."""
    if logprobs is None:
        return None
    texts = texts if texts is not None and len(texts) == len(logprobs) else ("",) * len(logprobs)
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")), "top_logprobs": []}
                        for t, lp in zip(texts, logprobs, strict=True)]}


def text_logprobs(logprobs: tuple[float, ...] | None, texts: tuple[str, ...] | None) -> dict | None:
    """The ``/v1/completions`` ``logprobs`` object: tokens (as text) and their log-probabilities."""
    if logprobs is None:
        return None
    texts = texts if texts is not None and len(texts) == len(logprobs) else ("",) * len(logprobs)
    return {"tokens": list(texts), "token_logprobs": list(logprobs), "top_logprobs": None, "text_offset": None}


def route(completion: Completion) -> dict:
    """``{"route": {...}}`` when a router chose the backend (an extra field OpenAI clients keep)."""
    return {"route": completion.route.model_dump(mode="json")} if completion.route is not None else {}


def chat_response(prep: Prepared, completion: Completion) -> dict:
    """The ``chat.completion`` object for a finished request."""
    choices = []
    for c in completion.choices:
        if prep.plan is not None:
            content, calls, reason = read_choice(c.text, c.finish_reason, prep.plan)
        else:
            calls = [{"id": f.id, "type": "function", "function": {"name": f.name, "arguments": f.arguments}} for f in c.tool_calls]
            content, reason = (c.text or None) if calls else c.text, c.finish_reason
        message: dict = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": c.index, "message": message, "logprobs": chat_logprobs(c.logprobs, c.token_texts), "finish_reason": finish_reason(reason)})
    return {"id": prep.id, "object": "chat.completion", "created": prep.created, "model": prep.model,
            "choices": choices, "usage": usage(completion), **route(completion)}


def completion_response(prep: Prepared, completion: Completion) -> dict:
    """The ``text_completion`` object for a finished request."""
    choices = []
    for c in completion.choices:
        logprobs = text_logprobs(c.logprobs, c.token_texts)
        choices.append({"index": c.index, "text": c.text, "logprobs": logprobs, "finish_reason": finish_reason(c.finish_reason)})
    return {"id": prep.id, "object": "text_completion", "created": prep.created, "model": prep.model,
            "choices": choices, "usage": usage(completion), **route(completion)}

