"""Remote backend: SSE reader, retry arithmetic, circuit breaker, wire format, and every fault
against a loopback fault-injecting server. No model; every wait is bounded."""

from __future__ import annotations

import json
import logging
import random
import time
from contextlib import aclosing
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import anyio
import pytest

from orchestrator.backends import RemoteBackend, RemoteEndpoint
from orchestrator.backends.circuit import BreakerSettings, CircuitBreaker
from orchestrator.backends.openai_wire import ReplyAssembler, request_body
from orchestrator.backends.remote import RemoteTimeouts
from orchestrator.backends.retry import Retry, backoff_delay, parse_retry_after, retry_delay
from orchestrator.backends.sse import SSEDecoder
from orchestrator.errors import (
    ConfigError,
    RemoteError,
    RemoteProtocolError,
    RemoteServerError,
    RemoteUnavailableError,
    StreamBrokenError,
)
from orchestrator.types import ChatMessage, Completion, GenerationRequest, SamplingParams, TokenDelta, ToolSpec
from tests.fault_server import (
    FaultServer,
    chat_chunk,
    json_reply,
    llama_error_stream,
    refused_port,
    sse_reply,
    stall_head,
    status_reply,
)

pytestmark = pytest.mark.timeout(30)

CHAT = GenerationRequest(messages=(ChatMessage(role="user", content="hi"),), max_tokens=8)
FAST = Retry(attempts=3, backoff_s=0.01, max_backoff_s=0.02)
QUICK = RemoteTimeouts(connect_s=1.0, read_s=0.5, write_s=1.0, pool_s=1.0)
WEATHER = ToolSpec(name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def backend(server_or_url: FaultServer | str, **settings) -> RemoteBackend:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    settings.setdefault("retry", FAST)
    settings.setdefault("timeouts", QUICK)
    return RemoteBackend(RemoteEndpoint(base_url=url, model="m", **settings), rng=random.Random(0))


def collect(b: RemoteBackend, request: GenerationRequest = CHAT) -> tuple[list[TokenDelta], Completion]:
    async def go():
        deltas, done = [], []
        async for event in b.generate(request):
            (done if isinstance(event, Completion) else deltas).append(event)
        assert len(done) == 1
        return deltas, done[0]

    return anyio.run(go)


def hello_stream(**kw):
    return sse_reply([chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(finish="stop"), {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}], **kw)


# -- SSE reader (pure) ------------------------------------------------------------------------------


def test_sse_events_multiline_comments_and_done():
    d = SSEDecoder()
    assert d.feed(b": keep-alive\n\ndata: a\ndata: b\nevent: x\nid: 1\n\n") == ["a\nb"]
    assert d.feed(b"data:no-space\r\n\r\ndata: [DONE]\n\ndata: after\n\n") == ["no-space"]
    assert d.done
    d.close()


def test_sse_split_anywhere_gives_the_same_events():
    stream = b"data: one\r\n\r\ndata: two\rdata: 2b\r\rdata: three\n\ndata: [DONE]\n\n"
    whole = SSEDecoder().feed(stream)
    assert whole == ["one", "two\n2b", "three"]
    for size in (1, 2, 3, 7):
        d, got = SSEDecoder(), []
        for i in range(0, len(stream), size):
            got += d.feed(stream[i : i + size])
        assert got == whole and d.done


@pytest.mark.parametrize(
    "raw, match",
    [
        (b'{"id": 1}\n\n', "not an event-stream line"),
        (b"data: \xff\xfe\n\n", "not UTF-8"),
        (b"data: " + b"x" * 2000, "longer than"),
        (b"data: " + b"x" * 600 + b"\ndata: " + b"y" * 600 + b"\n", "larger than"),
    ],
)
def test_sse_rejects_malformed_and_oversized_input(raw, match):
    with pytest.raises(RemoteProtocolError, match=match):
        SSEDecoder(max_line_bytes=1024, max_event_bytes=1024).feed(raw)


def test_sse_close_without_done_is_an_error():
    d = SSEDecoder()
    d.feed(b"data: a\n\n")
    with pytest.raises(RemoteProtocolError, match=r"without \[DONE\]"):
        d.close()


def test_sse_error_line_is_kept_whole_and_ends_the_stream():
    message = "the request exceeds the available context size, try increasing it " * 5
    line = b"error: " + json.dumps({"code": 400, "message": message, "type": "exceed_context_size_error"}).encode()
    d = SSEDecoder()
    assert d.feed(b"data: a\n\n" + line + b"\n\ndata: later\n\n") == ["a"]
    assert json.loads(d.error)["message"] == message and d.feed(b"data: more\n\n") == []
    with pytest.raises(RemoteProtocolError, match="error line"):
        d.close()


# -- retry arithmetic (pure) -------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_cap():
    policy = Retry(backoff_s=0.5, max_backoff_s=3.0)
    rng = random.Random(1)
    for retry, bound in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (10, 3.0)]:
        draws = [backoff_delay(policy, retry, rng) for _ in range(200)]
        assert all(0.0 <= x <= bound for x in draws)
        assert max(draws) > 0.8 * bound and min(draws) < 0.2 * bound  # spread over the whole range


def test_retry_after_seconds_and_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == pytest.approx(42.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_delay_honours_retry_after_caps_and_attempts():
    policy = Retry(attempts=3, max_retry_after_s=10.0)
    rng = random.Random(0)
    assert retry_delay(policy, 0, 4.0, rng) == 4.0
    assert retry_delay(policy, 0, 11.0, rng) is None  # longer than we may wait: give up now
    assert retry_delay(policy, 2, None, rng) is None  # third attempt was the last
    assert 0.0 <= retry_delay(policy, 1, None, rng) <= 0.5


# -- circuit breaker (pure, injected clock) -------------------------------------------------------------


def test_circuit_opens_half_opens_and_closes():
    now = [0.0]
    cb = CircuitBreaker(BreakerSettings(failure_threshold=2, cooldown_s=10.0), clock=lambda: now[0])
    cb.record_failure()
    assert cb.state == "closed" and cb.available
    cb.record_success()
    cb.record_failure()
    assert cb.state == "closed"  # the success reset the count
    cb.record_failure()
    assert cb.state == "open" and not cb.acquire() and cb.retry_in_s == 10.0
    now[0] = 10.0
    assert cb.state == "half-open" and cb.acquire()
    assert not cb.available and not cb.acquire()  # one trial at a time
    cb.record_failure()
    assert cb.state == "open"  # the failed trial reopens at once
    now[0] = 20.0
    assert cb.acquire()
    cb.release()  # the caller left without a verdict: the trial slot is free again
    assert cb.acquire()
    cb.record_success()
    assert cb.state == "closed" and cb.available


# -- wire format (pure) ------------------------------------------------------------------------------


def test_request_body_for_chat_prompt_tools_and_extras():
    req = GenerationRequest(
        messages=(ChatMessage(role="user", content="w?"),),
        max_tokens=5,
        stop=("\n",),
        n=2,
        logprobs=True,
        sampling=SamplingParams(temperature=0.7, top_p=0.9, seed=3, top_k=20),
        tools=(WEATHER,),
        tool_choice="required",
    )
    path, body = request_body(req, model="m", stream=True, llama_cpp_extras=False)
    assert path == "chat/completions"
    assert body["messages"] == [{"role": "user", "content": "w?"}] and body["n"] == 2 and body["seed"] == 3
    assert body["stop"] == ["\n"] and body["logprobs"] is True and body["stream"] is True
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}  # required + one tool
    assert "top_k" not in body
    _, extra = request_body(req, model="m", stream=False, llama_cpp_extras=True)
    assert extra["top_k"] == 20 and "stream" not in extra
    path, body = request_body(GenerationRequest(prompt="p", logprobs=True), model="m", stream=False, llama_cpp_extras=False)
    assert path == "completions" and body["prompt"] == "p" and body["logprobs"] == 1


def test_request_body_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="grammar"):
        request_body(GenerationRequest(prompt="p", grammar='root ::= "a"'), model="m", stream=True, llama_cpp_extras=False)
    with pytest.raises(ValueError, match="tools need chat"):  # refused when the request is built
        GenerationRequest(prompt="p", tools=(WEATHER,))
    _, body = request_body(GenerationRequest(prompt="p", grammar='root ::= "a"'), model="m", stream=True, llama_cpp_extras=True)
    assert body["grammar"] == 'root ::= "a"'


def test_assembler_joins_interleaved_tool_call_pieces():
    a = ReplyAssembler(n=1, chat=True)
    call = lambda i, **f: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **f}]}}]}
    a.feed(call(0, id="a", type="function", function={"name": "get_weather", "arguments": ""}))
    a.feed(call(1, id="b", type="function", function={"name": "get_time", "arguments": "{}"}))
    a.feed(call(0, function={"arguments": '{"city": '}))
    a.feed(call(0, function={"arguments": '"Paris"}'}))
    a.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    (choice,) = a.choices()
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [("a", "get_weather", '{"city": "Paris"}'), ("b", "get_time", "{}")]


@pytest.mark.parametrize(
    "obj, match",
    [
        ([1, 2], "not a JSON object"),
        ({"choices": "x"}, "malformed reply field choices"),
        ({"choices": [{"index": 3, "delta": {"content": "a"}}]}, "outside"),
        ({"choices": [{"index": 0, "delta": {"content": 5}}]}, "malformed"),
        ({"choices": [{"index": 0, "delta": {}, "finish_reason": "exploded"}]}, "unknown finish_reason"),
        ({"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [{"logprob": "x"}]}}]}, "malformed logprobs"),
    ],
)
def test_assembler_rejects_malformed_replies(obj, match):
    with pytest.raises(RemoteProtocolError, match=match):
        ReplyAssembler(n=1, chat=True).feed(obj)


@pytest.mark.parametrize("error, status", [({"message": "model crashed " * 30}, None), ({"message": "model crashed " * 30, "code": 503}, 503),
                                           ("model crashed " * 30, None)])
def test_assembler_raises_the_servers_own_error_in_full(error, status):
    with pytest.raises(RemoteServerError) as info:
        ReplyAssembler(n=1, chat=True).feed({"error": error})
    assert ("model crashed " * 30).strip() in str(info.value) and info.value.status == status


# -- backend against the fault server ----------------------------------------------------------------


def test_streams_deltas_then_one_completion_with_timings():
    with FaultServer([hello_stream()]) as server:
        deltas, done = collect(backend(server, api_key="sk-test-123"))
    assert [d.text for d in deltas] == ["Hel", "lo"]
    assert done.text == "Hello" and done.finish_reason == "stop" and done.model == "fault-model"
    assert done.timings.prefill_tokens == 3 and done.timings.decode_tokens == 2
    assert 0 < done.timings.ttft_s <= done.timings.total_s and done.timings.energy_source == "none"
    (seen,) = server.seen
    assert seen.path == "/v1/chat/completions" and seen.body["stream"] is True and seen.body["model"] == "m"
    assert seen.headers["authorization"] == "Bearer sk-test-123"


def test_429_with_retry_after_is_waited_for_then_succeeds():
    with FaultServer([status_reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}), hello_stream()]) as server:
        start = time.monotonic()
        _, done = collect(backend(server, retry=Retry(attempts=2, backoff_s=0.0)))
        waited = time.monotonic() - start
    assert done.text == "Hello" and len(server.seen) == 2
    assert waited >= 0.9  # the server asked for 1 s and the backoff alone would have been 0


def test_429_asking_longer_than_allowed_gives_up_at_once():
    with FaultServer([status_reply(429, {}, {"Retry-After": "120"})]) as server, pytest.raises(RemoteUnavailableError) as info:
        collect(backend(server))
    assert info.value.status == 429 and len(server.seen) == 1


def test_500_storm_is_retried_then_unavailable():
    with FaultServer([status_reply(500, {"error": {"message": "boom"}})] * 3) as server, pytest.raises(RemoteUnavailableError, match="boom") as info:
        collect(backend(server))
    assert info.value.status == 500 and info.value.endpoint == server.base_url and len(server.seen) == 3


def test_4xx_is_a_remote_error_never_retried_and_the_key_is_redacted(caplog):
    key = "sk-very-secret-42"
    with FaultServer([status_reply(401, {"error": {"message": f"bad key {key}"}})]) as server:
        b = backend(server, api_key=key)
        with caplog.at_level(logging.DEBUG), pytest.raises(RemoteError) as info:
            collect(b)
    assert type(info.value) is RemoteError and info.value.status == 401 and len(server.seen) == 1
    assert "bad key ***" in str(info.value)
    for text in (str(info.value), repr(b), repr(b.endpoint), caplog.text):
        assert key not in text


def test_connection_refused_is_unavailable():
    b = backend(f"http://127.0.0.1:{refused_port()}/v1")
    with pytest.raises(RemoteUnavailableError, match="unreachable") as info:
        collect(b)
    assert info.value.status is None


def test_slow_first_byte_times_out_and_is_retried():
    with FaultServer([stall_head(), stall_head()]) as server, pytest.raises(RemoteUnavailableError, match="timed out"):
        collect(backend(server, retry=Retry(attempts=2, backoff_s=0.0)))
    assert len(server.seen) == 2


@pytest.mark.parametrize("then, match", [("stall", "stalled"), ("reset", "broke"), ("close", "broke"), ("end", "before")])
def test_a_stream_broken_midway_keeps_the_partial_text_and_is_not_reissued(then, match):
    with FaultServer([sse_reply([chat_chunk("par"), chat_chunk("tial")], then=then, done=False), hello_stream()]) as server:
        b = backend(server)
        with pytest.raises(StreamBrokenError, match=match) as info:
            collect(b)
    assert info.value.partial_text == "partial"
    assert len(server.seen) == 1  # never re-issued behind the caller's back


@pytest.mark.parametrize(
    "reply, match",
    [
        (sse_reply([b"data: {not json\n\n"]), "not valid JSON"),
        (sse_reply([b"{\"choices\": []}\n\n"]), "not an event-stream line"),
        (sse_reply([b"data: " + b"x" * 5000 + b"\n\n"]), "longer than"),
        (status_reply(200, b"{truncated"), "not valid JSON"),
        (sse_reply([b"<html>"], content_type="text/html"), "content-type"),
    ],
)
def test_malformed_replies_are_protocol_errors(reply, match):
    with FaultServer([reply]) as server, pytest.raises(RemoteProtocolError, match=match):
        collect(backend(server, max_event_bytes=1024))
    assert len(server.seen) == 1


LONG = "failed to decode the batch: the KV cache is full (n_ctx_slot = 4096, n_past = 4090); " * 4  # ~350 characters


def test_a_llama_cpp_error_line_is_the_servers_error_in_full_and_retried_before_any_text():
    """It was 'not an event-stream line' with the message cut at 60 characters, and never retried."""
    error = {"code": 500, "message": LONG, "type": "server_error"}
    with FaultServer([llama_error_stream(error, [chat_chunk(delta={"role": "assistant"})]), hello_stream()]) as server:
        deltas, done = collect(backend(server))
    assert done.text == "Hello" and len(server.seen) == 2  # nothing had reached the caller: sent again
    with FaultServer([llama_error_stream(error)] * 3) as server, pytest.raises(RemoteUnavailableError) as info:
        collect(backend(server))
    assert LONG.strip() in str(info.value) and info.value.status == 500 and len(server.seen) == 3
    assert isinstance(info.value.__cause__, RemoteServerError)


def test_a_servers_error_about_the_request_is_not_retried():
    error = {"code": 400, "message": LONG, "type": "exceed_context_size_error"}
    with FaultServer([llama_error_stream(error)]) as server, pytest.raises(RemoteServerError) as info:
        collect(backend(server))
    assert LONG.strip() in str(info.value) and "exceed_context_size_error" in str(info.value)
    assert info.value.status == 400 and len(server.seen) == 1


@pytest.mark.parametrize("reply", [
    llama_error_stream({"code": 503, "message": "loading model"}, [chat_chunk("par")]),
    sse_reply([chat_chunk("par"), {"error": {"message": "oom", "code": 500}}]),
])
def test_a_servers_error_after_text_is_raised_and_never_reissued(reply):
    with FaultServer([reply, hello_stream()]) as server, pytest.raises(RemoteServerError, match="loading model|oom") as info:
        collect(backend(server))
    assert len(server.seen) == 1 and info.value.status in (500, 503)


@pytest.mark.parametrize("then", ["close", "reset", "end", "stall"])
def test_a_stream_broken_before_any_text_is_retried(then):
    role_only = [chat_chunk(delta={"role": "assistant"})]  # bytes arrived, but no text for the caller
    with FaultServer([sse_reply(role_only, then=then, done=False), hello_stream()]) as server:
        deltas, done = collect(backend(server))
    assert [d.text for d in deltas] == ["Hel", "lo"] and done.text == "Hello" and len(server.seen) == 2


def test_a_stream_broken_before_any_text_on_every_attempt_is_unavailable():
    with FaultServer([sse_reply([], then="close", done=False)] * 2) as server, pytest.raises(RemoteUnavailableError, match="before any text") as info:
        collect(backend(server, retry=Retry(attempts=2, backoff_s=0.0)))
    assert len(server.seen) == 2 and isinstance(info.value.__cause__, StreamBrokenError)


def test_opening_and_reading_retries_share_one_budget():
    script = [status_reply(503, {}), sse_reply([], then="close", done=False), hello_stream()]
    with FaultServer(script) as server, pytest.raises(RemoteUnavailableError):
        collect(backend(server, retry=Retry(attempts=2, backoff_s=0.0)))
    assert len(server.seen) == 2  # a 503, then a broken stream: two attempts, not 2 x 2


def test_endless_trickle_ends_at_total_s():
    pings = [b": ping\n\n"] * 200
    timeouts = RemoteTimeouts(connect_s=1, read_s=1, write_s=1, pool_s=1, total_s=0.3)
    with FaultServer([sse_reply([chat_chunk("a"), *pings], pause=0.02)]) as server, pytest.raises(StreamBrokenError, match="total_s") as info:
        collect(backend(server, timeouts=timeouts))
    assert info.value.partial_text == "a"


def test_open_circuit_fails_fast_without_a_socket_then_recovers():
    now = [0.0]
    with FaultServer([status_reply(503, {}), status_reply(503, {}), hello_stream()]) as server:
        b = RemoteBackend(
            RemoteEndpoint(base_url=server.base_url, model="m", retry=Retry(attempts=1), timeouts=QUICK, breaker=BreakerSettings(failure_threshold=2, cooldown_s=5)),
            clock=lambda: now[0],
        )
        for _ in range(2):
            with pytest.raises(RemoteUnavailableError):
                collect(b)
        assert not b.available and b.breaker.state == "open"
        with pytest.raises(RemoteUnavailableError, match="circuit open"):
            collect(b)
        assert len(server.seen) == 2  # the third call opened no socket
        now[0] = 5.0
        assert b.available
        assert collect(b)[1].text == "Hello"
        assert b.breaker.state == "closed"


def test_leaving_early_closes_the_http_stream():
    with FaultServer([sse_reply([chat_chunk("first")], then="stall")]) as server:
        b = backend(server, timeouts=RemoteTimeouts(read_s=20))

        async def go():
            async with aclosing(b.generate(CHAT)) as events:
                async for event in events:
                    assert event.text == "first"
                    break

        anyio.run(go)
        assert server.conns[0].disconnected.wait(5), "the server never saw the client hang up"
    assert b.available


def test_cancelling_the_caller_returns_promptly_and_frees_the_circuit():
    with FaultServer([stall_head()]) as server:
        b = backend(server, timeouts=RemoteTimeouts(read_s=20), breaker=BreakerSettings(failure_threshold=1))

        async def go():
            with anyio.move_on_after(0.3) as scope:
                async for _ in b.generate(CHAT):
                    pass
            return scope.cancelled_caught

        assert anyio.run(go)
        assert b.breaker.state == "closed" and b.available


def test_streamed_tool_call_is_assembled():
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    pieces = [chat_chunk(delta={"role": "assistant", "tool_calls": [first]})]
    pieces += [chat_chunk(delta={"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in ('{"ci', 'ty": "Par', 'is"}')]
    pieces.append(chat_chunk(finish="tool_calls"))
    request = GenerationRequest(messages=(ChatMessage(role="user", content="weather in Paris?"),), tools=(WEATHER,))
    with FaultServer([sse_reply(pieces)]) as server:
        deltas, done = collect(backend(server), request)
    assert deltas == [] and done.finish_reason == "tool_calls"
    assert done.choices[0].tool_calls[0].model_dump() == {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert server.seen[0].body["tool_choice"] == "auto" and server.seen[0].body["tools"][0]["type"] == "function"


def test_n_choices_interleaved_with_logprobs():
    lp = lambda v: {"content": [{"token": "x", "logprob": v}]}
    events = [chat_chunk("a", index=0, logprobs=lp(-0.5)), chat_chunk("b", index=1, logprobs=lp(-1.5)), chat_chunk("c", index=0, logprobs=lp(-0.25))]
    events += [chat_chunk(finish="stop", index=0), chat_chunk(finish="length", index=1)]
    request = CHAT.model_copy(update={"n": 2, "logprobs": True})
    with FaultServer([sse_reply(events)]) as server:
        deltas, done = collect(backend(server), request)
    assert [(d.index, d.text) for d in deltas] == [(0, "a"), (1, "b"), (0, "c")]
    assert [(c.text, c.finish_reason, c.logprobs, c.tokens) for c in done.choices] == [("ac", "stop", (-0.5, -0.25), 2), ("b", "length", (-1.5,), 1)]


def test_a_server_ignoring_n_is_caught_or_fanned_out():
    request = GenerationRequest(messages=CHAT.messages, n=2, sampling=SamplingParams(temperature=1.0, seed=7))
    with FaultServer([hello_stream()]) as server, pytest.raises(RemoteProtocolError, match="fan_out_n"):
        collect(backend(server), request)
    with FaultServer([hello_stream(), sse_reply([chat_chunk("Bye"), chat_chunk(finish="length")])]) as server:
        deltas, done = collect(backend(server, fan_out_n=True), request)
    assert [(c.index, c.text) for c in done.choices] == [(0, "Hello"), (1, "Bye")]
    assert [d.index for d in deltas] == [0, 0, 1]
    assert [s.body["n"] for s in server.seen] == [1, 1] and [s.body["seed"] for s in server.seen] == [7, 8]


def test_whole_replies_prompt_completions_and_a_server_ignoring_stream():
    whole = {"model": "w", "choices": [{"index": 0, "text": " Paris", "logprobs": {"token_logprobs": [-0.1]}, "finish_reason": "length"}], "usage": {"prompt_tokens": 4, "completion_tokens": 1}}
    request = GenerationRequest(prompt="Capital of France:", max_tokens=1, logprobs=True)
    for stream in (False, True):  # a JSON reply to a streamed request is read the same way
        with FaultServer([json_reply(whole)]) as server:
            deltas, done = collect(backend(server, stream=stream), request)
        assert [d.text for d in deltas] == [" Paris"] and done.choices[0].logprobs == (-0.1,) and done.model == "w"
        assert server.seen[0].path == "/v1/completions" and server.seen[0].body["prompt"] == "Capital of France:"


def test_grammar_is_refused_before_any_socket_on_a_generic_endpoint():
    with FaultServer([]) as server, pytest.raises(ConfigError, match="grammar"):
        collect(backend(server), CHAT.model_copy(update={"grammar": 'root ::= "a"'}))
    assert server.seen == []


def test_health_pings_models():
    with FaultServer([json_reply({"object": "list", "data": [{"id": "m"}]}), status_reply(503, {})]) as server:
        b = backend(server)
        assert anyio.run(b.health) is True
        assert anyio.run(b.health) is False
    assert anyio.run(backend(f"http://127.0.0.1:{refused_port()}/v1").health) is False


def test_endpoint_settings_are_checked():
    with pytest.raises(ValueError, match="http"):
        RemoteEndpoint(base_url="ftp://x/v1", model="m")
    with pytest.raises(ValueError, match="credentials"):
        RemoteEndpoint(base_url="http://u:p@127.0.0.1/v1", model="m")
    ep = RemoteEndpoint(base_url="http://127.0.0.1:1/v1/", model="m", api_key="sk-hidden")
    assert ep.base_url == "http://127.0.0.1:1/v1" and "sk-hidden" not in repr(ep)
    assert RemoteBackend(ep).location == "remote"
