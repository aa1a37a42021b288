"""The engine's speculative decoding: which drafter a request gets, how long its
drafts are, and how the target's batched step verifies them.

It works on the engine's own context, batch and KV ledger, from the engine's
worker thread only; the decisions it relies on are the pure ones in
``speculative.py``.
"""

from __future__ import annotations

import logging
import time

from orchestrator.engine.draft_model import DraftModel
from orchestrator.engine.history_index import HistoryIndex
from orchestrator.engine.ledger import KVLedger
from orchestrator.engine.lookup_sources import LookupSources
from orchestrator.engine.native import Batch, NativeContext, NativeModel
from orchestrator.engine.prompt_lookup import PromptLookupDrafter
from orchestrator.engine.sequence import Job, Sequence
from orchestrator.engine.speculative import (
    Acceptance,
    StepCostModel,
    accept_or_resample,
    choose_draft_length,
)
from orchestrator.models.weight_choice import StepCosts

__all__ = ["Speculator"]

log = logging.getLogger(__name__)

_MAX_DRAFT = 16
_PROBE_AFTER = 8  # steps without a draft after which one short draft re-measures acceptance
_DRAFT_COST_PRIOR = 0.35  # a draft step / a target step, before it is measured (design card: 0.3-0.4)


class Speculator:
    """Speculation for one engine: drafters, draft lengths from measured costs, verification.

    ``measured``: the step times the weights tune stored for this file on this machine
    (``orchestrator.engine.variants.measured_step_costs``). Given, the cost model starts
    from them and the start-up calibration is skipped; without them, the first drafting
    step times a 1-row and an 8-row step (``_calibrate``). Either way, live steps then
    keep refining the fit.
    """

    def __init__(
        self,
        *,
        ctx: NativeContext,
        model: NativeModel,
        ledger: KVLedger,
        batch: Batch,
        scratch_slot: int,
        max_positions: int,
        draft_length: int | None,
        draft_model: DraftModel | None,
        draft_error: str | None,
        measured: StepCosts | None = None,
        history: HistoryIndex | None = None,
    ) -> None:
        self._ctx = ctx
        self._model = model
        self._ledger = ledger
        self._batch = batch
        self._scratch = scratch_slot
        self.max_positions = max_positions
        self._draft_length = draft_length
        self.draft_model = draft_model
        self.draft_error = draft_error
        self.history = history  # recent requests' text per tenant, for lookup drafts across requests
        self._costs = StepCostModel()
        self._calibrated = False
        if measured is not None:  # the weights tune timed this file's steps on this machine: start from those
            self._costs = StepCostModel(prior=measured.extra_row_cost)
            for rows, seconds in sorted(measured.step_s.items()):
                self._costs.observe(rows, seconds)
            self._calibrated = True  # they stand in for the start-up calibration

    def attach(self, seq: Sequence) -> None:
        """Gives a sequence that just went live its drafters and acceptance priors.

        ``prompt-lookup``: lookup only. ``draft``: the draft model only.
        ``auto``: the draft model, but where a long match in the text so far
        drafts for free (a quotation under way), lookup; without a draft model,
        lookup on matches of 3 tokens or more. Lookup also searches the history of the
        request's tenant (``GenerationRequest.user``), when it names one.
        """
        mode, auto = seq.job.spec_mode, seq.job.request.speculative == "auto"
        if mode == "prompt-lookup" or (mode == "draft" and auto):
            # auto drafts from the prompt only where 3 tokens repeat: a 1-token match in free
            # text is rarely accepted, and a rejected row costs 0.5-0.8 of a step here on Q4_1
            own = PromptLookupDrafter(min_match=3 if auto else 1)
            seq.lookup = LookupSources(own, self.history, seq.job.request.user)
        if mode == "draft" and self.draft_model is not None:
            seq.drafter = self.draft_model.slot()
            # a draft model of the same family usually agrees with its target
            seq.acceptance = Acceptance(prior_rate=0.8)
        if seq.drafter is None:  # lookup's own mode, or every draft slot taken
            seq.drafter = seq.lookup

    @property
    def costs(self) -> StepCostModel:
        return self._costs

    def observe_step(self, rows: int, seconds: float) -> None:
        self._costs.observe(rows, seconds)

    def ensure_calibrated(self) -> None:
        if not self._calibrated:
            self._calibrate()

    def close(self) -> None:
        if self.draft_model is not None:
            self.draft_model.close()

    def mode_for(self, job: Job) -> tuple[str | None, str | None]:
        """Which drafter the request's sequences get (None: none), and why not when not."""
        asked = job.request.speculative
        if asked == "off":
            return None, None
        if not all(s.sampler.can_speculate for s in job.seqs):
            return None, "off: speculative sampling (temperature > 0) does not support grammars or repeat penalties yet"
        if asked == "draft" and self.draft_model is None:
            return None, "off: " + (self.draft_error or "this engine has no draft model (EngineConfig.draft_model)")
        if asked == "auto":
            return ("draft" if self.draft_model is not None else "prompt-lookup"), None
        return asked, None

    def _calibrate(self) -> None:
        """Times one 1-row and one 8-row step once, so the first drafts already know what rows cost."""
        slot = self._scratch
        for rows in (1, 8, 1, 8):
            self._batch.clear()
            self._batch.add([self._model.bos if self._model.bos >= 0 else 0] * rows, 0, slot, True, logits_all=True)
            start = time.perf_counter()
            self._ctx.decode(self._batch)
            self._costs.observe(rows, time.perf_counter() - start)
            self._ctx.seq_rm(slot)
        self._calibrated = True
        log.debug("one more row costs %.2f of a one-row step", self._costs.extra_row_cost())

    def draft(self, seq: Sequence, spare: int) -> list[int]:
        """Tokens to verify after ``seq``'s pending one: as many as pay off, as room allows."""
        assert seq.drafter is not None
        room = min(spare, seq.job.max_tokens - len(seq.out) - 1, self.max_positions - seq.n_past - 2, _MAX_DRAFT)
        if room <= 0:
            return []
        per_token = self._costs.extra_row_cost()
        history = seq.job.prompt + seq.out
        # look first: lookup drafts are free, and the match's length says how far to trust them
        if seq.lookup is not None:
            found = seq.lookup.lookup(history, room)
            group = seq.match_acceptance.group(found.match, found.source)
            if seq.drafter is seq.lookup:
                if not found.tokens:
                    return []
                seq.draft_group = group
                return found.tokens[: self._draft_length_for(seq, group, per_token)]
            k = choose_draft_length(group.rate, per_token, _MAX_DRAFT) if found.tokens else 0
            if k > 0:  # beside a draft model: a match good enough to pay on its own
                seq.draft_group = group
                return found.tokens[:k]
        # a draft model: choose the length first, since each drafted token costs a draft step
        one_row = self._costs.one_row_seconds()
        spent = self.draft_model.seconds_per_token if self.draft_model is not None else None
        per_token += spent / one_row if spent and one_row else _DRAFT_COST_PRIOR
        seq.draft_group = seq.acceptance
        k = min(self._draft_length_for(seq, seq.acceptance, per_token), room)
        return seq.drafter.propose(history, k) if k > 0 else []

    def _draft_length_for(self, seq: Sequence, acceptance: Acceptance, per_token: float) -> int:
        """The draft length that pays at this acceptance and cost; now and then a short probe instead of none."""
        k = self._draft_length or choose_draft_length(acceptance.rate, per_token, _MAX_DRAFT)
        if k > 0:
            seq.idle_draft_steps = 0
            return k
        seq.idle_draft_steps += 1
        if seq.idle_draft_steps < _PROBE_AFTER:
            return 0
        seq.idle_draft_steps = 0
        return 2  # a short probe: acceptance may have come back (e.g. the text started quoting)

    def verify(self, seq: Sequence, fed: list[int], draft: list[int], last_idx: int) -> None:
        """Keeps the drafted tokens the target accepts, plus one token of its own.

        Row i of ``fed`` (the pending token, then the draft) holds the target's
        logits for the token after it. Greedy: take the target's choice at each
        row while it equals the draft; the first disagreement (or the row after
        the last draft) gives the target's own token. Sampling: speculative
        sampling row by row, so the tokens follow the target's distribution.
        """
        first_idx = last_idx - len(draft)
        chosen: list[int] = []
        sampler = seq.sampler
        for i in range(len(draft) + 1):
            if sampler.greedy:  # keep the draft while it is the target's own choice (its grammar decides)
                token = sampler.sample(self._ctx, first_idx + i)
                chosen.append(token)
                if i == len(draft) or token != draft[i]:
                    break
                continue
            # sampling: accept with probability p(draft), else draw from the rest (exact in distribution)
            probs = sampler.probs(self._ctx, first_idx + i)
            if i == len(draft):
                chosen.append(int(sampler.rng.choice(probs.shape[0], p=probs)))
                break
            token, accepted = accept_or_resample(probs, draft[i], sampler.rng)
            chosen.append(token)
            if not accepted:
                break
        kept = len(chosen)  # fed[0] and the len(chosen) - 1 accepted drafts stay in KV
        self._ledger.append(seq.slot, fed)
        if kept < len(fed):  # drop the KV of rejected draft tokens
            self._ctx.seq_rm(seq.slot, seq.n_past + kept, -1)
            self._ledger.truncate(seq.slot, seq.n_past + kept)
        seq.n_past += kept
        seq.record_draft(len(draft), kept - 1)
        seq.target_steps += 1
        # every verified row holds the target's raw logits, so accepted draft tokens get logprobs too
        for i, token in enumerate(chosen):
            logprob = sampler.logprob(self._ctx, first_idx + i, token) if seq.logprobs is not None else None
            seq.accept(token, self._model.piece(token), self._model.is_eog(token), self.max_positions, logprob)
            if seq.finish is not None:
                break
