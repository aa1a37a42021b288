"""Progress on the command line, on stderr and only on a terminal: piped output stays clean.

* ``ProgressBar``: bytes done of a known total (model pull, assembly, sha256 checks).
* ``StepProgress``: work items done of a known count, with the elapsed time and an
  estimate of what is left (benchmarks); ``note`` prints a line above it.
* ``Activity``: native work whose progress nobody reports (llama.cpp's quantizer): a
  spinner and the elapsed time, redrawn by a ticker thread; it never shows a fraction.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pydantic's dependency
    from typing_extensions import Self

__all__ = ["Activity", "ProgressBar", "StepProgress"]

_REDRAW_S = 0.1
_SPINNER = "|/-\\"


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ProgressBar:
    """Call it with ``(done, total)``; it redraws at most ten times a second, on a TTY only."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._shown = False
        self._tty = _is_tty(self.stream)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._tty or (now - self._last < _REDRAW_S and done < total):
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {frac:6.1%} {done / 2**20:8.1f} MiB")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


class StepProgress:
    """``advance()`` after each of ``total`` steps; shows ``label 3/12 0:41 left ~1:30  detail``.

    The estimate is the mean time per step so far times the steps left: honest for
    steps of similar size, and labelled ``~``. Use as a context manager or call ``close()``.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream or sys.stderr
        self._tty = _is_tty(self.stream)
        self._start = time.monotonic()
        self._detail = ""
        self._width = 0  # of the line drawn last, to blank it

    def advance(self, detail: str = "", steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        self._detail = detail
        self._draw()

    def note(self, text: str) -> None:
        """A line of its own (a measurement, say): above the progress line on a TTY, plain otherwise."""
        if self._tty:
            self._clear()
        self.stream.write(text + "\n")
        self._draw()

    def line(self) -> str:
        """The progress line as it is drawn now."""
        elapsed = time.monotonic() - self._start
        text = f"{self.label} {self.done}/{self.total} {_clock(elapsed)}"
        if 0 < self.done < self.total:
            text += f" left ~{_clock(elapsed / self.done * (self.total - self.done))}"
        return text + (f"  {self._detail}" if self._detail else "")

    def _draw(self) -> None:
        if not self._tty:
            return
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def _clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def close(self) -> None:
        if self._tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Activity:
    """``with Activity("quantizing"):`` shows ``quantizing / 0:07`` while the block runs, then the time it took.

    A daemon ticker thread redraws every 0.1 s (native calls release the GIL, so it keeps
    ticking while llama.cpp works); it is stopped and joined when the block ends.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._tty = _is_tty(self.stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self._width = 0  # of the line drawn last, to blank it
        self.elapsed_s = 0.0

    def __enter__(self) -> Self:
        self._start = time.monotonic()
        if self._tty:
            self._thread = threading.Thread(target=self._tick, name="orchestrator-activity", daemon=True)
            self._thread.start()
        return self

    def _tick(self) -> None:
        frame = 0
        while True:
            text = f"{self.label} {_SPINNER[frame % len(_SPINNER)]} {_clock(time.monotonic() - self._start)}"
            self.stream.write("\r" + text)
            self.stream.flush()
            self._width = len(text)
            frame += 1
            if self._stop.wait(_REDRAW_S):
                return

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.elapsed_s = time.monotonic() - self._start
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        outcome = "failed" if exc_type is not None else "done"
        self.stream.write("\r" + f"{self.label}: {outcome} in {self.elapsed_s:.1f} s".ljust(self._width) + "\n")
        self.stream.flush()
