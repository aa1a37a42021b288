"""Value objects shared by every part of the orchestrator.

They are frozen pydantic models: safe to pass between threads, to log and to
store as JSON. Requests are validated when they are built, so a bad request
fails in the caller's code, not in the engine's worker thread.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatMessage",
    "Choice",
    "Completion",
    "DraftCounts",
    "DraftSource",
    "FinishReason",
    "FunctionCall",
    "GenerationRequest",
    "ResponseFormat",
    "RouteDecision",
    "RouteStep",
    "SamplingParams",
    "SpeculativeMode",
    "SpeculativeStats",
    "Timings",
    "TokenDelta",
    "ToolSpec",
]

FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]
SpeculativeMode = Literal["off", "prompt-lookup", "draft", "auto"]
DraftSource = Literal["prompt", "history", "draft"]

_MAX_STOP_STRINGS = 16
_MAX_STOP_CHARS = 256


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplingParams(_Frozen):
    """How the next token is chosen. ``temperature == 0`` is greedy."""

    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_k: int = Field(0, ge=0, description="0 keeps every token")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    min_p: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int | None = Field(None, ge=0, lt=2**32 - 1)
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)
    repeat_last_n: int = Field(64, ge=0, le=4096)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class FunctionCall(_Frozen):
    """A tool call a backend returned. ``arguments`` is the JSON text as the model wrote it:
    validate it (``tools.validate_arguments``) before running anything."""

    id: str
    name: str
    arguments: str


class ChatMessage(_Frozen):
    """One message of a conversation, in OpenAI's shape: an assistant message may carry the
    ``tool_calls`` it made (its ``content`` may then be empty), and a ``tool`` message answers one
    of them by ``tool_call_id`` (``name``: the tool's name, kept for backends that show results
    as text). Each backend writes the conversation in its own tier's shape (see
    ``tools.output_spec`` for models that read tool calls as text)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    name: str | None = None
    tool_calls: tuple[FunctionCall, ...] = Field((), max_length=128)
    tool_call_id: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _check(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("only tool messages carry a tool_call_id")
        return self


class ToolSpec(_Frozen):
    """A tool offered to a model: its name, what it does and its arguments' JSON schema.

    Backends enforce calls their own way: a local model (and a llama.cpp server) through a
    grammar made from the schemas, an OpenAI-compatible server natively (``tools``), a server
    with neither through the prompt and strict validation (see ``GenerationRequest``).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ResponseFormat(_Frozen):
    """What the text of a reply must be: free ``text``, any JSON object (``json_object``), or one
    JSON value of ``json_schema`` (OpenAI's ``response_format``; ``name`` and ``strict`` are sent
    to servers that take them). A local model enforces it with a grammar made from the schema
    (``tools.grammar``), so the schema must be one a grammar can enforce."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict | None = None
    name: str = Field("output", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    strict: bool = True

    @model_validator(mode="after")
    def _check(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("give json_schema exactly when type is 'json_schema'")
        return self


class GenerationRequest(_Frozen):
    """One generation: a raw ``prompt`` or chat ``messages`` (exactly one of them).

    ``n`` asks for several completions of the same prompt; they are decoded
    in one batch and share the prompt's KV cache.

    The request says what output it needs, not how to enforce it: ``tools`` (with
    ``tool_choice``, at most ``max_tool_calls`` calls in one reply) and/or ``response_format``.
    Each backend enforces them its own way and returns calls in ``Choice.tool_calls`` and the
    rest as text. ``grammar`` is a raw GBNF constraint, a local-only option (local engines and
    llama.cpp servers), not combined with tools or a response format.

    ``user`` names the tenant the request speaks for (OpenAI's ``user`` field). A local engine
    keeps a bounded index of each tenant's recent requests and, with ``speculative`` set to
    ``"prompt-lookup"`` or ``"auto"``, drafts from the tenant's own earlier text too (as exact as
    before: the target model still decides every token). Without it a request drafts only from
    its own text and leaves none behind: one tenant's text never drafts for another's. It is
    not sent to remote servers.
    """

    prompt: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    sampling: SamplingParams = SamplingParams()
    stop: tuple[str, ...] = ()
    grammar: str | None = Field(None, max_length=1_000_000)
    n: int = Field(1, ge=1, le=64)
    speculative: SpeculativeMode = "off"
    logprobs: bool = Field(False, description="return each generated token's log-probability (raw model distribution)")
    tools: tuple[ToolSpec, ...] = Field((), max_length=128)
    tool_choice: Literal["auto", "required", "none"] = "auto"
    max_tool_calls: int = Field(4, ge=1, le=64, description="most tool calls in one reply (1: no parallel calls)")
    response_format: ResponseFormat | None = None
    user: str | None = Field(None, min_length=1, max_length=256, description="tenant key: requests with the same one share drafts")

    @model_validator(mode="after")
    def _check(self) -> GenerationRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.messages is not None and not self.messages:
            raise ValueError("messages must not be empty")
        if self.grammar is not None and (self.tools or self.response_format is not None):
            raise ValueError("a raw grammar is a local-only option: give it alone, not with tools or response_format")
        if self.tools and self.prompt is not None:
            raise ValueError("tools need chat messages, not a raw prompt")
        if len({t.name for t in self.tools}) != len(self.tools):
            raise ValueError("tool names must be distinct")
        if len(self.stop) > _MAX_STOP_STRINGS:
            raise ValueError(f"at most {_MAX_STOP_STRINGS} stop strings")
        if any(not s or len(s) > _MAX_STOP_CHARS for s in self.stop):
            raise ValueError(f"stop strings must have 1 to {_MAX_STOP_CHARS} characters")
        return self


class TokenDelta(_Frozen):
    """A piece of streamed text for choice ``index`` (may hold several tokens' text). When the
    request asked for log-probabilities, ``logprobs`` holds those of the tokens decoded since the
    previous delta and ``token_texts`` their text (local engines; remote servers that send them)."""

    index: int
    text: str
    logprobs: tuple[float, ...] | None = None
    token_texts: tuple[str, ...] | None = None


class Timings(_Frozen):
    """What one request cost. Durations in seconds, rates in tokens per second.

    ``prefill_tokens`` were computed; ``prefill_reused_tokens`` came from KV
    cache already holding the same prefix. ``cpu_s`` and ``energy_j`` are the
    request's share of the engine's steps it took part in; ``energy_source``
    says whether energy was read from the OS (``rapl``) or estimated.
    """

    queue_s: float = 0.0
    ttft_s: float = 0.0
    prefill_tokens: int = 0
    prefill_reused_tokens: int = 0
    prefill_tok_s: float = 0.0
    decode_tokens: int = 0
    decode_tok_s: float = 0.0
    total_s: float = 0.0
    cpu_s: float = 0.0
    energy_j: float = 0.0
    energy_source: Literal["rapl", "estimate", "none"] = "none"


class DraftCounts(_Frozen):
    """Tokens one source drafted for a request, and how many of them the target accepted."""

    drafted: int = 0
    accepted: int = 0


class SpeculativeStats(_Frozen):
    """How speculation went for one request (all its choices together).

    ``drafted`` tokens were proposed, ``accepted`` of them matched what the
    target model chose itself; ``target_steps`` counts the target decode steps
    that produced the request's tokens. ``sources`` splits drafted and accepted
    by where the drafts came from: ``prompt`` (lookup in the request's own text),
    ``history`` (lookup in the tenant's earlier requests, see
    ``GenerationRequest.user``), ``draft`` (the draft model); a source that
    drafted nothing is absent. ``note`` says why speculation was off or switched
    itself off, when it was.
    """

    mode: SpeculativeMode
    drafted: int = 0
    accepted: int = 0
    target_steps: int = 0
    tokens: int = 0
    note: str | None = None
    sources: dict[DraftSource, DraftCounts] = Field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_step(self) -> float:
        return self.tokens / self.target_steps if self.target_steps else 0.0


class Choice(_Frozen):
    index: int
    text: str
    tokens: int
    finish_reason: FinishReason
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    tool_calls: tuple[FunctionCall, ...] = ()
    token_texts: tuple[str, ...] | None = None  # each logprob's token as text, when the backend knows it


class RouteStep(_Frozen):
    """What one routing policy (or the router itself) said about a request: ``pick`` a backend,
    ``forbid`` some, ``pass``; at run time also ``escalate``, ``fallback``, ``keep``, ``hedge``."""

    policy: str
    action: Literal["pick", "forbid", "pass", "escalate", "fallback", "keep", "hedge"]
    reason: str
    backend: str | None = None
    forbidden: tuple[str, ...] = ()


class RouteDecision(_Frozen):
    """Where a request went and why: ``backend`` chosen by ``policy`` for ``reason``; ``trail`` holds
    every step in order. ``fallbacks`` are the other allowed backends, in order; ``escalate_to`` is
    set when a cascade runs ``backend`` first and escalates below ``escalate_below`` confidence
    (or when one token's probability is below ``escalate_token_below``). ``data_classes`` names the
    private data found (never the data itself)."""

    backend: str
    policy: str
    reason: str
    trail: tuple[RouteStep, ...] = ()
    fallbacks: tuple[str, ...] = ()
    data_classes: tuple[str, ...] = ()
    escalate_to: str | None = None
    escalate_below: float | None = None
    escalate_token_below: float = 0.0


class Completion(_Frozen):
    """The result of one request. ``text``/``tokens``/``finish_reason`` mirror choice 0."""

    model: str
    choices: tuple[Choice, ...]
    timings: Timings = Timings()
    speculative: SpeculativeStats | None = None
    route: RouteDecision | None = None

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def tokens(self) -> int:
        return self.choices[0].tokens

    @property
    def finish_reason(self) -> FinishReason:
        return self.choices[0].finish_reason
