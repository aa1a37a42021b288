"""Plots of benchmark results, drawn from a bench's final JSON line.

Every bench in bench/ ends by printing one JSON object. ``plot_bench`` draws the engine,
routing and speculative benches as their own charts (``orchestrator.cli.bench_plots``:
throughput against concurrency, quality against escalation, speedup per task and mode) and
any other bench as ``plot_ratios``: ``find_ratios`` collects every number whose key path names
a ratio (a key containing ``ratio``, ``speedup`` or ``_vs_``), drawn as horizontal bars with
the baseline (1.0) marked. matplotlib is imported only when drawing (the ``plots`` extra).

    orchestrator bench engine --plot engine.png --reps 1
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from orchestrator.cli.flag_errors import FlagError
from orchestrator.errors import ConfigError

__all__ = [
    "JsonLineTap",
    "MAX_BARS",
    "check_plot_path",
    "find_ratios",
    "last_json_object",
    "plot_bench",
    "plot_ratios",
    "pop_plot_flag",
    "run_capturing_json",
]

MAX_BARS = 60
_RATIO_WORDS = ("ratio", "speedup", "_vs_")


def check_plot_path(path: str | Path) -> Path:
    """A writable-looking ``.png`` path, checked before a long benchmark starts."""
    p = Path(path).expanduser()
    if p.suffix.lower() != ".png":
        raise FlagError("--plot", f"writes a PNG: the file name must end in .png, not {p.name!r}")
    if not p.parent.is_dir():
        raise FlagError("--plot", f"the folder {p.parent} does not exist")
    return p


def pop_plot_flag(args: list[str], plot: str | Path | None = None) -> tuple[Path | None, list[str]]:
    """Takes ``--plot FILE`` (or ``--plot=FILE``) out of a bench's own arguments; the last one wins."""
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--plot":
            plot = next(it, None)
            if plot is None:
                raise FlagError("--plot", "needs a file name (FILE.png)")
        elif arg.startswith("--plot="):
            plot = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return (check_plot_path(plot) if plot is not None else None), rest


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object, or None."""
    for line in reversed(text.splitlines()):
        found = _json_object(line)
        if found is not None:
            return found
    return None


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class JsonLineTap(io.TextIOBase):
    """A text stream that passes everything on and remembers the last line that is a JSON object.

    It holds only the line being written and the last JSON line, whatever the bench prints.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._line: list[str] = []
        self.last: dict[str, Any] | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._out.write(text)
        *done, tail = text.split("\n")
        for piece in done:
            self._line.append(piece)
            self._end_line()
        if tail:
            self._line.append(tail)
        return len(text)

    def _end_line(self) -> None:
        found = _json_object("".join(self._line))
        if found is not None:
            self.last = found
        self._line.clear()

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._out, "isatty", lambda: False)())

    def close_line(self) -> None:
        """Counts a last line printed without a newline."""
        if self._line:
            self._end_line()


def run_capturing_json(run: Callable[[], object], out: TextIO | None = None) -> dict[str, Any]:
    """Runs ``run`` with stdout passed through a tap; its last JSON line, or ``ConfigError`` if none."""
    import sys

    tap = JsonLineTap(out or sys.stdout)
    with contextlib.redirect_stdout(tap):
        run()
    tap.close_line()
    if tap.last is None:
        raise ConfigError("the benchmark printed no JSON line: nothing to plot")
    return tap.last


def find_ratios(data: dict[str, Any]) -> dict[str, float]:
    """Every finite number under a key path that names a ratio, labelled by its path (``a / b / c``)."""
    found: dict[str, float] = {}
    for path, value in _leaves(data, ()):
        if any(word in key.lower() for key in path for word in _RATIO_WORDS) and math.isfinite(value):
            found[" / ".join(path)] = value
    return _shorten(found)


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, str(i)))


def _shorten(found: dict[str, float]) -> dict[str, float]:
    """Drops the path parts every label shares at its start (``results / ...``)."""
    if len(found) < 2:
        return found
    split = [label.split(" / ") for label in found]
    common = 0
    while all(len(parts) > common + 1 for parts in split) and len({parts[common] for parts in split}) == 1:
        common += 1
    return {" / ".join(parts[common:]): value for parts, value in zip(split, found.values(), strict=True)}


def plot_ratios(data: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Draws the ratios of a bench's JSON result as a PNG; returns the path written."""
    target = check_plot_path(path)
    ratios = find_ratios(data)
    if not ratios:
        raise ConfigError("the benchmark's JSON line holds no ratios (keys with 'ratio', 'speedup' or '_vs_')")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'on-device-orchestrator[plots]'") from None
    shown = list(ratios.items())[:MAX_BARS]
    name = title or f"bench {data.get('bench', '')}".strip()
    if len(ratios) > MAX_BARS:
        name += f" (first {MAX_BARS} of {len(ratios)} ratios)"
    # One bar per ratio, top to bottom in the JSON's order; the baseline at 1.0.
    fig = Figure(figsize=(8, 1.2 + 0.32 * len(shown)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = [label for label, _ in shown]
    values = [value for _, value in shown]
    rows = range(len(shown))
    ax.barh(rows, values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.set_yticks(list(rows), labels)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    for row, value in zip(rows, values, strict=True):
        ax.annotate(f"{value:.2f}x", (value, row), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("ratio (1.0 = baseline)")
    ax.set_title(name)
    ax.margins(x=0.12)
    fig.savefig(target, dpi=100)
    return target


def plot_bench(data: dict[str, Any], path: str | Path) -> Path:
    """Draws a bench's JSON result as a PNG (its own chart where it has one, else its ratios); returns the path."""
    from orchestrator.cli.bench_plots import BENCH_FIGURES

    target = check_plot_path(path)
    figure = BENCH_FIGURES.get(str(data.get("bench")))
    if figure is None:
        return plot_ratios(data, target)
    figure(data).savefig(target, dpi=100)
    return target
