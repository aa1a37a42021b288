"""A small, strict reader of server-sent events (the stream format of OpenAI-compatible servers).

Pure: bytes go in, each event's ``data`` comes out. It is stricter than a
browser's reader on purpose, so a server that speaks something else (raw
JSON lines, an HTML error page) fails loudly instead of yielding nothing:

- lines end with ``\\n``, ``\\r\\n`` or ``\\r``; text must be UTF-8;
- a line is a comment (``:...``) or a field ``data``, ``event``, ``id`` or
  ``retry``; any other line is a protocol error;
- a line may hold at most ``max_line_bytes`` and one event's data at most
  ``max_event_bytes``, so a huge or endless line cannot eat memory;
- the stream ends with the event ``[DONE]``; ``close()`` says whether it did;
- llama.cpp's servers report a failure mid-stream with a line ``error: {...}``: the reader
  keeps that line's value whole in ``error`` and reads nothing after it (the caller turns it
  into the server's error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import RemoteProtocolError

__all__ = ["DONE", "SSEDecoder"]

DONE = "[DONE]"
_FIELDS = frozenset({"data", "event", "id", "retry"})


@dataclass
class SSEDecoder:
    """Feeds on raw bytes, returns the data of each complete event, in order.

    ``endpoint`` only labels the errors. After ``[DONE]`` nothing more is
    returned: later bytes are ignored.
    """

    max_line_bytes: int = 1 << 20
    max_event_bytes: int = 4 << 20
    endpoint: str | None = None
    done: bool = False
    error: str | None = None
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _data: list[str] = field(default_factory=list, repr=False)
    _data_bytes: int = 0
    _skip_lf: bool = False

    def feed(self, chunk: bytes) -> list[str]:
        """Takes the next bytes of the stream; returns the events they completed (those before an
        ``error`` line, which ends the stream)."""
        if self.done or self.error is not None:
            return []
        events: list[str] = []
        data = bytes(chunk)
        # A "\r\n" split across two chunks: the "\n" belongs to the line already ended.
        if self._skip_lf and data.startswith(b"\n"):
            data = data[1:]
        self._skip_lf = False
        start = 0
        while start < len(data):
            cut = _line_end(data, start)
            if cut < 0:
                self._buffer += data[start:]
                self._check_line_size(len(self._buffer))
                break
            self._buffer += data[start:cut]
            self._check_line_size(len(self._buffer))
            line, self._buffer = bytes(self._buffer), bytearray()
            # "\r\n" counts as one line end; a trailing "\r" may be followed by "\n" in the next chunk.
            if data[cut] == 0x0D and cut + 1 < len(data) and data[cut + 1] == 0x0A:
                start = cut + 2
            else:
                start = cut + 1
                self._skip_lf = data[cut] == 0x0D and cut + 1 == len(data)
            event = self._line(line)
            if self.error is not None:  # nothing after the server's error counts
                return events
            if event is None:
                continue
            if event == DONE:
                self.done = True
                return events
            events.append(event)
        return events

    def close(self) -> None:
        """Says the stream ended; raises ``RemoteProtocolError`` unless ``[DONE]`` came first."""
        if self.error is not None:
            raise RemoteProtocolError("the event stream ended with an error line", endpoint=self.endpoint)
        if not self.done:
            raise RemoteProtocolError("the event stream ended without [DONE]", endpoint=self.endpoint)

    def _line(self, raw: bytes) -> str | None:
        """Handles one line; returns an event's data when the line was the blank one ending it."""
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("the event stream is not UTF-8", endpoint=self.endpoint) from None
        if not line:
            if not self._data:
                return None
            event, self._data, self._data_bytes = "\n".join(self._data), [], 0
            return event
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and name == "error":  # llama.cpp's server: the stream ends with its error
            self.error = value.removeprefix(" ")
            return None
        if not colon or name not in _FIELDS:
            raise RemoteProtocolError(f"not an event-stream line: {line[:60]!r}", endpoint=self.endpoint)
        value = value.removeprefix(" ")
        if name == "data":
            self._data_bytes += len(raw)
            if self._data_bytes > self.max_event_bytes:
                raise RemoteProtocolError(f"an event is larger than {self.max_event_bytes} bytes", endpoint=self.endpoint)
            self._data.append(value)
        return None

    def _check_line_size(self, size: int) -> None:
        if size > self.max_line_bytes:
            raise RemoteProtocolError(f"an event-stream line is longer than {self.max_line_bytes} bytes", endpoint=self.endpoint)


def _line_end(data: bytes, start: int) -> int:
    """Index of the first ``\\r`` or ``\\n`` at or after ``start``, or -1."""
    cr, lf = data.find(b"\r", start), data.find(b"\n", start)
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)
