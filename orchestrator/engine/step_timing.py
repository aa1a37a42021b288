"""Timing decode steps of weights files: one row, and k rows at once.

A k-row step is what the engine runs for k parallel sequences (or a draft of k - 1
tokens being verified): k sequences, each a short prompt long, decode one more token
each, with logits for every row. Each file gets its own context, prefilled once;
after every timed step the new cells are removed again, so every sample sees the
same KV cache. Files take turns within each repetition (their order rotating), so
drift on a busy machine hits them all alike, and the median of the repetitions is
kept (each sample itself the median of a few steps).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchestrator.engine.native import Batch, NativeContext, NativeModel

__all__ = ["time_steps"]

log = logging.getLogger(__name__)

_STEPS_PER_SAMPLE = 3


class _Stepper:
    """One file, a context holding ``max_rows`` sequences that share a short prompt."""

    def __init__(self, path: Path, prompt: list[int], max_rows: int, threads: int) -> None:
        self.model = NativeModel(path)
        self.prompt = prompt
        capacity = max(len(prompt), max_rows)
        try:
            self.ctx = NativeContext(
                self.model, n_ctx=len(prompt) + 2 * max_rows + 64, n_batch=capacity, n_seq_max=max_rows,
                n_threads=threads, type_k="f16", type_v="f16", flash_attn="on",
            )
            self.batch = Batch(capacity)
        except BaseException:
            self.model.free()
            raise
        self.batch.add(prompt, 0, 0, True)
        self.ctx.decode(self.batch)
        for seq in range(1, max_rows):  # the unified KV cache shares the prompt's cells
            self.ctx.seq_cp(0, seq, 0, len(prompt))

    def step(self, rows: int) -> float:
        """Seconds of one step in which sequences 0..rows-1 each decode one token."""
        pos = len(self.prompt)
        self.batch.clear()
        for seq in range(rows):
            self.batch.add([self.prompt[seq % len(self.prompt)]], pos, seq, True)
        start = time.perf_counter()
        self.ctx.decode(self.batch)
        seconds = time.perf_counter() - start
        for seq in range(rows):
            self.ctx.seq_rm(seq, pos, -1)
        return seconds

    def sample(self, rows: int) -> float:
        return statistics.median(self.step(rows) for _ in range(_STEPS_PER_SAMPLE))

    def free(self) -> None:
        self.batch.free()
        self.ctx.free()
        self.model.free()


def time_steps(
    files: Mapping[str, Path],
    *,
    prompt: Sequence[int],
    rows: Sequence[int] = (1, 4, 8, 16),
    reps: int = 5,
    threads: int,
    budget_s: float | None = None,
    on_rep: Callable[[int, int], None] | None = None,
) -> dict[str, dict[int, float]]:
    """Median seconds of a step with each of ``rows`` rows, for each file (keyed as ``files``).

    ``prompt``: the tokens every sequence holds before the timed steps (a few dozen).
    ``budget_s``: no new repetition starts after this many seconds (one always runs), so a
    machine slowed by other work ends the timing sooner, with fewer repetitions.
    ``on_rep(done, total)`` is called after each repetition.
    """
    started = time.perf_counter()
    samples: dict[str, dict[int, list[float]]] = {key: {r: [] for r in rows} for key in files}
    steppers: dict[str, _Stepper] = {}
    try:
        for key, path in files.items():
            steppers[key] = _Stepper(path, list(prompt), max(rows), threads)
            for r in rows:  # warm-up: first steps of a shape allocate and fault pages in
                steppers[key].step(r)
        keys = list(files)
        for rep in range(reps):
            order = keys[rep % len(keys) :] + keys[: rep % len(keys)]
            for key in order:
                for r in rows:
                    samples[key][r].append(steppers[key].sample(r))
            if on_rep is not None:
                on_rep(rep + 1, reps)
            if budget_s is not None and rep + 1 < reps and time.perf_counter() - started > budget_s:
                log.warning("step timing stopped after %d of %d repetitions: past its %.0f s budget (a busy machine?)",
                            rep + 1, reps, budget_s)
                break
    finally:
        for stepper in steppers.values():
            stepper.free()
    return {key: {r: statistics.median(s) for r, s in by_rows.items()} for key, by_rows in samples.items()}
