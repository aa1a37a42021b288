"""OpenAI request bodies to ``GenerationRequest`` values, and completions back to OpenAI JSON.

Defaults follow OpenAI's API: ``temperature`` 1 and ``top_p`` 1 unless given; ``max_tokens``
(or ``max_completion_tokens``) defaults to the server's setting and is capped by it. A backend
whose ``location`` is ``"remote"`` gets the tools natively (``GenerationRequest.tools``); any
other gets them through a grammar (``local_tools``). Pure code: no I/O.
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
)
from orchestrator.types import (
    ChatMessage,
    Choice,
    Completion,
    GenerationRequest,
    SamplingParams,
    ToolSpec,
)

__all__ = ["Prepared", "chat_response", "completion_response", "finish_reason", "prepare_chat", "prepare_completion", "route", "usage"]


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
    sampling = SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
    )
    return {"max_tokens": asked or config.max_tokens, "stop": stop, "sampling": sampling, "n": body.n}


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
    """The conversation as ``ChatMessage`` values: ``developer`` is a system message, earlier
    assistant calls are written back as the model writes them, tool results are ``tool`` turns."""
    names: dict[str, str] = {}
    out: list[ChatMessage] = []
    for i, m in enumerate(body.messages):
        text = _text(m, i)
        if m.role == "assistant" and m.tool_calls:
            for call in m.tool_calls:
                names[call.id] = call.function.name
            text = text + "".join(render_call(c.function.name, c.function.arguments) for c in m.tool_calls)
        name = names.get(m.tool_call_id or "") if m.role == "tool" else m.name
        role = "system" if m.role == "developer" else m.role
        out.append(ChatMessage(role=role, content=text, name=name))
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
    if remote and tools and choice != "none":
        specs = tuple(ToolSpec(name=n, description=d, parameters=p) for n, d, p in tools)
        if choice not in (None, "auto", "required"):  # one named tool: offer only it, and require it
            specs, choice = tuple(s for s in specs if s.name == choice), "required"
        native = {"tools": specs, "tool_choice": choice or "auto"}
    else:
        plan = plan_local_tools(tools, choice)
    request = GenerationRequest(
        messages=_messages(body, plan), grammar=plan.grammar if plan else None, logprobs=body.logprobs, **fields, **native
    )
    return Prepared(request, plan, "chatcmpl-" + uuid.uuid4().hex, int(time.time()), body.model, body.include_usage)


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


def _chat_logprobs(choice: Choice) -> dict | None:
    if choice.logprobs is None:
        return None
    ids = choice.token_ids if len(choice.token_ids) == len(choice.logprobs) else (None,) * len(choice.logprobs)
    # The backend gives log-probabilities and token ids, not token strings: ``token`` holds the id.
    return {"content": [{"token": "" if i is None else str(i), "logprob": lp, "bytes": None, "top_logprobs": []}
                        for i, lp in zip(ids, choice.logprobs, strict=True)]}


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
        choices.append({"index": c.index, "message": message, "logprobs": _chat_logprobs(c), "finish_reason": finish_reason(reason)})
    return {"id": prep.id, "object": "chat.completion", "created": prep.created, "model": prep.model,
            "choices": choices, "usage": usage(completion), **route(completion)}


def completion_response(prep: Prepared, completion: Completion) -> dict:
    """The ``text_completion`` object for a finished request."""
    choices = []
    for c in completion.choices:
        logprobs = None
        if c.logprobs is not None:
            logprobs = {"tokens": [str(i) for i in c.token_ids], "token_logprobs": list(c.logprobs), "top_logprobs": None, "text_offset": None}
        choices.append({"index": c.index, "text": c.text, "logprobs": logprobs, "finish_reason": finish_reason(c.finish_reason)})
    return {"id": prep.id, "object": "text_completion", "created": prep.created, "model": prep.model,
            "choices": choices, "usage": usage(completion), **route(completion)}

