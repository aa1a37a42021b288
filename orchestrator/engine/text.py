"""Turning token bytes into streamed text: UTF-8 reassembly and stop strings."""

from __future__ import annotations

import codecs

__all__ = ["StopMatcher", "Utf8Stream"]


class Utf8Stream:
    """Decodes token pieces whose bytes may split a UTF-8 character across tokens."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text without ever emitting part of one.

    Text that could still turn into a stop string is held back until the next
    piece shows whether it does.
    """

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns ``(text safe to emit, stopped)``; after a stop, feed no more."""
        buf = self._held + text
        if not self._stops:
            self._held = ""
            return buf, False
        hits = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[: min(hits)], True
        keep = self._longest_partial(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """The held-back text, when generation ends without a stop string."""
        held, self._held = self._held, ""
        return held

    def _longest_partial(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that begins some stop string."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:k]):
                    best = k
                    break
        return best
