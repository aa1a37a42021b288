"""The engine's per-request and per-sequence state (worker thread only), and a request's result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.engine.handle import RequestHandle
from orchestrator.engine.sampling import Sampler
from orchestrator.engine.lookup_sources import LookupSources
from orchestrator.engine.speculative import Acceptance, AcceptanceByMatch, Drafter
from orchestrator.engine.text import StopMatcher, Utf8Stream
from orchestrator.types import (
    Choice,
    Completion,
    DraftCounts,
    FinishReason,
    GenerationRequest,
    SpeculativeStats,
    Timings,
    TokenDelta,
)

__all__ = ["Job", "Sequence"]


@dataclass(eq=False)
class Job:
    """One submitted request: its prompt tokens, its sequences and its clocks."""

    request: GenerationRequest
    prompt: list[int]
    max_tokens: int
    handle: RequestHandle
    t_submit: float = field(default_factory=time.perf_counter)
    t_admit: float = 0.0
    t_prefilled: float = 0.0
    t_first: float = 0.0
    prefill_computed: int = 0
    prefill_reused: int = 0
    seqs: list[Sequence] = field(default_factory=list)
    spec_mode: str | None = None  # "prompt-lookup" or "draft" when the request speculates
    spec_note: str | None = None

    @property
    def done(self) -> bool:
        return bool(self.seqs) and all(s.finish is not None for s in self.seqs)

    def completion(self, model: str, energy_source: str) -> Completion:
        """The finished request's result: its choices, its timings and what speculation did."""
        end = time.perf_counter()
        started = [s for s in self.seqs if s.out]
        generated = sum(len(s.out) for s in self.seqs)
        last = max((s.t_last for s in started), default=0.0)
        decode_s = last - self.t_first if started else 0.0
        prefill_s = self.t_prefilled - self.t_admit if self.t_prefilled else 0.0
        timings = Timings(
            queue_s=(self.t_admit or end) - self.t_submit,
            ttft_s=self.t_first - self.t_submit if self.t_first else 0.0,
            prefill_tokens=self.prefill_computed,
            prefill_reused_tokens=self.prefill_reused,
            prefill_tok_s=self.prefill_computed / prefill_s if prefill_s > 0 else 0.0,
            decode_tokens=generated,
            decode_tok_s=(generated - len(started)) / decode_s if decode_s > 0 else 0.0,
            total_s=end - self.t_submit,
            cpu_s=sum(s.cpu_s for s in self.seqs),
            energy_j=sum(s.energy_j for s in self.seqs),
            energy_source=energy_source,
        )
        choices: tuple[Choice, ...] = tuple(s.choice() for s in self.seqs)
        spec = None
        if self.request.speculative != "off":
            spec = SpeculativeStats(
                mode=self.spec_mode or "off",
                drafted=sum(s.drafted for s in self.seqs),
                accepted=sum(s.accepted for s in self.seqs),
                target_steps=sum(s.target_steps for s in self.seqs),
                tokens=generated - len(started),  # the first token of each choice comes from the prefill
                note=self.spec_note,
                sources=self._draft_sources(),
            )
        return Completion(model=model, choices=choices, timings=timings, speculative=spec)

    def _draft_sources(self) -> dict:
        """Drafted and accepted tokens per draft source, over all the request's sequences."""
        totals: dict[str, list[int]] = {}
        for seq in self.seqs:
            for source, (drafted, accepted) in seq.sources.items():
                total = totals.setdefault(source, [0, 0])
                total[0] += drafted
                total[1] += accepted
        return {source: DraftCounts(drafted=d, accepted=a) for source, (d, a) in totals.items()}


@dataclass(eq=False)
class Sequence:
    """One completion being generated in one KV slot.

    ``pending`` holds the tokens to feed at the next step: the rest of the
    prompt while prefilling, then the one token sampled last.
    """

    job: Job
    index: int
    sampler: Sampler
    slot: int = -1
    n_past: int = 0
    pending: list[int] = field(default_factory=list)
    out: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    finish: FinishReason | None = None
    t_last: float = 0.0
    cpu_s: float = 0.0
    energy_j: float = 0.0
    # speculation (drafter is None when the request does not speculate)
    drafter: Drafter | None = None
    acceptance: Acceptance = field(default_factory=Acceptance)  # of the draft model's drafts
    lookup: LookupSources | None = None  # prompt (and history) lookup: the drafter, or beside a draft model (auto)
    match_acceptance: AcceptanceByMatch = field(default_factory=AcceptanceByMatch)  # of lookup drafts, by source and length
    draft_group: Acceptance | None = None  # the rate the draft in flight updates
    drafted: int = 0
    accepted: int = 0
    sources: dict[str, list[int]] = field(default_factory=dict)  # draft source -> [drafted, accepted]
    target_steps: int = 0
    idle_draft_steps: int = 0
    spec_balance: float = 0.0  # target steps saved so far over plain decoding (negative: lost), by the fixed costs
    # one raw log-probability per token in ``out``, and the token's text, when the request asks for them
    logprobs: list[float] | None = None
    token_texts: list[str] | None = None
    logprobs_sent: int = 0  # how many of them went out with a delta

    def __post_init__(self) -> None:
        if self.job.request.logprobs:
            self.logprobs = []
            self.token_texts = []
        self._utf8 = Utf8Stream()
        self._stops = StopMatcher(self.job.request.stop)

    def record_draft(self, drafted: int, accepted: int) -> None:
        """Counts a verified draft: in total, for its source, and in the acceptance rate it was sized by."""
        self.drafted += drafted
        self.accepted += accepted
        group = self.draft_group
        counts = self.sources.setdefault(group.source if group is not None else "prompt", [0, 0])
        counts[0] += drafted
        counts[1] += accepted
        if group is not None:
            group.update(drafted, accepted)

    @property
    def prefilling(self) -> bool:
        return self.finish is None and not self.out and bool(self.pending)

    def accept(
        self, token: int, piece: bytes, is_eog: bool, max_positions: int, logprob: float | None = None
    ) -> None:
        """Takes one sampled token (and its log-probability when asked for): stream its text, or finish."""
        now = time.perf_counter()
        if not self.out and not self.job.t_first:
            self.job.t_first = now
        self.t_last = now
        if is_eog:
            self.end("stop")
            return
        self.out.append(token)
        if self.logprobs is not None and self.token_texts is not None:
            assert logprob is not None, "the request asked for logprobs"
            self.logprobs.append(logprob)
            self.token_texts.append(piece.decode("utf-8", "replace"))
        shown, stopped = self._stops.feed(self._utf8.feed(piece))
        self._emit(shown)
        if stopped:
            self.finish = "stop"
        elif len(self.out) >= self.job.max_tokens or self.n_past + 1 >= max_positions:
            self.end("length")
        else:
            self.pending = [token]

    def end(self, reason: FinishReason) -> None:
        """Finishes the sequence, releasing the text held back for stop strings."""
        if reason != "cancelled":
            self._emit(self._stops.feed(self._utf8.flush())[0] + self._stops.flush())
        self.finish = reason
        self.pending = []

    def _emit(self, text: str) -> None:
        if text:
            self.text.append(text)
            logprobs = texts = None
            if self.logprobs is not None and self.token_texts is not None:  # those of the tokens since the last delta
                logprobs, texts = tuple(self.logprobs[self.logprobs_sent:]), tuple(self.token_texts[self.logprobs_sent:])
                self.logprobs_sent = len(self.logprobs)
            self.job.handle.put(TokenDelta(index=self.index, text=text, logprobs=logprobs, token_texts=texts))

    def choice(self) -> Choice:
        assert self.finish is not None
        return Choice(
            index=self.index,
            text="".join(self.text),
            tokens=len(self.out),
            finish_reason=self.finish,
            token_ids=tuple(self.out),
            logprobs=None if self.logprobs is None else tuple(self.logprobs),
            token_texts=None if self.token_texts is None else tuple(self.token_texts),
        )
