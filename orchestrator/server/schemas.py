"""The OpenAI request bodies the server accepts, as pydantic models with per-field caps.

Fields not read here are decided per field by ``orchestrator.server.fields`` (ignored when they
cannot change the output, such as ``metadata``; else a 400); the fields below are checked strictly enough that every accepted body
maps to a valid ``GenerationRequest`` or gets a 400 naming the field. Types are strict, as
OpenAI's are: ``"max_tokens": "10"``, ``10.0`` or ``true`` is refused, and so is ``"stream": "yes"``
(a lax reading would turn it into true). The tools' parameter schemas are bounded in depth and
size before anything walks them (see ``MAX_TOOL_SCHEMA_CONTAINERS``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.nesting import nesting_problem
from tools.schema import MAX_SCHEMA_JSON_DEPTH

__all__ = [
    "MAX_CONTENT_CHARS",
    "MAX_EMBED_INPUTS",
    "MAX_MESSAGES",
    "MAX_TOOLS",
    "ChatBody",
    "ChatMessageIn",
    "CompletionBody",
    "ContentPart",
    "EmbeddingBody",
    "FunctionCallIn",
    "FunctionDef",
    "JsonSchemaIn",
    "MAX_TOOL_SCHEMA_CONTAINERS",
    "NamedToolChoice",
    "ResponseFormatIn",
    "ToolCallIn",
    "ToolDef",
]

MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 200_000
MAX_TOOLS = 64
MAX_TOOL_SCHEMA_CONTAINERS = 1_000
"""JSON objects and lists in all the tools' parameter schemas of one request together: checking
a schema costs time for each (about 0.6 ms on a busy 2-core machine), on the server's event loop."""


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, strict=True)


class ContentPart(_In):
    type: str = Field(max_length=64)
    text: str | None = Field(None, max_length=MAX_CONTENT_CHARS)


class FunctionCallIn(_In):
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field("{}", max_length=MAX_CONTENT_CHARS)


class ToolCallIn(_In):
    id: str = Field("", max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_In):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = Field(None, max_length=MAX_CONTENT_CHARS)
    name: str | None = Field(None, max_length=64)
    tool_calls: list[ToolCallIn] | None = Field(None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(None, max_length=128)


class FunctionDef(_In):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=4096)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolDef(_In):
    type: Literal["function"]
    function: FunctionDef


class _NamedFunction(_In):
    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(_In):
    type: Literal["function"]
    function: _NamedFunction


class JsonSchemaIn(_In):
    name: str = Field("output", min_length=1, max_length=64)
    description: str | None = Field(None, max_length=4096)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _bounded_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None and nesting_problem(schema, max_depth=MAX_SCHEMA_JSON_DEPTH, max_containers=MAX_TOOL_SCHEMA_CONTAINERS):
            raise ValueError(f"the response format's schema may nest at most {MAX_SCHEMA_JSON_DEPTH} levels deep "
                             f"and hold at most {MAX_TOOL_SCHEMA_CONTAINERS} objects and lists")
        return schema


class ResponseFormatIn(_In):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None


class _Sampling(_In):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**32 - 1)
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = Field(None, max_length=16)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # llama.cpp's own sampling fields, honoured
    top_k: int | None = Field(None, ge=0, le=100_000)
    min_p: float | None = Field(None, ge=0.0, lt=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    # the tenant the request speaks for: local speculation drafts from that tenant's earlier text only
    user: str | None = Field(None, max_length=256)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.get("include_usage") is True)


class ChatBody(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[ToolDef] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatIn | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("tools")
    @classmethod
    def _bounded_schemas(cls, tools: list[ToolDef] | None) -> list[ToolDef] | None:
        schemas = [t.function.parameters for t in tools or ()]
        # The list adds one level and one container to what the schemas hold.
        if nesting_problem(schemas, max_depth=MAX_SCHEMA_JSON_DEPTH + 1, max_containers=MAX_TOOL_SCHEMA_CONTAINERS + 1):
            raise ValueError(f"the tools' parameter schemas may nest at most {MAX_SCHEMA_JSON_DEPTH} levels deep "
                             f"and hold at most {MAX_TOOL_SCHEMA_CONTAINERS} objects and lists in all")
        return tools


class CompletionBody(_Sampling):
    """``POST /v1/completions`` (one text prompt; token-id prompts are refused)."""

    prompt: str | list[str] = Field(max_length=MAX_CONTENT_CHARS)
    logprobs: int | None = Field(None, ge=0, le=5)


MAX_EMBED_INPUTS = 2048


class EmbeddingBody(_In):
    """``POST /v1/embeddings`` (text inputs; token-id inputs are refused)."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
