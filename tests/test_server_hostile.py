"""Hostile input for ``orchestrator serve``'s app, in-process on fakes.

Each case sends one request an attacker or a broken client might send: malformed or huge
bodies, wrong types, deep nesting, unknown fields, bad tool schemas, regex-like text. Each must
get the right status with an OpenAI-style JSON error (no stack trace, no 500), and the server
must answer a normal request right after it. A few hostile-looking bodies are valid and must be
answered (text is only text; a field that cannot change the output is ignored).

Also here: the admission burst (``--max-active 2 --max-queued 1``: at most 3 of 8 admitted).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.routing.router import Router
from orchestrator.server import ServerConfig
from orchestrator.server.app import create_app
from orchestrator.types import Completion, GenerationRequest, TokenDelta

pytestmark = pytest.mark.timeout(60)

REPLY = "a normal reply"
USER = [{"role": "user", "content": "hi"}]
CHAT, TEXT = "/v1/chat/completions", "/v1/completions"
MAX_BODY = 1 << 20


class _Remote(ScriptedBackend):
    location = "remote"  # gets the tools natively: no grammar, no Tool.from_schema


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_schema(depth: int) -> dict:
    schema: dict = {"type": "boolean"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def nested_items(depth: int) -> dict:
    schema: dict = {"type": "boolean"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def tool(parameters: Any, name: str = "f", **function: Any) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters, **function}}


def chat(**fields: Any) -> dict:
    return {"model": "fake", "messages": USER, **fields}


WIDE = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4999)}}


@dataclass
class Case:
    """One hostile request and the status it must get."""

    status: int
    json: Any = None
    content: bytes | None = None
    path: str = CHAT
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    match: str = ""  # expected in the error message

    def send(self, client: TestClient) -> httpx.Response:
        if self.content is not None:
            return client.request(self.method, self.path, content=self.content, headers=self.headers)
        if self.json is None:
            return client.request(self.method, self.path, headers=self.headers)
        return client.request(self.method, self.path, json=self.json, headers=self.headers)


CASES: dict[str, Case] = {
    # -- the body itself --------------------------------------------------------------------
    "malformed JSON": Case(400, content=b"{not json", match="not valid JSON"),
    "empty body": Case(400, content=b"", match="not valid JSON"),
    "a JSON array": Case(400, content=b"[]", match="JSON object"),
    "a JSON string": Case(400, content=b'"hi"', match="JSON object"),
    "NaN": Case(400, content=b'{"model": "fake", "messages": [], "temperature": NaN}'),
    "Infinity": Case(400, content=b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "temperature": Infinity}'),
    "1e999 (inf)": Case(400, content=b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "temperature": 1e999}'),
    "invalid UTF-8": Case(400, content=b'{"model": "fake\xff\xfe"}', match="not valid JSON"),
    "a 5,000-digit integer": Case(400, content=b'{"model": "fake", "messages": [], "seed": ' + b"9" * 5000 + b"}"),
    "100,000-deep body": Case(400, content=b"[" * 100_000 + b"]" * 100_000, match="not valid JSON"),
    "100,000-deep field": Case(400, content=b'{"model": "fake", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "body over the cap": Case(413, content=b'{"model": "' + b"x" * (MAX_BODY + 10) + b'"}', match="larger than"),
    "duplicate keys (the last wins)": Case(200, content=b'{"model": "nope", "model": "fake", "messages": [{"role": "user", "content": "x"}]}'),
    "not sent as JSON content-type": Case(200, content=json.dumps(chat()).encode(), headers={"content-type": "text/plain"}),
    # -- strict types (OpenAI refuses these too) ---------------------------------------------
    'max_tokens "10"': Case(400, chat(max_tokens="10"), match="max_tokens"),
    "max_tokens 10.0": Case(400, chat(max_tokens=10.0), match="max_tokens"),
    "max_tokens true": Case(400, chat(max_tokens=True), match="max_tokens"),
    "max_tokens 0": Case(400, chat(max_tokens=0), match="max_tokens"),
    "max_tokens 10**30": Case(400, chat(max_tokens=10**30), match="max_tokens"),
    'stream "yes"': Case(400, chat(stream="yes"), match="stream"),
    "stream 1": Case(400, chat(stream=1), match="stream"),
    'temperature "0.5"': Case(400, chat(temperature="0.5"), match="temperature"),
    "temperature 3": Case(400, chat(temperature=3), match="temperature"),
    'n "2"': Case(400, chat(n="2"), match="n"),
    "n 17": Case(400, chat(n=17), match="n"),
    "seed -1": Case(400, chat(seed=-1), match="seed"),
    "seed 2**40": Case(400, chat(seed=2**40), match="seed"),
    "stop as a number": Case(400, chat(stop=5), match="stop"),
    "17 stop strings": Case(400, chat(stop=["x"] * 17), match="stop"),
    'logprobs "yes"': Case(400, chat(logprobs="yes"), match="logprobs"),
    "stream_options a list": Case(400, chat(stream_options=[1]), match="stream_options"),
    "model a number": Case(400, {"model": 7, "messages": USER}, match="model"),
    "model missing": Case(400, {"messages": USER}, match="model"),
    "model too long": Case(400, chat(model="m" * 300), match="model"),
    "model unknown": Case(404, chat(model="nope"), match="no model named"),
    "model with a lone surrogate": Case(400, content=b'{"model": "\\ud800", "messages": [{"role": "user", "content": "x"}]}', match="model"),
    # -- messages ----------------------------------------------------------------------------
    "messages missing": Case(400, {"model": "fake"}, match="messages"),
    "messages empty": Case(400, chat(messages=[]), match="messages"),
    "messages a string": Case(400, chat(messages="hi"), match="messages"),
    "role bot": Case(400, chat(messages=[{"role": "bot", "content": "x"}]), match="role"),
    "content a number": Case(400, chat(messages=[{"role": "user", "content": 5}]), match="content"),
    "content an image": Case(400, chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
                             match="only text content"),
    "content over 200,000 characters": Case(400, chat(messages=[{"role": "user", "content": "x" * 200_001}]), match="content"),
    "257 messages": Case(400, chat(messages=USER * 257), match="messages"),
    "tool call arguments 100,000 deep": Case(200, chat(messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[" * 99_000 + "]" * 99_000}}]}])),
    "tool call arguments not JSON": Case(200, chat(messages=[*USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}])),
    "NUL and control characters": Case(200, chat(messages=[{"role": "user", "content": "a\u0000b\u001b[31mc\u202e"}])),
    # -- fields: ignored only when they cannot change the output, else refused, never dropped --
    "a field that cannot change the output": Case(200, chat(user="u")),
    "an unsupported field that would change the output": Case(400, chat(frequency_penalty=0.5), match="frequency_penalty"),
    "an unknown field": Case(400, chat(foo={"bar": [1, 2]}), match="foo"),
    "response_format json_schema too deep": Case(400, chat(response_format={"type": "json_schema", "json_schema": {"schema": deep_schema(40)}}), match="response_format"),
    "response_format garbage": Case(400, chat(response_format="((a+)+)+$"), match="response_format"),
    "over a MiB of unknown keys": Case(413, {**chat(), **{f"k{i}": i for i in range(100_000)}}),
    "10,000 unknown keys": Case(400, {**chat(), **{f"k{i}": i for i in range(10_000)}}, match="unknown field"),
    # -- tools -------------------------------------------------------------------------------
    "tools not a list": Case(400, chat(tools={"type": "function"}), match="tools"),
    "tool type retrieval": Case(400, chat(tools=[{"type": "retrieval", "function": {"name": "f"}}]), match="tools"),
    "tool name empty": Case(400, chat(tools=[tool({"type": "object", "properties": {}}, name="")]), match="name"),
    "tool name 65 characters": Case(400, chat(tools=[tool({"type": "object", "properties": {}}, name="f" * 65)]), match="name"),
    "tool parameters a list": Case(400, chat(tools=[tool([1, 2])]), match="parameters"),
    "tool schema 400 levels deep": Case(400, chat(tools=[tool(deep_schema(400))]), match="nest at most"),
    "tool schema 400 deep, remote": Case(400, chat(model="cloud", tools=[tool(deep_schema(400))]), match="nest at most"),
    "tool schema 40 levels deep": Case(400, chat(tools=[tool({"type": "object", "properties": {"a": nested_items(40)}})]), match="nested deeper than 32"),
    "tool with 4,999 optional properties": Case(400, chat(tools=[tool(WIDE)]), match="objects and lists"),
    "64 tools of 20 properties": Case(400, chat(tools=[tool({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20)}}, name=f"t{n}")
                                                       for n in range(64)]), match="objects and lists"),
    "65 tools": Case(400, chat(tools=[tool({"type": "object", "properties": {}}, name=f"t{n}") for n in range(65)]), match="tools"),
    "duplicate tool names": Case(400, chat(tools=[tool({"type": "object", "properties": {}})] * 2), match="distinct"),
    "schema with a pattern": Case(400, chat(tools=[tool({"type": "object", "properties": {"s": {"type": "string", "pattern": "(a+)+$"}}})]),
                                  match="pattern"),
    "schema with a recursive $ref": Case(400, chat(tools=[tool({"type": "object", "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}},
                                                               "properties": {"n": {"$ref": "#/$defs/N"}}})]), match="cycle"),
    "schema with a remote $ref": Case(400, chat(tools=[tool({"type": "object", "properties": {"n": {"$ref": "http://127.0.0.1:9/x.json"}}})]),
                                      match="ref"),
    "schema type objekt": Case(400, chat(tools=[tool({"type": "objekt"})]), match="schema"),
    "schema additionalProperties true": Case(400, chat(tools=[tool({"type": "object", "properties": {}, "additionalProperties": True})]),
                                             match="additionalProperties"),
    "schema enum of 6,000 values": Case(400, chat(tools=[tool({"type": "object", "properties": {"e": {"enum": list(range(6000))}}})])),
    "schema minLength above maxLength": Case(400, chat(tools=[tool({"type": "object", "properties": {"s": {"type": "string", "minLength": 9, "maxLength": 2}}})]),
                                             match="minLength"),
    "GBNF-like property names": Case(200, chat(tools=[tool({"type": "object", "properties": {'root ::= "x"\n': {"type": "boolean"}, "\\\"|()*": {"type": "null"}}})])),
    "tool_choice an unknown tool": Case(400, chat(tools=[tool({"type": "object", "properties": {}})], tool_choice={"type": "function", "function": {"name": "g"}}),
                                        match="not among the tools"),
    "tool_choice required without tools": Case(400, chat(tool_choice="required"), match="needs tools"),
    "tool_choice sometimes": Case(400, chat(tool_choice="sometimes"), match="tool_choice"),
    # -- regex-like and odd text is only text -------------------------------------------------
    "catastrophic-regex text": Case(200, chat(messages=[{"role": "user", "content": "((a+)+)+$" * 2000 + "a" * 5000 + "!"}])),
    "regex-like stop strings": Case(200, chat(stop=["(.*)*", "[^", "\\"])),
    "regex-like text to the router": Case(200, chat(model="auto", messages=[{"role": "user", "content": (" +" + "1" * 40) * 50}])),
    "format strings": Case(200, chat(messages=[{"role": "system", "content": "{0} {name} %s %(x)s {{}}"}, *USER])),
    # -- text completions --------------------------------------------------------------------
    "two prompts": Case(400, {"model": "fake", "prompt": ["a", "b"]}, path=TEXT, match="exactly one prompt"),
    "token-id prompt": Case(400, {"model": "fake", "prompt": [1, 2, 3]}, path=TEXT, match="prompt"),
    "empty prompt": Case(400, {"model": "fake", "prompt": ""}, path=TEXT, match="prompt"),
    "completion logprobs true": Case(400, {"model": "fake", "prompt": "x", "logprobs": True}, path=TEXT, match="logprobs"),
    "completion logprobs 6": Case(400, {"model": "fake", "prompt": "x", "logprobs": 6}, path=TEXT, match="logprobs"),
    # -- routes and methods ------------------------------------------------------------------
    "GET on a POST endpoint": Case(405, path=CHAT, method="GET"),
    "unknown path": Case(404, path="/v1/../../etc/passwd", method="GET"),
    "unknown model card": Case(404, path="/v1/models/%00%ff..", method="GET", match="no model named"),
}


def _app() -> Any:
    fake = ScriptedBackend(lambda r: REPLY, name="fake")
    backends = {"fake": fake, "cloud": _Remote(lambda r: REPLY, name="cloud")}
    backends["auto"] = Router([ScriptedBackend(lambda r: REPLY, name="small")], name="auto")
    return create_app(backends, ServerConfig(max_body_bytes=MAX_BODY))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app(), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("name", CASES)
def test_hostile_request_gets_its_status_and_a_json_error(client: TestClient, name: str) -> None:
    case = CASES[name]
    response = case.send(client)
    assert response.status_code == case.status, (name, response.status_code, response.text[:300])
    if case.status == 200:
        body = response.json()
        assert body["choices"][0]["message"]["content"] == REPLY if case.path == CHAT else body["choices"][0]["text"] == REPLY
    else:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"] and case.match in error["message"], error
        assert set(error) == {"message", "type", "param", "code"}
        assert "Traceback" not in response.text and 'File "' not in response.text and len(response.text) < 2000
    # The server answers a normal request right after.
    after = client.post(CHAT, json=chat())
    assert after.status_code == 200 and after.json()["choices"][0]["message"]["content"] == REPLY


def test_the_4999_property_tool_is_refused_quickly_and_with_bounded_memory(client: TestClient) -> None:
    """It blocked the server 8.2 s and took 1.7 GB before its 400 (quadratic grammar)."""
    body = json.dumps(chat(tools=[tool(WIDE)])).encode()
    tracemalloc.start()
    start = time.monotonic()
    try:
        response = client.post(CHAT, content=body)
        elapsed, peak = time.monotonic() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 400
    assert peak < 100 * 2**20 and elapsed < 5  # generous bounds: they catch the blow-up, not noise


def test_strict_types_refuse_what_a_lax_reading_accepted(client: TestClient) -> None:
    """``"max_tokens": "10"`` was taken as 10 and ``"stream": "yes"`` as true."""
    for bad in ({"max_tokens": "10"}, {"stream": "yes"}, {"n": 1.0}, {"logprobs": 1}):
        response = client.post(CHAT, json=chat(**bad))
        assert response.status_code == 400 and response.json()["error"]["param"] == next(iter(bad)), bad
    assert client.post(CHAT, json=chat(max_tokens=10, stream=False, n=1, logprobs=False)).status_code == 200


def test_a_400_level_schema_is_a_400_not_a_500(client: TestClient) -> None:
    for model in ("fake", "cloud"):
        response = client.post(CHAT, json=chat(model=model, tools=[tool(deep_schema(400))]))
        assert response.status_code == 400 and response.json()["error"]["param"] == "tools", response.text[:300]


# -- admission -----------------------------------------------------------------------------------


class Gated:
    """A slow backend: every request waits for ``gate`` before the scripted reply streams."""

    def __init__(self, gate: anyio.Event) -> None:
        self.name, self.gate = "slow", gate
        self.inner = ScriptedBackend(lambda r: "slow reply", delay=0.01)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        await self.gate.wait()
        async for event in self.inner.generate(request):
            yield event


def test_a_burst_never_admits_more_than_active_plus_queued() -> None:
    """With max_active 2 and max_queued 1, a burst of 8 on a fresh server admitted all 8."""

    async def burst() -> tuple[list[int], Any]:
        gate = anyio.Event()
        app = create_app({"slow": Gated(gate)}, ServerConfig(max_active=2, max_queued=1))
        stats = app.state.stats
        statuses: list[int] = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:

            async def one(stream: bool) -> None:
                response = await client.post(CHAT, json={"model": "slow", "messages": USER, "stream": stream}, timeout=20)
                statuses.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i % 2 == 0)
                with anyio.move_on_after(10):  # every request admitted or refused, none finished yet
                    while stats.active + stats.waiting + stats.rejected < 8:
                        await anyio.sleep(0.01)
                admitted = stats.active + stats.waiting
                gate.set()
        return sorted(statuses), admitted

    statuses, admitted = anyio.run(burst)
    assert admitted == 3
    assert statuses == [200] * 3 + [429] * 5
