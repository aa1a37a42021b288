"""How many threads each decode step runs on, learned from the steps' own durations.

llama.cpp's threads meet at a barrier after every operation of a step, and the
barrier waits for the slowest thread. With another busy program on the CPU, the
OS takes one of our threads off its core now and then, and the others wait for it
(spinning): on 2 cores beside one busy process, 2 threads decoded at a quarter of
their idle rate, where 1 thread kept two thirds of it. No setting of llama.cpp's
own fixes that here: the build waits in OpenMP barriers (its threadpool's poll
level is unused), and OpenMP's passive waiting halved idle decoding.

So the engine measures. Each class of step size (rows per step: 1, 2-3, 4-15,
16-63, 64 and more) keeps its own choice among a ladder of thread counts (the
configured count, then halved down to 1), and learns from every step:

1. a step updates the estimate of its thread count: seconds per row, averaged over
   about the last half second of that class's steps (a long step weighs more);
2. a probe runs a few steps on another count (one, when it is clearly losing) and sets
   that count's estimate to their median. The next lower count is probed when the current count's estimate has risen
   well above the lowest it showed (something else took the CPU), and once at the
   start; the next higher count is probed now and then, so that the engine goes back
   to more threads when the CPU is free again. Probes are spaced in real time so that
   what each is expected to lose (its steps' time beyond the current count's) is at
   most about 1/20 of the time between them;
3. after each step the class moves to a count whose estimate is clearly lower. A move
   is news for the other classes too (the load changed): each of them probes the next
   count in the same direction at its next step.

Only the step's speed depends on this choice, with one exception in llama.cpp's CPU
flash attention: a one-row step over 512 or more KV cells on 2 or more threads
splits its attention over the threads and sums in another order (on 1 thread, and
in multi-row steps on any count, the logits are the same bits). There, a step's
logits can differ with the thread count, and so can a greedy token at a near-tie:
``EngineConfig(thread_policy="fixed")`` keeps one count for bit-for-bit repeatable runs.
The adaptive policy keeps idle runs repeatable too: a step the engine marks ``steady`` (one
row, once the cache has held 256 cells: llama.cpp rounds the attended cells up to a multiple
of 256) never starts the first look below, the one probe that an idle machine makes; only a
change of load (a slowed step, a move in another class) changes its count.
"""

from __future__ import annotations

import bisect
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.engine.native import Batch, NativeContext

__all__ = ["StepThreads", "thread_ladder"]

log = logging.getLogger(__name__)

# Rows per step that start a new class, and the classes' names.
_CLASS_EDGES = (2, 4, 16, 64)
_CLASS_NAMES = ("1", "2-3", "4-15", "16-63", "64+")
_TAU_S = 0.5  # time constant of the per-count averages, in seconds of the class's steps
_SLOWED = 1.3  # the current count is "slowed" above this many times its lowest estimate
_MARGIN = 0.1  # move to a count only when its estimate is this much lower
_PROBE_STEPS = 3  # a probe ends after this many steps, or this many seconds of them, ...
_PROBE_MAX_S = 0.2
_PROBE_LOSING = 1.5  # ... or after a step this many times slower than the current count's estimate
_PROBE_EVERY_S = 1.0  # at least this long between periodic probes of a class ...
_PROBE_SHARE = 0.05  # ... and long enough that what a probe is expected to lose is at most this share
_TRIGGER_GAP_S = 0.25  # a slowdown may start a probe this soon after the last one


def thread_ladder(max_threads: int) -> tuple[int, ...]:
    """The counts a policy picks from, ascending: ``max_threads`` halved down to 1 (8 -> 1, 2, 4, 8)."""
    counts = {max_threads}
    while max_threads > 1:
        max_threads //= 2
        counts.add(max_threads)
    return tuple(sorted(counts))


@dataclass
class _StepClass:
    """What one class of step sizes has learned; times from the policy's clock."""

    current: int
    estimate: dict[int, float] = field(default_factory=dict)  # seconds per row, by thread count
    lowest: dict[int, float] = field(default_factory=dict)  # the lowest estimate each count showed
    probe: int | None = None
    probe_rows_s: list[float] = field(default_factory=list)  # each probe step's seconds per row
    probe_s: float = 0.0
    hint: int | None = None  # the count to probe at the next step: another class moved that way
    last_probe_end: float = 0.0
    next_probe: float = 0.0


class StepThreads:
    """Picks each decode step's thread count and learns from its duration (see the module doc).

    ``adaptive=False`` always picks ``max_threads``. ``clock`` (seconds, monotonic) spaces the
    probes: in real time, so that after a pause in the work (the load may have changed) a
    class looks again at its next step. Pure apart from ``decode``, which runs a step on a
    context: tests drive ``threads_for`` and ``observe`` with made-up durations and a fake clock.
    """

    def __init__(self, max_threads: int, *, adaptive: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self.max_threads = max_threads
        self._clock = clock
        self.counts = thread_ladder(max_threads) if adaptive else (max_threads,)
        self._classes = [_StepClass(current=max_threads) for _ in range(len(_CLASS_EDGES) + 1)]

    def threads_for(self, rows: int, *, steady: bool = False) -> int:
        """The thread count for a step of ``rows`` rows; may start a probe of another count
        (on a ``steady`` step, only one that a change of load calls for: see the module doc)."""
        c = self._class(rows)
        if c.probe is None:
            c.probe = self._probe_target(c, steady)
            c.probe_rows_s, c.probe_s = [], 0.0
        return c.current if c.probe is None else c.probe

    def observe(self, rows: int, threads: int, seconds: float) -> None:
        """Learns from a step of ``rows`` rows that took ``seconds`` on ``threads`` threads."""
        if len(self.counts) == 1 or threads not in self.counts:
            return
        c = self._class(rows)
        per_row = seconds / max(rows, 1)
        reschedule = not c.estimate  # a first step, a finished probe or a move: space the next probe
        if c.probe == threads:  # 2. a probe: its median becomes the count's estimate
            c.probe_rows_s.append(per_row)
            c.probe_s += seconds
            losing = c.current in c.estimate and per_row > _PROBE_LOSING * c.estimate[c.current]
            if len(c.probe_rows_s) < _PROBE_STEPS and c.probe_s < _PROBE_MAX_S and not losing:
                return
            self._set(c, threads, statistics.median(c.probe_rows_s))
            c.probe, c.last_probe_end, reschedule = None, self._clock(), True
            if c.current in c.estimate:  # the current count's level now is its new normal
                c.lowest[c.current] = c.estimate[c.current]
        else:  # 1. the running average, weighted by the step's length
            old = c.estimate.get(threads)
            weight = 1.0 - math.exp(-seconds / _TAU_S)
            self._set(c, threads, per_row if old is None else old + weight * (per_row - old))
        if self._choose(c, rows) or reschedule:
            self._schedule(c, rows)

    def decode(self, ctx: NativeContext, batch: Batch, *, steady: bool = False) -> None:
        """Runs one decode step of ``batch`` on ``ctx`` on the count picked for its size."""
        rows = batch.n_tokens
        threads = self.threads_for(rows, steady=steady)
        start = time.perf_counter()
        ctx.decode(batch, threads=threads)
        self.observe(rows, threads, time.perf_counter() - start)

    def choices(self) -> dict[str, int]:
        """The thread count each class of step sizes runs on now, e.g. ``{"1": 2, "2-3": 2, ..., "64+": 1}``."""
        return {name: c.current for name, c in zip(_CLASS_NAMES, self._classes, strict=True)}

    # -- the decisions -----------------------------------------------------------
    def _class(self, rows: int) -> _StepClass:
        return self._classes[bisect.bisect_right(_CLASS_EDGES, rows)]

    def _set(self, c: _StepClass, threads: int, per_row: float) -> None:
        c.estimate[threads] = per_row
        c.lowest[threads] = min(c.lowest.get(threads, math.inf), per_row)

    def _periodic_target(self, c: _StepClass) -> int | None:
        """The count a periodic probe looks at: a first look below, else the next count up."""
        i = self.counts.index(c.current)
        if i > 0 and self.counts[i - 1] not in c.estimate:
            return self.counts[i - 1]
        return self.counts[i + 1] if i + 1 < len(self.counts) else None

    def _schedule(self, c: _StepClass, rows: int) -> None:
        """Spaces the next periodic probe so that the time it is expected to lose (beside the
        current count, for a step of ``rows`` rows) is at most ``_PROBE_SHARE`` of the time between."""
        target = self._periodic_target(c)
        if target is None:
            return
        now = c.estimate[c.current]
        then = c.estimate.get(target, 2.0 * now)  # a count never measured: guess half the speed
        step_s = then * rows
        probe_s = step_s if then > _PROBE_LOSING * now else max(step_s, min(_PROBE_STEPS * step_s, _PROBE_MAX_S))
        lost = probe_s * max(0.0, 1.0 - now / then)
        c.next_probe = self._clock() + max(_PROBE_EVERY_S, lost / _PROBE_SHARE)

    def _probe_target(self, c: _StepClass, steady: bool) -> int | None:
        """The count to probe before this step, if one is due (step 2 of the module doc)."""
        if len(self.counts) == 1:
            return None
        if c.hint is not None:
            hint, c.hint = c.hint, None
            return hint
        i = self.counts.index(c.current)
        lower = self.counts[i - 1] if i > 0 else None
        now = c.estimate.get(c.current)
        slowed = now is not None and now > _SLOWED * c.lowest[c.current]
        if lower is not None and slowed and self._clock() - c.last_probe_end >= _TRIGGER_GAP_S:
            return lower  # something took the CPU: would fewer threads wait less?
        if steady and c.current == self.max_threads:
            return None  # the only periodic probe at the top is the first look below
        # now and then: a first look below, or is the CPU free again? (None at the top)
        return self._periodic_target(c) if now is not None and self._clock() >= c.next_probe else None

    def _choose(self, c: _StepClass, rows: int) -> bool:
        """Step 3: moves to the count with the lowest estimate when it is clearly lower; says whether it moved."""
        best = min(c.estimate, key=c.estimate.__getitem__)
        current = c.estimate.get(c.current)
        if current is None or best == c.current or c.estimate[best] >= (1.0 - _MARGIN) * current:
            return False
        log.debug("steps of %d rows: %d -> %d threads (%.2f vs %.2f ms per row)",
                  rows, c.current, best, c.estimate[best] * 1e3, current * 1e3)
        down = best < c.current
        c.current = best
        for other in self._classes:  # news for the other classes: probe the same way next
            i = self.counts.index(other.current)
            step = i - 1 if down else i + 1
            if other is not c and other.probe is None and 0 <= step < len(self.counts):
                other.hint = self.counts[step]
        return True
