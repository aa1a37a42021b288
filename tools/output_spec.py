"""A request's output needs (tools, ``response_format``) as text a model writes: for backends
without native tool calling. Pure code: no I/O.

A request says what it needs (``GenerationRequest.tools``/``tool_choice``/``response_format``);
each backend enforces it its own way. A local engine, and a llama.cpp server, constrain decoding
with a grammar made from the schemas; a server with neither native tools nor structured output
gets the schema in the prompt and its reply is checked strictly. Both read the same reply format,
one line of JSON (the format ``agents.prompting`` teaches small models with worked examples):

    {"calls": [{"name": "<tool>", "arguments": {...}}, ...]}     one to ``max_tool_calls`` calls
    {"answer": <the answer>}                                       text, or JSON of the response format

- ``decision_schema(request)``: that reply's JSON schema (``tool_choice="none"``: answer only;
  ``"required"``: calls only); ``decision_grammar`` its GBNF (``tools.grammar``, which refuses
  what it cannot enforce). A request with a response format and no tools gets the format's own
  grammar (``format_grammar``): the reply is the JSON itself, not wrapped.
- ``read_reply(text, request)``: the reply read back as ``(content, calls)``: calls become
  ``FunctionCall`` values (arguments as JSON text, checked later against the tool), the answer
  becomes the content (a text answer as is, a JSON answer as JSON text).
- ``text_messages(messages)``: a conversation in OpenAI's shape written as such a model reads it:
  an assistant's ``tool_calls`` become its ``{"calls": ...}`` line, the results of one turn's calls
  one tool message (``<tool> returned: ...`` or ``<tool> failed: ...``, then a reminder to answer).
- ``prompt_instructions(request)``: the format and schema in words, for servers that cannot be
  constrained.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import ToolCallError, ToolDefinitionError
from orchestrator.types import ChatMessage, Choice, FunctionCall, GenerationRequest, ResponseFormat
from tools.grammar import schema_to_gbnf

__all__ = [
    "FAILED_PREFIX",
    "JSON_OBJECT_GBNF",
    "NEXT_HINT",
    "answer_text_cap",
    "decision_grammar",
    "decision_schema",
    "format_grammar",
    "new_call_id",
    "prompt_instructions",
    "read_choice",
    "read_reply",
    "text_messages",
]

FAILED_PREFIX = "Error: "
"""How a tool message says that its call failed (``Error: <short reason>``)."""

# No JSON placeholder to copy: after 'reply {"answer": ...} now' smollm2-135m copied the "...", and forced
# into a string by the answer grammar it ran into "1041.000..." (agents.answers has the measurements).
NEXT_HINT = "If this answers the request, answer the user now, in words."

# Any JSON object (``response_format={"type": "json_object"}``): llama.cpp's json grammar, with
# the same whitespace and string rules as ``tools.grammar``. Nesting is not bounded; the token limit is.
JSON_OBJECT_GBNF = r"""root ::= object
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" char* "\""
number ::= "-"? ( "0" | [1-9] [0-9]{0,14} ) ( "." [0-9]{1,15} )?
char ::= [^"\\\x00-\x1F\x7F] | "\\" ["\\/nrt]
ws ::= | " " | "\n" " "{0,12}
"""


def answer_text_cap(request: GenerationRequest) -> int:
    """How many characters a text answer may take: all the tokens but a few for the JSON around it,
    even at one character per token (a reply cut by the token limit is not JSON)."""
    return max(32, request.max_tokens - 16)


def decision_schema(request: GenerationRequest) -> dict[str, Any]:
    """The JSON schema of a reply to ``request`` (which offers tools): ``{"anyOf": [calls, answer]}``,
    or one of them under ``tool_choice`` ``"required"`` / ``"none"``."""
    if not request.tools:
        raise ToolDefinitionError("the calls-or-answer format needs tools; use format_grammar for a response format alone")
    answer = {"type": "object", "properties": {"answer": _answer_schema(request)}, "required": ["answer"], "additionalProperties": False}
    if request.tool_choice == "none":
        return answer
    call = {
        "anyOf": [
            {"type": "object", "properties": {"name": {"const": t.name}, "arguments": _object_schema(t.parameters)},
             "required": ["name", "arguments"], "additionalProperties": False}
            for t in request.tools
        ]
    }
    calls = {"type": "object", "properties": {"calls": {"type": "array", "items": call, "minItems": 1, "maxItems": request.max_tool_calls}},
             "required": ["calls"], "additionalProperties": False}
    return calls if request.tool_choice == "required" else {"anyOf": [calls, answer]}


def _object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's arguments schema as the grammar needs it (a tool without arguments lists none)."""
    if parameters.get("type") == "object" and "properties" not in parameters and "$ref" not in parameters:
        return {**parameters, "properties": {}}
    return parameters


def _answer_schema(request: GenerationRequest) -> dict[str, Any]:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return {"type": "string", "minLength": 1, "maxLength": answer_text_cap(request)}
    if fmt.type == "json_object":
        raise ToolDefinitionError("a json_object answer next to tools cannot be constrained; give a json_schema")
    assert fmt.json_schema is not None
    return fmt.json_schema


def decision_grammar(request: GenerationRequest) -> str:
    """GBNF for a reply to ``request`` in the calls-or-answer format; ``ToolDefinitionError`` when
    a schema cannot be enforced by a grammar."""
    return schema_to_gbnf(decision_schema(request))


def format_grammar(fmt: ResponseFormat | None) -> str | None:
    """GBNF for a reply in ``fmt`` alone (no tools): None for text, any JSON object, or one value
    of the schema (``ToolDefinitionError`` when a grammar cannot enforce it)."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return JSON_OBJECT_GBNF
    assert fmt.json_schema is not None
    return schema_to_gbnf(fmt.json_schema)


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def read_reply(text: str, request: GenerationRequest) -> tuple[str, tuple[FunctionCall, ...]]:
    """``(content, calls)`` of a reply in the calls-or-answer format. ``ToolCallError`` with a
    short reason (fit for the model) when it is not that format; the calls' arguments are not
    checked against their tools here (the caller does, with the tool)."""
    data = _json(text)
    if not isinstance(data, dict) or len(data) != 1 or not ({"calls", "answer"} & set(data)):
        raise ToolCallError('reply with {"calls": [...]} or {"answer": ...}')
    if "answer" in data:
        if request.tool_choice == "required":
            raise ToolCallError('a tool call is required: reply {"calls": [...]}')
        answer = data["answer"]
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            if not isinstance(answer, str):
                raise ToolCallError('"answer" must be a string')
            return answer, ()
        return json.dumps(answer, ensure_ascii=False), ()
    if request.tool_choice == "none":
        raise ToolCallError('no tool may be called now: reply {"answer": ...}')
    calls = data["calls"]
    if not isinstance(calls, list) or not 1 <= len(calls) <= request.max_tool_calls:
        raise ToolCallError(f'"calls" must be a list of 1 to {request.max_tool_calls} calls')
    names = {t.name for t in request.tools}
    out = []
    for call in calls:
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            raise ToolCallError('each call must be {"name": ..., "arguments": {...}}')
        if call["name"] not in names:
            raise ToolCallError(f"unknown tool {str(call['name'])[:64]!r}; the tools are {', '.join(sorted(names))}")
        if not isinstance(call["arguments"], dict):
            raise ToolCallError("arguments must be a JSON object", tool=call["name"])
        out.append(FunctionCall(id=new_call_id(), name=call["name"], arguments=json.dumps(call["arguments"], ensure_ascii=False)))
    return "", tuple(out)


def read_choice(choice: Choice, request: GenerationRequest) -> Choice:
    """A generated choice with its calls-or-answer text read back: calls in ``tool_calls`` (finish
    reason ``tool_calls``), the answer as its text. A reply that cannot be read (cut by the token
    limit, or wrong) is kept as it is, for the caller to check and send back."""
    try:
        content, calls = read_reply(choice.text, request)
    except ToolCallError:
        return choice
    return choice.model_copy(update={"text": content, "tool_calls": calls, "finish_reason": "tool_calls" if calls else choice.finish_reason})


def _json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ToolCallError(f"the reply is not valid JSON ({exc})") from None


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def text_messages(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    """``messages`` as a model without native tool calling reads them (see the module docstring).
    Messages without tool calls or results are kept as they are."""
    names: dict[str, str] = {}
    out: list[ChatMessage] = []
    results: list[str] = []
    for m in messages:
        if m.role == "tool" and (m.tool_call_id is not None or m.name is not None):
            name = m.name or names.get(m.tool_call_id or "", "tool")
            if m.content.startswith(FAILED_PREFIX):
                results.append(f"{name} failed: {m.content[len(FAILED_PREFIX):]}")
            else:
                results.append(f"{name} returned: {m.content}")
            continue
        if results:  # the results of one turn's calls, as one message
            out.append(ChatMessage(role="tool", content="\n".join([*results, NEXT_HINT])))
            results = []
        if m.tool_calls:
            names.update((c.id, c.name) for c in m.tool_calls)
            line = json.dumps({"calls": [{"name": c.name, "arguments": _arguments(c.arguments)} for c in m.tool_calls]}, ensure_ascii=False)
            out.append(ChatMessage(role="assistant", content=f"{m.content} {line}" if m.content else line))
        else:
            out.append(m)
    if results:
        out.append(ChatMessage(role="tool", content="\n".join([*results, NEXT_HINT])))
    return tuple(out)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return text  # shown as the model wrote it


def prompt_instructions(request: GenerationRequest) -> str | None:
    """The output format in words, with its JSON schema, for a server that cannot be constrained
    (None when the request needs nothing but text)."""
    if request.tools:
        schema = json.dumps(decision_schema(request), ensure_ascii=False, separators=(",", ":"))
        return ('Reply with one line of JSON only: {"calls": [{"name": ..., "arguments": {...}}]} to call tools, '
                f'or {{"answer": ...}}. The reply must match this JSON schema: {schema}')
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "Reply with one JSON object only, no other text."
    schema = json.dumps(fmt.json_schema, ensure_ascii=False, separators=(",", ":"))
    return f"Reply with JSON only, matching this JSON schema: {schema}"
