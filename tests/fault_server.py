"""A tiny loopback HTTP server that misbehaves on cue, for the remote backend's tests.

Each test gives a script: one handler per expected request, used in order.
A handler gets a ``Conn`` and writes whatever bytes it likes: a proper
OpenAI-style reply, a 429 with ``Retry-After``, a stream that stalls or is
reset half-way, malformed JSON or SSE. Every wait in here is bounded and
stops when the server is closed, so a test can never hang on it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import Self

__all__ = ["Conn", "FaultServer", "Seen", "chat_chunk", "json_reply", "llama_error_stream", "refused_port", "sse_reply", "stall_head", "status_reply"]

Handler = Callable[["Conn"], None]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Conn:
    """The server side of one connection."""

    sock: socket.socket
    stop: threading.Event
    disconnected: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, status: int, headers: dict[str, str] | None = None, *, chunked: bool = False, length: int | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self) -> None:
        self.send(b"0\r\n\r\n")

    def wait(self, seconds: float) -> None:
        """Sleeps up to ``seconds``, less if the server closes or the client hangs up."""
        self.sock.settimeout(seconds)
        try:
            if self.sock.recv(1) == b"":
                self.disconnected.set()
        except (TimeoutError, OSError):
            pass

    def reset(self) -> None:
        """Closes with a TCP reset (RST), as a crashed server or proxy would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultServer:
    """Serves ``script`` (handlers in request order) on 127.0.0.1; use as a context manager."""

    def __init__(self, script: Iterable[Handler] = ()) -> None:
        self.script = list(script)
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self.conns: list[Conn] = []
        self._lock = threading.Lock()
        owner = self

        class _Handle(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        self._server = _Server(("127.0.0.1", 0), _Handle)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for conn in self.conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        request = _read_request(sock)
        if request is None:
            return
        conn = Conn(sock, self.stop)
        with self._lock:
            self.seen.append(request)
            self.conns.append(conn)
            handler = self.script.pop(0) if self.script else status_reply(500, {"error": {"message": "fault server: script exhausted"}})
        try:
            handler(conn)
        except OSError:
            pass  # the client went away; that is what some tests check


def _read_request(sock: socket.socket) -> Seen | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            return None
        body += piece
    return Seen(method, path, headers, json.loads(body) if body else None)


# -- handlers --------------------------------------------------------------------------------------


def status_reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    """A whole reply with a JSON (or raw bytes) body."""

    def handle(conn: Conn) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        conn.head(status, {"Content-Type": "application/json", **(headers or {})}, length=len(data))
        conn.send(data)

    return handle


def json_reply(body: Any, headers: dict[str, str] | None = None) -> Handler:
    return status_reply(200, body, headers)


def sse_reply(events: Iterable[Any], *, done: bool = True, then: str = "end", pause: float = 0.0, content_type: str = "text/event-stream") -> Handler:
    """A chunked event stream: each event is a dict (sent as ``data: <json>``) or raw bytes sent as they are.

    ``then`` says how it ends after the events: ``end`` (proper end), ``close``
    (socket closed mid-body), ``reset`` (TCP reset) or ``stall`` (silence until
    the client leaves or the server stops).
    """

    def handle(conn: Conn) -> None:
        conn.head(200, {"Content-Type": content_type}, chunked=True)
        for event in events:
            conn.chunk(event if isinstance(event, bytes) else b"data: " + json.dumps(event).encode() + b"\n\n")
            if pause:
                conn.wait(pause)
        if then == "end":
            if done:
                conn.chunk(b"data: [DONE]\n\n")
            conn.end_chunks()
        elif then == "reset":
            conn.reset()
        elif then == "stall":
            conn.wait(30)
        # "close": return without ending the chunked body; the server closes the socket

    return handle


def llama_error_stream(error: Any, events: Iterable[Any] = ()) -> Handler:
    """llama.cpp's server failing mid-stream: ``events``, then one line ``error: <json>`` and the
    end of the body, without ``[DONE]`` (its ``server_sent_event(sink, "error", ...)``)."""
    line = b"error: " + (error if isinstance(error, bytes) else json.dumps(error).encode()) + b"\n\n"
    return sse_reply([*events, line], done=False)


def stall_head(seconds: float = 30) -> Handler:
    """Reads the request and answers nothing (slow first byte)."""
    return lambda conn: conn.wait(seconds)


def chat_chunk(content: str | None = None, *, index: int = 0, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One OpenAI chat.completion.chunk."""
    delta: dict[str, Any] = {} if content is None else {"content": content}
    delta.update(extra.pop("delta", {}))
    choice = {"index": index, "delta": delta, "finish_reason": finish, **extra}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "fault-model", "choices": [choice]}


def refused_port() -> int:
    """A loopback port with nobody listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
