"""``serve`` with the official ``openai`` client: tool calls round-trip (OpenAI's message shape to a
strict upstream and back), ``response_format`` is honoured or refused (never ignored), fields the
server cannot honour are refused, embeddings and health, and log-probabilities with token text,
also in streamed chunks. Served: the embedded smollm2-135m and a strict fake OpenAI server
behind a ``RemoteBackend``; no mocks of our own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from orchestrator.backends import LocalBackend, RemoteBackend, RemoteEndpoint
from orchestrator.backends.retry import Retry
from orchestrator.server import BackgroundServer, ServerConfig
from tests.strict_openai import Reply, StrictOpenAI

pytestmark = [pytest.mark.model, pytest.mark.timeout(240)]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]},
    },
}
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 30}},
        "required": ["city", "country"], "additionalProperties": False}
USER = [{"role": "user", "content": "What is the weather in Paris and in Rome?"}]


def _script(body: dict[str, Any]) -> Reply:
    """Calls the weather tool twice, natively; once the results are in, answers (or writes JSON when asked)."""
    if body.get("response_format"):
        return Reply(content=json.dumps({"city": "Paris", "country": "France"}))
    if body["messages"][-1]["role"] == "tool":
        return Reply(content="Paris: rain. Rome: sun.")
    return Reply(calls=(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})))


@pytest.fixture(scope="module")
def served(smollm2: Any) -> Iterator[tuple[openai.OpenAI, StrictOpenAI, str]]:
    with StrictOpenAI(_script) as fake:
        cloud = RemoteBackend(RemoteEndpoint(base_url=fake.url, model="strict-gpt", name="cloud", retry=Retry(attempts=1)))
        with BackgroundServer({"small": LocalBackend(smollm2), "cloud": cloud}, ServerConfig(port=0)) as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
            try:
                yield client, fake, server.url
            finally:
                client.close()


def _history(reply: Any) -> list[dict[str, Any]]:
    """The conversation after the model's calls, with a result for each, as a client sends it."""
    message = reply.choices[0].message
    calls = [c.model_dump() for c in message.tool_calls]
    results = [{"role": "tool", "tool_call_id": c.id, "content": f"{json.loads(c.function.arguments)['city']}: 18 C"} for c in message.tool_calls]
    return [*USER, {"role": "assistant", "content": message.content, "tool_calls": calls}, *results]


def test_tool_calls_round_trip_to_a_strict_upstream(served: Any) -> None:
    client, fake, _ = served
    first = client.chat.completions.create(model="cloud", messages=USER, tools=[WEATHER])
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    second = client.chat.completions.create(model="cloud", messages=_history(first), tools=[WEATHER])
    assert second.choices[0].message.content == "Paris: rain. Rome: sun." and fake.rejected == []
    upstream = fake.requests[-1]["messages"]  # the upstream saw the same ids, in OpenAI's shape
    assert [c["id"] for c in upstream[1]["tool_calls"]] == [c.id for c in calls] == [m["tool_call_id"] for m in upstream[2:]]
    streamed = list(client.chat.completions.create(model="cloud", messages=USER, tools=[WEATHER], stream=True))
    pieces = [tc for chunk in streamed for choice in chunk.choices for tc in (choice.delta.tool_calls or [])]
    assert [(p.index, json.loads(p.function.arguments)) for p in pieces] == [(0, {"city": "Paris"}), (1, {"city": "Rome"})]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_tool_calls_round_trip_on_the_local_model(served: Any) -> None:
    client, _, _ = served
    first = client.chat.completions.create(model="small", messages=USER, tools=[WEATHER], tool_choice="required", max_tokens=40, temperature=0)
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    second = client.chat.completions.create(model="small", messages=_history(first), tools=[WEATHER], tool_choice="none", max_tokens=16)
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


def test_response_format_is_honoured_or_refused(served: Any) -> None:
    client, fake, _ = served
    fmt = {"type": "json_schema", "json_schema": {"name": "place", "schema": CITY, "strict": True}}
    local = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Name a city and its country."}],
                                           response_format=fmt, max_tokens=60, temperature=0)
    assert set(json.loads(local.choices[0].message.content)) <= {"city", "country"} and "city" in json.loads(local.choices[0].message.content)
    anything = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Describe a cat as JSON."}],
                                              response_format={"type": "json_object"}, max_tokens=30, temperature=0)
    assert anything.choices[0].message.content.lstrip().startswith("{")
    remote = client.chat.completions.create(model="cloud", messages=USER, response_format=fmt)
    assert json.loads(remote.choices[0].message.content) == {"city": "Paris", "country": "France"}
    assert fake.requests[-1]["response_format"] == fmt and fake.rejected == []  # passed on natively, unchanged
    with pytest.raises(openai.BadRequestError, match="pattern"):  # a schema no grammar can enforce is a 400, never ignored
        client.chat.completions.create(model="small", messages=USER, max_tokens=8,
                                       response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}})
    # Tools and a format together, on a local model: its calls-or-answer grammar; either way the reply holds to them.
    both = client.chat.completions.create(model="small", messages=USER, tools=[WEATHER], response_format=fmt, max_tokens=200, temperature=0)
    message = both.choices[0].message
    if message.tool_calls:
        assert {c.function.name for c in message.tool_calls} == {"get_weather"} and both.choices[0].finish_reason == "tool_calls"
    else:
        assert set(json.loads(message.content)) == {"city", "country"}
    with pytest.raises(openai.BadRequestError, match="json_object"):
        client.chat.completions.create(model="small", messages=USER, tools=[WEATHER], response_format={"type": "json_object"}, max_tokens=8)


def test_fields_that_would_change_the_output_are_refused(served: Any) -> None:
    client, _, _ = served
    ok = client.chat.completions.create(model="small", messages=USER, max_tokens=2, user="u-1", metadata={"k": "v"}, extra_body={"top_k": 1})
    assert ok.choices[0].message.content is not None
    for kwargs, field in [({"frequency_penalty": 0.5}, "frequency_penalty"), ({"logit_bias": {"42": 5}}, "logit_bias"),
                          ({"extra_body": {"mirostat": 2}}, "mirostat"), ({"extra_body": {"functions": []}}, "functions")]:
        with pytest.raises(openai.BadRequestError, match=field):
            client.chat.completions.create(model="small", messages=USER, max_tokens=2, **kwargs)
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model="small", prompt="Hi", max_tokens=2, echo=True)


def test_embeddings_batch_in_openai_shape(served: Any, smollm2: Any) -> None:
    client, _, url = served
    texts = ["The cat sat on the mat.", "Stock markets fell today."]
    by_default = client.embeddings.create(model="small", input=texts)  # the client asks for base64 and decodes it
    as_floats = client.embeddings.create(model="small", input=texts, encoding_format="float")
    expected = smollm2.embed(texts)
    for reply in (by_default, as_floats):
        assert [d.index for d in reply.data] == [0, 1] and reply.usage.prompt_tokens > 0
        np.testing.assert_allclose(np.array([d.embedding for d in reply.data]), expected, atol=1e-5)
    one = client.embeddings.create(model="small", input="The cat sat on the mat.", encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, expected[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model="small", input=texts, dimensions=3)
    with pytest.raises(openai.BadRequestError, match="cannot embed"):
        client.embeddings.create(model="cloud", input=texts)
    health = httpx.get(url.removesuffix("/v1") + "/health", timeout=10).json()
    assert health["status"] == "ok"
    assert {m["id"]: (m["location"], m["loaded"]) for m in health["models"]} == {"small": ("local", True), "cloud": ("remote", False)}


def test_logprobs_carry_token_text_also_when_streamed(served: Any) -> None:
    client, _, _ = served
    ask = {"model": "small", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8, "temperature": 0, "logprobs": True}
    whole = client.chat.completions.create(**ask)
    tokens = whole.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == whole.choices[0].message.content and all(t.logprob <= 0 for t in tokens)
    assert all(t.bytes == list(t.token.encode()) for t in tokens)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    # Each content chunk carries the tokens it holds. (Not compared with the whole reply: with the
    # prompt now cached, this model's first token is a near-tie, "I" or "Hello".)
    pieces = [(choice.delta.content, choice.logprobs.content) for c in chunks for choice in c.choices if choice.delta.content]
    assert pieces and all(lp is not None and "".join(t.token for t in lp) == text for text, lp in pieces)
    streamed = [t for _, lp in pieces for t in lp]
    assert len(streamed) == chunks[-1].usage.completion_tokens and all(t.logprob <= 0 for t in streamed)  # none lost between chunks
    text = client.completions.create(model="small", prompt="1, 2, 3,", max_tokens=4, temperature=0, logprobs=1)
    assert "".join(text.choices[0].logprobs.tokens) == text.choices[0].text
