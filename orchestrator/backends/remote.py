"""``Backend`` over a remote OpenAI-compatible server (llama.cpp server, vLLM, Ollama, ...).

One request is one HTTP call, streamed as server-sent events by default.
What can go wrong, and what the caller gets:

- the circuit breaker is open: ``RemoteUnavailableError`` at once, no socket opened;
- refused or timed-out connection, timeout waiting for the reply's head, 429
  or 5xx: retried under the endpoint's ``Retry`` (backoff with full jitter, Retry-After
  honoured), then ``RemoteUnavailableError``;
- another 4xx (400, 401, 404, ...): ``RemoteError`` with the server's short
  message, never retried;
- a reply that is not the OpenAI format (bad JSON, SSE or fields):
  ``RemoteProtocolError``;
- the server's own error inside the reply (llama.cpp's streamed ``error:``
  line, or an ``error`` object in place of a chunk): ``RemoteServerError``
  with its message, in full;
- a stream that stalls past ``read_s``, is reset or ends before ``[DONE]``,
  or a server error with a retryable status (or none), before any text of
  the call reached the caller: retried like a failed open, under the same
  attempts, then ``RemoteUnavailableError`` (so a router falls back);
- the same after text reached the caller: ``StreamBrokenError`` with the
  text that arrived (or the ``RemoteServerError``). A request whose text
  was seen is never re-issued.

The API key goes only into the ``Authorization`` header: never into logs,
reprs or error messages (a server echoing it back is redacted).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from orchestrator.backends.circuit import BreakerSettings, CircuitBreaker
from orchestrator.backends.openai_wire import OutputMode, ReplyAssembler, request_body, server_error
from orchestrator.backends.retry import Retry, parse_retry_after, retry_delay
from orchestrator.backends.sse import SSEDecoder
from orchestrator.errors import (
    RemoteError,
    RemoteProtocolError,
    RemoteServerError,
    RemoteUnavailableError,
    StreamBrokenError,
)
from orchestrator.types import Choice, Completion, GenerationRequest, Timings, TokenDelta
from tools.output_spec import read_choice

__all__ = ["RemoteBackend", "RemoteEndpoint", "RemoteTimeouts"]

log = logging.getLogger(__name__)

_ERROR_BODY_BYTES = 4096


class RemoteTimeouts(BaseModel):
    """Every wait of a remote request, in seconds.

    ``read_s`` is the longest silence allowed between two reads, including
    the wait for the reply's head (a long prefill on the server counts there).
    ``total_s`` caps one request from its first byte sent to its last byte
    received, so a server that trickles keep-alives forever still ends.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_s: float = Field(5.0, gt=0.0, le=600.0)
    read_s: float = Field(60.0, gt=0.0, le=3600.0)
    write_s: float = Field(10.0, gt=0.0, le=600.0)
    pool_s: float = Field(5.0, gt=0.0, le=600.0)
    total_s: float = Field(600.0, gt=0.0, le=86_400.0)


class RemoteEndpoint(BaseModel):
    """Where and how to reach one OpenAI-compatible server.

    ``base_url`` includes the API prefix, as OpenAI clients expect
    (``http://127.0.0.1:8080/v1``). ``stream=False`` asks for whole replies
    (one delta per choice), for servers that cannot stream some features
    (llama-cpp-python's server with its ``chatml-function-calling`` format
    refuses to stream automatic tool choice). ``llama_cpp_extras`` sends llama.cpp's own fields (top_k,
    min_p, repeat_penalty, grammar); without it a raw grammar is refused.
    ``output`` says how a request's tools and response format are enforced (see
    ``openai_wire``): ``"native"`` (OpenAI's fields), ``"grammar"`` (the local engine's grammar,
    for llama.cpp servers: the default with ``llama_cpp_extras``) or ``"prompt"`` (the schema in
    the prompt, for servers with neither; the reply is read back strictly and a wrong one is the
    caller's to send back, as the agent loop does).
    ``fan_out_n`` serves ``n > 1`` as n one-choice requests in turn, for
    servers that ignore ``n`` (llama-cpp-python's); without it a reply with
    fewer choices than asked is a protocol error. ``retry`` is the one ``Retry``
    policy (here 3 attempts, backoff from 0.25 s up to 8 s by default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    model: str = Field(min_length=1, max_length=512)
    api_key: SecretStr | None = None
    name: str | None = None
    timeouts: RemoteTimeouts = RemoteTimeouts()
    retry: Retry = Retry(attempts=3, backoff_s=0.25, max_backoff_s=8.0)
    breaker: BreakerSettings = BreakerSettings()
    stream: bool = True
    llama_cpp_extras: bool = False
    output: OutputMode | None = None
    fan_out_n: bool = False
    max_event_bytes: int = Field(4 << 20, ge=1024, le=1 << 30)

    @property
    def output_mode(self) -> OutputMode:
        """``output``, or its default: ``"grammar"`` on llama.cpp servers, ``"native"`` elsewhere."""
        return self.output or ("grammar" if self.llama_cpp_extras else "native")

    @model_validator(mode="after")
    def _check_output(self) -> RemoteEndpoint:
        if self.output == "grammar" and not self.llama_cpp_extras:
            raise ValueError("output='grammar' needs a llama.cpp server: set llama_cpp_extras=True")
        return self

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8080/v1")
        if parts.username or parts.password:
            raise ValueError("base_url must not hold credentials; give api_key instead")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or fragment")
        return value.rstrip("/")


class RemoteBackend:
    """Streams from one remote endpoint, behind its own circuit breaker.

    Give ``client`` to share one ``httpx.AsyncClient`` (and its connections)
    between requests of one event loop; it should have no transport retries.
    Without it each request opens and closes its own client. ``clock`` and
    ``rng`` are injectable for tests.
    """

    location = "remote"

    def __init__(
        self,
        endpoint: RemoteEndpoint,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name or f"remote:{endpoint.model}"
        self.breaker = CircuitBreaker(endpoint.breaker, clock=clock)
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"RemoteBackend(name={self.name!r}, base_url={self.endpoint.base_url!r}, circuit={self.breaker.state!r})"

    @property
    def available(self) -> bool:
        """Whether the circuit lets a request through now (the router reads this)."""
        return self.breaker.available

    async def health(self) -> bool:
        """A cheap ping: does ``GET /models`` answer 200 with a model list? Never raises."""
        try:
            async with self._session() as client:
                response = await client.get(self._url("models"), headers=self._headers(), timeout=self._timeout())
            return response.status_code == 200 and isinstance(response.json().get("data"), list)
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        ep = self.endpoint
        fan_out = ep.fan_out_n and request.n > 1
        # 1. Build the body first: a request this endpoint cannot take fails before any socket.
        path, body = request_body(request, model=ep.model, stream=ep.stream, llama_cpp_extras=ep.llama_cpp_extras, n=1 if fan_out else None,
                                  output=ep.output_mode)
        # Calls written as text (grammar, prompt) are read back at the end; the text is not streamed meanwhile.
        read_back = bool(request.tools) and ep.output_mode != "native"
        if request.speculative != "off":
            log.debug("%s: speculative=%s is a local-engine setting; ignored", self.name, request.speculative)
        # 2. An open circuit fails fast.
        if not self.breaker.acquire():
            raise RemoteUnavailableError(
                f"{self.name}: circuit open after repeated failures; next try in {self.breaker.retry_in_s:.1f}s", endpoint=ep.base_url
            )
        run = _Run(started=self._clock())
        try:
            async with self._session() as client:
                # 3. One call, or (fan-out) one call per choice in turn.
                for first in range(request.n) if fan_out else (0,):
                    width = 1 if fan_out else request.n
                    call = self._call(client, path, _fan_out_body(body, first), run, width=width, chat=request.messages is not None, first=first)
                    async with aclosing(call) as deltas:
                        async for delta in deltas:
                            if not read_back:
                                yield delta
            self.breaker.record_success()
        except RemoteError as exc:
            if _server_fault(exc):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # a 4xx: the server is up and answered
            raise
        finally:
            self.breaker.release()
        # 4. The completion, with what the request cost as seen from here.
        if request.logprobs and any(c.logprobs is None for c in run.choices):
            log.warning("%s: logprobs were asked but the server sent none for some choices", self.name)
        choices = tuple(run.choices)
        if read_back:
            choices = tuple(read_choice(c, request) for c in choices)
            for c in choices:
                if c.text:
                    yield TokenDelta(index=c.index, text=c.text)
        yield Completion(model=run.model or ep.model, choices=choices, timings=run.timings(self._clock()))

    async def _call(self, client: httpx.AsyncClient, path: str, body: dict[str, Any], run: _Run, *,
                    width: int, chat: bool, first: int) -> AsyncIterator[TokenDelta]:
        """One call of ``width`` choices, numbered from ``first``: its deltas, then its choices go into ``run``.

        A reply that fails before any of its text reached the caller (a broken stream, or the
        server's error with a retryable status) is tried again under the retry policy, sharing
        its attempts with the opening retries; once text went out, the failure is raised."""
        policy, run.retry = self.endpoint.retry, 0
        while True:
            assembler = ReplyAssembler(n=width, chat=chat, endpoint=self.endpoint.base_url, index_offset=first)
            sent = False
            try:
                async with aclosing(self._attempt(client, path, body, assembler, run)) as deltas:
                    async for delta in deltas:
                        sent = True
                        yield delta
            except (StreamBrokenError, RemoteServerError) as exc:
                if sent or not _retryable(exc, policy):
                    raise
                delay = retry_delay(policy, run.retry, None, self._rng)
                if delay is None:
                    raise RemoteUnavailableError(f"{exc} (before any text, after {run.retry + 1} attempt(s))",
                                                 endpoint=self.endpoint.base_url, status=exc.status) from exc
                run.retry += 1
                log.info("%s: %s before any text; retry %d in %.2fs", self.name, exc, run.retry, delay)
                await anyio.sleep(delay)
                continue
            run.absorb(assembler, width, self.name)
            return

    async def _attempt(self, client: httpx.AsyncClient, path: str, body: dict[str, Any], assembler: ReplyAssembler, run: _Run) -> AsyncIterator[TokenDelta]:
        """One HTTP request: open it (with retries), then read its reply into ``assembler``."""
        response = await self._open(client, path, body, run)
        deadline = self._clock() + self.endpoint.timeouts.total_s
        try:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "text/event-stream":
                async with aclosing(self._read_events(response, assembler, run, deadline)) as deltas:
                    async for delta in deltas:
                        yield delta
            elif kind == "application/json":  # not streamed (asked so, or the server ignored "stream")
                for delta in assembler.feed(self._json(await self._read_all(response, run, deadline))):
                    yield run.emitted(delta, self._clock())
            else:
                raise RemoteProtocolError(f"{self.name}: unexpected content-type {kind[:60]!r}", endpoint=self.endpoint.base_url)
        except RemoteServerError as exc:  # named, and never echoing the key
            raise RemoteServerError(self._redact(f"{self.name}: {exc}"), endpoint=exc.endpoint, status=exc.status) from None
        except httpx.TimeoutException:
            raise self._broken(f"no bytes for {self.endpoint.timeouts.read_s}s mid-reply (stalled)", run) from None
        except httpx.TransportError as exc:
            raise self._broken(f"the connection broke mid-reply ({type(exc).__name__})", run) from None
        finally:
            await response.aclose()

    async def _read_events(self, response: httpx.Response, assembler: ReplyAssembler, run: _Run, deadline: float) -> AsyncIterator[TokenDelta]:
        decoder = SSEDecoder(max_line_bytes=self.endpoint.max_event_bytes, max_event_bytes=self.endpoint.max_event_bytes, endpoint=self.endpoint.base_url)
        async for chunk in response.aiter_bytes():
            self._check_deadline(deadline, run)
            for data in decoder.feed(chunk):
                for delta in assembler.feed(self._json(data)):
                    yield run.emitted(delta, self._clock())
            if decoder.error is not None:
                raise self._server_error(decoder.error)
            if decoder.done:
                return
        raise self._broken("the stream ended before [DONE]", run)

    async def _read_all(self, response: httpx.Response, run: _Run, deadline: float) -> bytes:
        data = bytearray()
        async for chunk in response.aiter_bytes():
            self._check_deadline(deadline, run)
            data += chunk
            if len(data) > self.endpoint.max_event_bytes:
                raise RemoteProtocolError(f"{self.name}: reply larger than {self.endpoint.max_event_bytes} bytes", endpoint=self.endpoint.base_url)
        return bytes(data)

    async def _open(self, client: httpx.AsyncClient, path: str, body: dict[str, Any], run: _Run) -> httpx.Response:
        """Sends the request until a 200 head arrives, retrying only what the policy allows
        (``run.retry`` counts the retries this call has had, reading its replies included)."""
        policy = self.endpoint.retry
        while True:
            retry, retry_after = run.retry, None
            try:
                request = client.build_request("POST", self._url(path), json=body, headers=self._headers(), timeout=self._timeout())
                response = await client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                status, reason = None, f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                status, reason = None, f"unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    return response
                status = response.status_code
                reason = f"HTTP {status}: {await self._error_detail(response)}"
                if status not in policy.retry_statuses:
                    raise RemoteError(f"{self.name}: {reason}", endpoint=self.endpoint.base_url, status=status)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            delay = retry_delay(policy, retry, retry_after, self._rng)
            if delay is None:
                raise RemoteUnavailableError(f"{self.name}: {reason} (after {retry + 1} attempt(s))", endpoint=self.endpoint.base_url, status=status)
            run.retry += 1
            log.info("%s: %s; retry %d in %.2fs", self.name, reason, retry + 1, delay)
            await anyio.sleep(delay)

    async def _error_detail(self, response: httpx.Response) -> str:
        """A short, key-free message from an error reply (reads at most a few KiB)."""
        data = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= _ERROR_BODY_BYTES:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        text = data[:_ERROR_BODY_BYTES].decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
            error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
            text = str(error.get("message") or error.get("detail") or error) if isinstance(error, dict) else str(error)
        except ValueError:
            pass
        return self._redact(" ".join(text.split())[:200] or response.reason_phrase or "no message")

    def _json(self, data: str | bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteProtocolError(f"{self.name}: the reply is not valid JSON", endpoint=self.endpoint.base_url) from None

    def _server_error(self, value: str) -> RemoteServerError:
        """The server's error from a streamed ``error:`` line (JSON, or plain text)."""
        try:
            reported: Any = json.loads(value)
        except (ValueError, RecursionError):
            reported = value
        return server_error(reported, endpoint=self.endpoint.base_url)

    def _check_deadline(self, deadline: float, run: _Run) -> None:
        if self._clock() > deadline:
            raise self._broken(f"the reply ran past total_s={self.endpoint.timeouts.total_s}s", run)

    def _broken(self, why: str, run: _Run) -> StreamBrokenError:
        return StreamBrokenError(f"{self.name}: {why}", partial_text=run.partial_text, endpoint=self.endpoint.base_url)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        # Our own client: no transport retries (the policy above is the only one), no proxy from the environment.
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=0), trust_env=False, timeout=self._timeout()) as client:
            yield client

    def _timeout(self) -> httpx.Timeout:
        t = self.endpoint.timeouts
        return httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.write_s, pool=t.pool_s)

    def _url(self, path: str) -> str:
        return f"{self.endpoint.base_url}/{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream, application/json"}
        if self.endpoint.api_key is not None:
            headers["authorization"] = f"Bearer {self.endpoint.api_key.get_secret_value()}"
        return headers

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key.get_secret_value() if self.endpoint.api_key is not None else ""
        return text.replace(key, "***") if key else text


def _fan_out_body(body: dict[str, Any], index: int) -> dict[str, Any]:
    """The body of fan-out call ``index``: a seeded request gets seed + index, so choices differ."""
    if index == 0 or "seed" not in body:
        return body
    return {**body, "seed": (body["seed"] + index) % (2**32 - 1)}


def _retryable(exc: RemoteError, policy: Retry) -> bool:
    """Whether a reply that failed before any text may be tried again: a broken stream, or the
    server's error with a retryable status (or none: it did not say the request was wrong)."""
    if isinstance(exc, RemoteServerError):
        return exc.status is None or exc.status in policy.retry_statuses
    return isinstance(exc, StreamBrokenError)


def _server_fault(exc: RemoteError) -> bool:
    """Whether a failure counts against the server's circuit (a 4xx is the request's fault)."""
    if isinstance(exc, RemoteServerError):
        return exc.status is None or exc.status >= 500
    return isinstance(exc, (RemoteUnavailableError, StreamBrokenError, RemoteProtocolError))


class _Run:
    """What one ``generate`` call gathered: choices, usage, first-token time, text of choice 0,
    and the retries the current call has had."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.retry = 0
        self.first_at: float | None = None
        self.partial_text = ""
        self.choices: list[Choice] = []
        self.model: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens: int | None = 0

    def emitted(self, delta: TokenDelta, now: float) -> TokenDelta:
        if self.first_at is None:
            self.first_at = now
        if delta.index == 0:
            self.partial_text += delta.text
        return delta

    def absorb(self, assembler: ReplyAssembler, width: int, name: str) -> None:
        choices = assembler.choices()
        if len(assembler.seen) < width:
            raise RemoteProtocolError(
                f"{name}: asked for {width} choice(s), the server sent {len(assembler.seen)} (set fan_out_n=True for servers that ignore n)",
                endpoint=assembler.endpoint,
            )
        self.choices.extend(choices)
        self.model = self.model or assembler.model
        if assembler.usage is None:
            self.completion_tokens = None
        else:
            self.prompt_tokens += assembler.usage.prompt_tokens
            if self.completion_tokens is not None:
                self.completion_tokens += assembler.usage.completion_tokens

    def timings(self, now: float) -> Timings:
        total = now - self.started
        ttft = (self.first_at - self.started) if self.first_at is not None else total
        decode = self.completion_tokens if self.completion_tokens is not None else sum(c.tokens for c in self.choices)
        window = total - ttft
        rate = decode / window if window > 1e-6 else (decode / total if total > 0 else 0.0)
        return Timings(ttft_s=ttft, prefill_tokens=self.prompt_tokens, decode_tokens=decode, decode_tok_s=rate, total_s=total)
