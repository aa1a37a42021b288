"""The engine's speculative decoding: which drafter a request gets, how long its
drafts are, and how the target's batched step verifies them.

It works on the engine's own context, batch and KV ledger, from the engine's
worker thread only; the decisions it relies on are the pure ones in
``speculative.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace
from typing import Any

from orchestrator.engine.calibration import (
    file_identity,
    load_costs,
    machine_busy,
    measure_costs,
    save_costs,
    target_identity,
)
from orchestrator.engine.config import EngineConfig
from orchestrator.engine.draft_model import DraftModel
from orchestrator.engine.history_index import HistoryIndex
from orchestrator.engine.ledger import KVLedger
from orchestrator.engine.lookup_sources import LookupSources
from orchestrator.engine.native import Batch, NativeContext, NativeModel
from orchestrator.engine.prompt_lookup import PromptLookupDrafter
from orchestrator.engine.sequence import Job, Sequence
from orchestrator.engine.speculative import (
    Acceptance,
    SpeculationCosts,
    StepCostModel,
    accept_or_resample,
    history_acceptance,
)
from orchestrator.engine.variants import measured_step_costs
from orchestrator.models.variants import Machine
from orchestrator.models.weight_choice import StepCosts

__all__ = ["MAX_DRAFT", "Speculator"]

log = logging.getLogger(__name__)

MAX_DRAFT = 16  # the longest draft verified in one step
_PROBE_SHARE = 0.05  # probes of acceptance (a short draft after steps without one) cost at most this share of the steps
# auto stops speculating once it is this share of the request's tokens (at least 2) in target steps
# behind plain decoding: at most ~3% lost where drafts never pay, and a bad start does not end a
# long request's speculation (agent turns of 256 tokens: 1.38x -> 1.49x modelled, at a limit of 2)
_LOSS_SHARE = 0.03
_DRAFT_PRIOR_RATE = 0.8  # a draft model's per-token acceptance before a request has its own, unmeasured
# What the draft model's acceptance is measured on at calibration: the target's own greedy text after
# these openings (fixed, so that the measure, and every decision from it, is the same run to run).
_ACCEPTANCE_PROBES = ("The history of the bicycle begins", "def fibonacci(n):\n", "Dear Anna,\n\nThis summer I")
_ACCEPTANCE_TOKENS = 32
_TIMED_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17)  # target step sizes timed for the table of step costs
_TIMING_CONTEXT = 128  # cells the timed steps attend to, as a request's steps do (not an empty cache)


def _starting_acceptance(costs: SpeculationCosts, *, auto: bool) -> Acceptance:
    """A new request's acceptance of its draft model's tokens: the agreement measured at calibration,
    else a guess (``_DRAFT_PRIOR_RATE``).

    A measured agreement is evidence (96 tokens), so it weighs as much as the drafts a request
    remembers: one early miss must not outweigh it (at a weight of 4, a draft rejected at its 10th
    token stopped the F32/Q4_1 pair drafting for good: 2.6 tokens per target step on the doctor's
    openings; at 32, 12). ``auto`` keeps the weakly held guess: the measure is taken on three fixed
    openings, and open text agrees less (the F32/Q4_1 pair: 96% there, 71% on a story, where
    drafting from the measure ran at 0.80x of plain); there the draft model must earn its drafts
    with probes."""
    if costs.draft_acceptance > 0 and not auto:
        return Acceptance(prior_rate=costs.draft_acceptance, prior_weight=float(Acceptance.memory))
    return Acceptance(prior_rate=_DRAFT_PRIOR_RATE)


class Speculator:
    """Speculation for one engine: drafters, draft lengths from fixed costs, verification.

    Draft lengths depend only on acceptance so far and on ``SpeculationCosts`` fixed
    before the first draft, never on live timings: the same request gets the same
    drafts, so the same batch shapes and the same tokens, in every run. The costs come
    from ``calibration.py`` (stored per model pair and machine), else from a short
    measurement on first use, which is then stored unless the machine is busy.
    ``measured``: the step times the weights tune stored for this file
    (``variants.measured_step_costs``); when given, the average cost of a row comes from them.
    ``costs_key``: what the stored costs are keyed by (target file, draft file, machine);
    None measures every time.
    Live step times still feed ``costs`` (a ``StepCostModel``) for reports.
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
        costs_key: tuple[str, str, Machine] | None = None,
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
        self._measured = measured
        self._costs_key = costs_key
        self._fixed: SpeculationCosts | None = None
        self.history = history  # recent requests' text per tenant, for lookup drafts across requests
        self._tenant_acceptance: dict[str, list[Acceptance]] = {}  # per tenant: its history drafts' rates
        self._costs = StepCostModel()
        if measured is not None:  # the weights tune timed this file's steps on this machine
            self._costs = StepCostModel(prior=measured.extra_row_cost)
            for rows, seconds in sorted(measured.step_s.items()):
                self._costs.observe(rows, seconds)

    @classmethod
    def for_engine(
        cls, *, config: EngineConfig, weights: str | os.PathLike[str], draft_model: DraftModel | None, **parts: Any
    ) -> Speculator:
        """The speculator of an engine running ``weights`` with ``config``: its stored step times, its
        costs' key and its history index; ``parts`` are the engine's context, batch and ledger."""
        return cls(
            draft_length=config.draft_length, draft_model=draft_model, history=HistoryIndex(config.history_tokens),
            measured=measured_step_costs(weights, config.threads),
            costs_key=(target_identity(weights, config), file_identity(draft_model.path if draft_model else None),
                       Machine.here(config.threads)),
            **parts,
        )

    def attach(self, seq: Sequence) -> None:
        """Gives a sequence that just went live its drafters and acceptance priors.

        ``prompt-lookup``: lookup only. ``draft``: the draft model only, or plain decoding where
        its prompt prefill would cost more than it saves at its measured acceptance (unless
        ``EngineConfig.draft_length`` fixes the length).
        ``auto``: the draft model, but where a long match in the text so far
        drafts for free (a quotation under way), lookup; without a draft model,
        or where the draft model cannot win back its prompt prefill within the
        request's tokens, lookup on matches of 3 tokens or more. Lookup also searches
        the history of the request's tenant (``GenerationRequest.user``), when it names one.
        """
        mode, auto = seq.job.spec_mode, seq.job.request.speculative == "auto"
        if mode is None:
            return
        costs = self.fixed_costs()
        if mode == "draft" and self._draft_length is None and not self._draft_pays(seq, costs, auto=auto):
            if not auto:  # decoded plainly: a draft model that cannot pay would only slow the request
                seq.job.spec_mode = None
                seq.job.spec_note = "draft: off, the draft model's prompt prefill would cost more than it saves"
                return
            mode = seq.job.spec_mode = "prompt-lookup"
            seq.job.spec_note = "auto: lookup only, the draft model's prompt prefill would cost more than it saves"
        if mode == "prompt-lookup" or (mode == "draft" and auto):
            # auto drafts from the prompt only where 3 tokens repeat: a 1-token match in free
            # text is rarely accepted, and a rejected row costs 0.5-0.8 of a step here on Q4_1
            own = PromptLookupDrafter(min_match=3 if auto else 1)
            seq.lookup = LookupSources(own, self.history, seq.job.request.user)
            if seq.job.request.user is not None and self.history is not None:
                seq.match_acceptance.history_groups = self._history_acceptance(seq.job.request.user)
        if mode == "draft" and self.draft_model is not None:
            seq.drafter = self.draft_model.slot()
            # a draft model of the same family usually agrees with its target
            seq.acceptance = _starting_acceptance(costs, auto=auto)
        if seq.drafter is None:  # lookup's own mode, or every draft slot taken
            seq.drafter = seq.lookup

    def _history_acceptance(self, tenant: str) -> list[Acceptance]:
        """The tenant's rates of drafts from its earlier requests, shared by its requests; kept
        only for tenants the history index still holds."""
        assert self.history is not None
        if tenant not in self._tenant_acceptance:
            held = set(self.history.tenants())
            if len(self._tenant_acceptance) >= len(held):  # some kept rates may be of tenants gone from the index
                self._tenant_acceptance = {t: g for t, g in self._tenant_acceptance.items() if t in held}
            self._tenant_acceptance[tenant] = history_acceptance()
        return self._tenant_acceptance[tenant]

    def _draft_pays(self, seq: Sequence, costs: SpeculationCosts, *, auto: bool) -> bool:
        """Whether the draft model, at its prior acceptance, saves more target steps than its prefill costs."""
        prior = _starting_acceptance(costs, auto=auto).prior_rate
        k = costs.draft_length(prior, MAX_DRAFT, drafted_by_model=True)
        if k == 0:
            return False
        gain = costs.gain(prior, k, drafted_by_model=True)
        saved = seq.job.max_tokens * (1.0 - 1.0 / gain)  # in one-row target steps
        return saved > len(seq.job.prompt) * costs.draft_prefill_cost

    @property
    def costs(self) -> StepCostModel:
        """Step times as measured live (for reports; decisions use ``fixed_costs``)."""
        return self._costs

    @property
    def draft_seconds_per_token(self) -> float | None:
        """The draft model's live time per drafted token (None: no draft model, or none drafted yet)."""
        return self.draft_model.seconds_per_token if self.draft_model and self.draft_model.seconds_per_token else None

    def observe_step(self, rows: int, seconds: float) -> None:
        self._costs.observe(rows, seconds)

    def fixed_costs(self) -> SpeculationCosts:
        """The costs draft lengths are decided by: stored, else measured now (once per engine) and stored."""
        if self._fixed is None:
            stored = load_costs(*self._costs_key) if self._costs_key is not None else None
            if stored is not None:
                self._fixed = stored
            else:
                self._fixed, steady = self._calibrate()
                if self._costs_key is not None and (machine_busy() or not steady):  # kept, they would mislead later engines
                    log.info("speculation costs measured under load (or their rounds disagreed); not stored, "
                             "the next engine measures again")
                elif self._costs_key is not None:
                    save_costs(*self._costs_key, self._fixed)
            log.debug("speculation costs: %s", self._fixed)
        return self._fixed

    def use_costs(self, costs: SpeculationCosts) -> None:
        """Decides draft lengths by ``costs`` from now on, instead of the calibrated ones (a bench
        comparing pricings; not stored)."""
        self._fixed = costs

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

    def _calibrate(self) -> tuple[SpeculationCosts, bool]:
        """Times target and draft steps side by side (``calibration.measure_costs``), after a context
        of ``_TIMING_CONTEXT`` cells as in a request under way, where the cache has room for it.

        Target steps of 1 to 9, 13 and 17 rows are timed (the rows between 9 and 17 interpolated):
        the table of ``SpeculationCosts.step_costs``. The average cost of one more row comes from
        the weights tune when it timed this file on an idle machine, else from the 1-row and 8-row
        steps timed here. Also says whether the machine was steady while they were timed.
        """
        room = self._ledger.free - max(_TIMED_ROWS) - 1
        context = self._timing_context()[: max(room, 0)]
        slot = self._scratch
        self._ctx.feed(self._batch, context, 0, slot)
        try:
            with contextlib.ExitStack() as stack:
                time_draft = stack.enter_context(self.draft_model.timing(context)) if self.draft_model else None
                costs, steady = measure_costs(
                    lambda rows: self._time_target(rows, len(context)), time_draft, rows=_TIMED_ROWS,
                    max_rows=MAX_DRAFT + 1, extra_row_cost=self._measured.extra_row_cost if self._measured else None,
                )
        finally:
            self._ctx.seq_rm(slot)
        if self.draft_model is not None:
            costs = replace(costs, draft_acceptance=self._draft_acceptance()).quantized()
        return costs, steady

    def _draft_acceptance(self) -> float:
        """How often the draft's greedy next token is the target's, along the target's own greedy
        text after ``_ACCEPTANCE_PROBES`` (what greedy speculation accepts, per drafted token)."""
        texts = []
        for opening in _ACCEPTANCE_PROBES:
            prompt = self._model.tokenize(opening, add_special=True, parse_special=False)
            texts.append((prompt, self._target_greedy(prompt, _ACCEPTANCE_TOKENS)))
        return self.draft_agreement(texts)

    def draft_agreement(self, texts: list[tuple[list[int], list[int]]]) -> float:
        """The share of the target's tokens in ``texts`` (pairs of prompt and the target's greedy text
        after it) that the draft model's greedy next token matches. The engine must be idle."""
        assert self.draft_model is not None
        agreed = total = 0
        for prompt, text in texts:
            guesses = self.draft_model.greedy_next(prompt + text)[len(prompt) - 1 : -1]
            agreed += sum(1 for g, t in zip(guesses, text) if g == t)
            total += len(text)
        return agreed / total if total else 0.0

    def _target_greedy(self, prompt: list[int], n: int) -> list[int]:
        """The target's greedy continuation of ``prompt`` (``n`` tokens, or up to an end of text), on the scratch slot."""
        slot, out, feed, pos = self._scratch, [], prompt, 0
        while len(out) < n:
            self._batch.clear()
            idx = self._batch.add(feed, pos, slot, True)
            self._ctx.decode(self._batch)
            pos += len(feed)
            token = int(self._ctx.logits(idx, self._model.n_vocab).argmax())
            if self._model.is_eog(token):
                break
            out.append(token)
            feed = [token]
        self._ctx.seq_rm(slot)
        return out

    def _timing_context(self) -> list[int]:
        text = "The committee met on Tuesday to review the budget, the schedule and the open questions. " * 12
        return self._model.tokenize(text, add_special=True, parse_special=False)[:_TIMING_CONTEXT]

    def _time_target(self, rows: int, at: int) -> float:
        """Seconds of one target step of ``rows`` rows (logits for each) at position ``at`` of the scratch slot."""
        slot = self._scratch
        self._batch.clear()
        self._batch.add([self._model.bos if self._model.bos >= 0 else 0] * rows, at, slot, True, logits_all=True)
        start = time.perf_counter()
        self._ctx.decode(self._batch)
        spent = time.perf_counter() - start
        self._ctx.seq_rm(slot, at, -1)
        if rows in (1, 8):
            self._costs.observe(rows, spent)
        return spent

    def draft(self, seq: Sequence, spare: int) -> list[int]:
        """Tokens to verify after ``seq``'s pending one: as many as pay off, as room allows."""
        assert seq.drafter is not None
        room = min(spare, seq.job.max_tokens - len(seq.out) - 1, self.max_positions - seq.n_past - 2, MAX_DRAFT)
        if room <= 0:
            return []
        history = seq.job.prompt + seq.out
        # look first: lookup drafts are free, and the match's length says how far to trust them
        if seq.lookup is not None:
            found = seq.lookup.lookup(history, room, rate=lambda f: seq.match_acceptance.group(f.match, f.source).rate)
            group = seq.match_acceptance.group(found.match, found.source)
            if seq.drafter is seq.lookup:
                if not found.tokens:
                    return []
                seq.draft_group = group
                return found.tokens[: self._draft_length_for(seq, group, len(found.tokens), by_model=False)]
            k = self.fixed_costs().draft_length(group.rate, len(found.tokens), drafted_by_model=False) if found.tokens else 0
            if k > 0:  # beside a draft model: a match good enough to pay on its own
                seq.draft_group = group
                return found.tokens[:k]
        # a draft model: choose the length first, since each drafted token costs a draft step
        seq.draft_group = seq.acceptance
        k = self._draft_length_for(seq, seq.acceptance, room, by_model=True)
        return seq.drafter.propose(history, k) if k > 0 else []

    def _draft_length_for(self, seq: Sequence, acceptance: Acceptance, k_max: int, *, by_model: bool) -> int:
        """The draft length (up to ``k_max``) that pays at this acceptance and the fixed costs; now and
        then a short probe instead of none."""
        costs = self.fixed_costs()
        k = min(self._draft_length or costs.draft_length(acceptance.rate, k_max, drafted_by_model=by_model), k_max)
        if k > 0:
            seq.idle_draft_steps = 0
            return k
        # now and then a short probe (its rows the cheapest each): acceptance may have come back
        # (e.g. the text started quoting); spaced so that what it costs beyond a plain step is a small share
        # A draft model must first read the tokens it missed meanwhile (at a prompt token's cost each):
        # where that costs more than the share allowed, it stays idle for the rest of the request
        probe = min(costs.probe_length(), k_max)
        seq.idle_draft_steps += 1
        missed = costs.draft_prefill_cost * seq.idle_draft_steps if by_model else 0.0
        if seq.idle_draft_steps < (costs.verify_cost(probe, drafted_by_model=by_model) - 1.0 + missed) / _PROBE_SHARE:
            return 0
        seq.idle_draft_steps = 0
        return probe

    def _stop_if_losing(self, seq: Sequence, drafted: int, kept: int) -> None:
        """auto: speculation off for the rest of the request once it has cost more target steps than it
        saved, by more than 3% of the request's tokens (at least 2 steps).

        Counted in one-row target steps by the fixed costs (not by clocks, so the same request
        stops at the same token every run): a verify step with ``drafted`` drafts costs
        its step of ``1 + drafted`` rows and its draft steps, and yields ``kept`` tokens where plain
        decoding yields 1 per step.
        """
        by_model = seq.draft_group is seq.acceptance
        seq.spec_balance += kept - self.fixed_costs().verify_cost(drafted, drafted_by_model=by_model)
        if seq.spec_balance >= -max(2.0, _LOSS_SHARE * seq.job.max_tokens):
            return
        if seq.drafter is not None and seq.drafter is not seq.lookup:
            seq.drafter.close()  # a draft model's slot; the lookup stays, to add the text to its tenant's history
        seq.drafter = None
        seq.job.spec_note = (
            f"auto: speculation off after {seq.target_steps} steps, "
            f"{-seq.spec_balance:.1f} target steps behind plain decoding"
        )
        log.debug("%s", seq.job.spec_note)

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
        if draft and seq.job.request.speculative == "auto":
            self._stop_if_losing(seq, len(draft), kept)
        # every verified row holds the target's raw logits, so accepted draft tokens get logprobs too
        for i, token in enumerate(chosen):
            logprob = sampler.logprob(self._ctx, first_idx + i, token) if seq.logprobs is not None else None
            seq.accept(token, self._model.piece(token), self._model.is_eog(token), self.max_positions, logprob)
            if seq.finish is not None:
                break
