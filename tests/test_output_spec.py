"""A request's output needs (tools, response_format) and OpenAI's message shape, on plain data:
the calls-or-answer format for models without native tools, and the wire body of each output mode."""

from __future__ import annotations

import json

import pytest

from orchestrator.backends.openai_wire import request_body
from orchestrator.errors import ConfigError, ToolCallError, ToolDefinitionError
from orchestrator.types import ChatMessage, FunctionCall, GenerationRequest, ResponseFormat, ToolSpec
from tools.output_spec import (
    JSON_OBJECT_GBNF,
    NEXT_HINT,
    decision_grammar,
    decision_schema,
    format_grammar,
    prompt_instructions,
    read_reply,
    text_messages,
)

pytestmark = pytest.mark.timeout(30)

WEATHER = ToolSpec(name="get_weather", description="Weather in a city.",
                   parameters={"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]})
CLOCK = ToolSpec(name="now", description="The time.", parameters={"type": "object", "properties": {}})
CITY = ResponseFormat(type="json_schema", json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                                                      "additionalProperties": False})
USER = (ChatMessage(role="user", content="Weather in Paris?"),)
CALL = FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
HISTORY = (
    *USER,
    ChatMessage(role="assistant", tool_calls=(CALL, FunctionCall(id="call_2", name="now", arguments="{}"))),
    ChatMessage(role="tool", tool_call_id="call_1", content="18 C"),
    ChatMessage(role="tool", tool_call_id="call_2", content="Error: clock broken"),
)


def ask(**fields) -> GenerationRequest:
    return GenerationRequest(messages=fields.pop("messages", USER), **fields)


def test_messages_carry_openai_tool_fields_only_where_they_belong():
    assert HISTORY[1].tool_calls[0].name == "get_weather" and HISTORY[2].tool_call_id == "call_1"
    with pytest.raises(ValueError, match="only assistant"):
        ChatMessage(role="user", content="x", tool_calls=(CALL,))
    with pytest.raises(ValueError, match="only tool"):
        ChatMessage(role="assistant", content="x", tool_call_id="call_1")
    with pytest.raises(ValueError, match="json_schema exactly"):
        ResponseFormat(type="json_schema")
    with pytest.raises(ValueError, match="local-only"):
        ask(grammar='root ::= "a"', tools=(WEATHER,))


def test_the_decision_schema_follows_tool_choice():
    both = decision_schema(ask(tools=(WEATHER, CLOCK), max_tool_calls=2))
    calls, answer = both["anyOf"]
    assert calls["properties"]["calls"]["maxItems"] == 2 and answer["required"] == ["answer"]
    assert decision_schema(ask(tools=(WEATHER,), tool_choice="none")) == answer
    assert "answer" not in json.dumps(decision_schema(ask(tools=(WEATHER,), tool_choice="required")))
    typed = decision_schema(ask(tools=(WEATHER,), response_format=CITY))
    assert typed["anyOf"][1]["properties"]["answer"] == CITY.json_schema
    assert '"\\"get_weather\\""' in decision_grammar(ask(tools=(WEATHER,)))
    with pytest.raises(ToolDefinitionError, match="json_object"):
        decision_schema(ask(tools=(WEATHER,), response_format=ResponseFormat(type="json_object")))


def test_a_response_format_alone_has_its_own_grammar():
    assert format_grammar(None) is None and format_grammar(ResponseFormat()) is None
    assert format_grammar(ResponseFormat(type="json_object")) == JSON_OBJECT_GBNF
    assert '"\\"city\\""' in (format_grammar(CITY) or "")
    with pytest.raises(ToolDefinitionError, match="pattern"):
        format_grammar(ResponseFormat(type="json_schema", json_schema={"type": "string", "pattern": "a+"}))


def test_replies_are_read_back_as_calls_or_content():
    request = ask(tools=(WEATHER, CLOCK))
    content, calls = read_reply('{"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "now", "arguments": {}}]}', request)
    assert content == "" and [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"}), ("now", {})]
    assert len({c.id for c in calls}) == 2
    assert read_reply('{"answer": "Sunny."}', request) == ("Sunny.", ())
    assert read_reply('{"answer": {"city": "Rome"}}', ask(tools=(WEATHER,), response_format=CITY)) == ('{"city": "Rome"}', ())
    for bad, why in [("Sunny", "not valid JSON"), ('{"calls": []}', "1 to 4"), ('{"calls": [{"name": "x", "arguments": {}}]}', "unknown tool"),
                     ('{"answer": 3}', "must be a string"), ('{"answer": "a", "calls": []}', "reply with")]:
        with pytest.raises(ToolCallError, match=why):
            read_reply(bad, request)
    with pytest.raises(ToolCallError, match="required"):
        read_reply('{"answer": "x"}', ask(tools=(WEATHER,), tool_choice="required"))


def test_a_conversation_with_tool_calls_written_as_text():
    out = text_messages(HISTORY)
    assert [m.role for m in out] == ["user", "assistant", "tool"]
    assert json.loads(out[1].content) == {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "now", "arguments": {}}]}
    assert out[2].content.splitlines() == ["get_weather returned: 18 C", "now failed: clock broken", NEXT_HINT]
    assert text_messages(USER) == USER


def test_native_body_keeps_openai_shape():
    request = ask(messages=HISTORY, tools=(WEATHER,), max_tool_calls=1, response_format=CITY)
    path, body = request_body(request, model="m", stream=False, llama_cpp_extras=False)
    assert path == "chat/completions" and body["parallel_tool_calls"] is False and body["tool_choice"] == "auto"
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}
    assert body["messages"][2] == {"role": "tool", "content": "18 C", "tool_call_id": "call_1"}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": CITY.json_schema, "strict": True}}
    with pytest.raises(ConfigError, match="tool_call_id"):
        request_body(ask(messages=(*USER, ChatMessage(role="tool", content="x"))), model="m", stream=False, llama_cpp_extras=False)


def test_grammar_and_prompt_bodies_write_the_conversation_as_text():
    request = ask(messages=HISTORY, tools=(WEATHER,))
    _, grammar = request_body(request, model="m", stream=False, llama_cpp_extras=True, output="grammar")
    assert grammar["grammar"] == decision_grammar(request) and "tools" not in grammar
    assert [m["role"] for m in grammar["messages"]] == ["user", "assistant", "user"]
    _, prompted = request_body(request, model="m", stream=False, llama_cpp_extras=False, output="prompt")
    assert "tools" not in prompted and "grammar" not in prompted
    assert prompted["messages"][0] == {"role": "system", "content": prompt_instructions(request)}
    with pytest.raises(ConfigError, match="llama_cpp_extras"):
        request_body(request, model="m", stream=False, llama_cpp_extras=False, output="grammar")
