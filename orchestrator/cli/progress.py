"""Progress on the command line, on stderr and only on a terminal: piped output stays clean.

Libraries report progress through callbacks and never draw; these classes are the callbacks the
CLI gives them, drawn with ``tqdm`` (bytes, rate and time left):

* ``ProgressBar``: bytes of a file, ``(done, total)`` (model download, assembly, sha256 checks);
  a call that starts again from fewer bytes or names another total starts a new bar (the next file).
* ``CountBar``: items of a known count, ``(done, total, detail)`` (the quantizer's tensors).
* ``StepProgress``: work items done of a known count, with the elapsed time and an
  estimate of what is left (benchmarks); ``note`` prints a line above it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pydantic's dependency
    from typing_extensions import Self

__all__ = ["CountBar", "ProgressBar", "StepProgress"]

_REDRAW_S = 0.1


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ProgressBar:
    """Call it with ``(done_bytes, total_bytes)``: ``label  45%|####6     | 41.2M/92.1M [00:03<00:04, 12.9MB/s]``.

    Draws on a terminal only (a tqdm bar on ``stream``, stderr by default); ``close()`` ends it."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._tty = _is_tty(self.stream)
        self._bar: tqdm | None = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._tty:
            return
        if self._bar is None or done < self._done or total != self._bar.total:
            self.close()  # the next file
            self._bar = tqdm(total=total or None, desc=self.label, unit="B", unit_scale=True, unit_divisor=1024,
                             file=self.stream, mininterval=_REDRAW_S, dynamic_ncols=True)
            self._done = 0
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class CountBar:
    """Call it with ``(done, total, detail)``: ``label  37%|###7      | 100/272 [00:02<00:03, 48.1 tensor/s] blk.9.ffn_up.weight``.

    Draws on a terminal only; ``unit`` names what is counted. Use as a context manager or call ``close()``."""

    def __init__(self, label: str, unit: str = "it", stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self._tty = _is_tty(self.stream)
        self._bar: tqdm | None = None

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        if not self._tty:
            return
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, unit=f" {self.unit}", file=self.stream,
                             mininterval=_REDRAW_S, dynamic_ncols=True)
        self._bar.total = total
        self._bar.set_postfix_str(detail, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
