"""LocalEngine: one GGUF model, one llama.cpp context, one worker thread.

The worker runs continuous batching: each step it admits waiting requests,
then decodes one token of every generating sequence and a chunk of every
prefilling prompt together in a single ``llama_decode``. Requests join and
leave at any step. A new prompt that starts with tokens already in the KV
cache (of a live sequence, or of a finished one kept as a cached prefix)
shares those cells (``llama_memory_seq_cp``) instead of recomputing them.
Between steps the worker also runs embedding jobs (``embed``), one pack of
texts at a time, in a second context of its own (``embedder.py``).

Beside it: ``opening.py`` checks and loads the model, ``slots.py`` keeps the KV slots and
cached prefixes, ``sequence.py`` the per-request state and its result, ``speculator.py``
drafts and verifies, ``pinning.py`` keeps pinned prefixes and stores them on disk for later processes.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence as Seq
from pathlib import Path

import numpy as np

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.embedder import EmbeddingQueue, EmbedJob, embed_tokens
from orchestrator.engine.handle import RequestHandle
from orchestrator.engine.ledger import KVLedger, common_prefix_len
from orchestrator.engine.metrics import EnergyMeter
from orchestrator.engine.opening import open_model
from orchestrator.engine.pinning import PinJob, PinnedPrefix, PrefixPins, prefix_tokens
from orchestrator.engine.prefix_store import PrefixStore
from orchestrator.engine.sampling import Sampler
from orchestrator.engine.sequence import Job, Sequence
from orchestrator.engine.slots import KVSlots
from orchestrator.engine.speculator import Speculator
from orchestrator.engine.stats import EngineStats
from orchestrator.engine.variants import ResolvedWeights, resolve_weights
from orchestrator.errors import CapacityError, ChatTemplateError, ConfigError, ContextLengthError, EngineError, RequestError
from orchestrator.models.catalogue import model_name
from orchestrator.models.gguf import GGUFInfo
from orchestrator.types import ChatMessage, Completion, GenerationRequest

__all__ = ["EngineStats", "LocalEngine"]

log = logging.getLogger(__name__)

_CLOSE = object()
_WAKE = None
# Wait for another sequence's prefill rather than recompute this many shared tokens.
_WAIT_FOR_SHARED_PREFILL = 32


class LocalEngine:
    """Runs one local GGUF model for many concurrent requests.

    Thread-safe: ``submit`` from any thread or event loop. Use as a context
    manager, or call ``close()``, to stop the worker and free the model.
    """

    def __init__(self, model: str | Path, config: EngineConfig | None = None, *, name: str | None = None) -> None:
        self.config = cfg = config or EngineConfig()
        n_seq_max = cfg.max_sequences + cfg.prefix_cache_slots + 1  # + a scratch slot for calibration
        # the weights file: the variant chosen for this machine, the shipped file, or a path as given
        self.weights: ResolvedWeights = resolve_weights(model, cfg.weights, threads=cfg.threads)
        opened = open_model(self.weights.path, cfg, name=name or model_name(model), n_seq_max=n_seq_max)  # checks, probes, loads
        self.name = opened.name
        self.info: GGUFInfo = opened.info
        self.kv_bytes_per_token = opened.kv_bytes_per_token
        self.max_positions = opened.max_positions
        self.draft_error = opened.draft_error
        self._model, self._ctx, self._batch, self._threads = opened.model, opened.ctx, opened.batch, opened.threads
        self._template = opened.template

        self._ledger = KVLedger(self._ctx.n_ctx)
        self._held = 0  # the most KV cells held at once so far
        self._scratch_slot = n_seq_max - 1
        self._slots = KVSlots(self._ctx, self._ledger, n_slots=n_seq_max - 1, cache_slots=cfg.prefix_cache_slots)
        store = PrefixStore(cfg.prefix_dir, cfg.prefix_store_bytes) if cfg.persist_prefixes else None
        self._pins = PrefixPins(self._ctx, self._ledger, self._slots, model_path=self.weights.path, store=store)
        self._live: list[Sequence] = []
        self._waiting: deque[Job] = deque()
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._embeds = EmbeddingQueue(self._model, threads=cfg.threads)
        self._meter = EnergyMeter()
        self._spec = Speculator.for_engine(
            ctx=self._ctx, model=self._model, ledger=self._ledger, batch=self._batch, scratch_slot=self._scratch_slot,
            max_positions=self.max_positions, config=cfg, weights=self.weights.path, draft_model=opened.draft,
            draft_error=self.draft_error,
        )
        self._ids = itertools.count(1)
        self._closing = False
        self._submit_lock = threading.Lock()
        self._totals = {"computed": 0, "reused": 0, "steps": 0}
        self._thread = threading.Thread(target=self._run, name=f"orchestrator-engine-{self.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------
    # caller side (any thread)
    # ------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queues a request and returns its handle. Bad requests raise here, typed."""
        with self._submit_lock:  # close() waits for submits in flight: the model stays loaded under them
            if self._closing:
                raise EngineError(f"engine {self.name} is closed")
            return self._submit(request)

    def _submit(self, request: GenerationRequest, prompt: list[int] | None = None) -> RequestHandle:
        prompt = self.prompt_tokens(request) if prompt is None else prompt
        if not prompt:
            raise RequestError("the prompt is empty")
        if len(prompt) >= self.max_positions:
            raise ContextLengthError(
                f"the prompt has {len(prompt)} tokens; a sequence on {self.name} holds at most "
                f"{self.max_positions} tokens including the generated ones"
            )
        max_tokens = min(request.max_tokens, self.max_positions - len(prompt))
        cells = len(prompt) + request.n * max_tokens
        if request.n > self.config.max_sequences:
            raise CapacityError(f"n={request.n} exceeds the engine's max_sequences={self.config.max_sequences}")
        if cells > self._ledger.n_cells:
            raise CapacityError(
                f"the request may need {cells} KV cells ({cells * self.kv_bytes_per_token / 2**20:.1f} MiB): "
                f"more than the engine's n_ctx={self._ledger.n_cells}; lower max_tokens or n, or raise n_ctx"
            )
        seed = request.sampling.seed
        samplers: list[Sampler] = []
        try:
            for i in range(request.n):
                samplers.append(Sampler(self._model, request.sampling, request.grammar, None if seed is None else seed + i))
        except BaseException:
            for s in samplers:
                s.free()
            raise
        handle = RequestHandle(next(self._ids), self._wake)
        job = Job(request=request, prompt=prompt, max_tokens=max_tokens, handle=handle)
        job.seqs = [Sequence(job, i, s) for i, s in enumerate(samplers)]
        job.spec_mode, job.spec_note = self._spec.mode_for(job)
        self._inbox.put(job)
        return handle

    def generate(self, request: GenerationRequest) -> Completion:
        """Sync facade: submits and waits."""
        return self.submit(request).result()

    async def agenerate(self, request: GenerationRequest) -> Completion:
        return await self.submit(request).completion()

    def pin_prefix(self, prefix: str | Seq[int] | Seq[ChatMessage]) -> PinnedPrefix:
        """Keeps a prompt start in the KV cache and, with ``persist_prefixes``, on disk for later
        processes, which restore it instead of computing it (see ``orchestrator.engine.pinning``).
        ``prefix``: raw prompt text, token ids, or chat messages (pinned up to where a next user
        message would start). Blocks while it computes; thread-safe."""
        if self.config.prefix_cache_slots < 1:
            raise ConfigError("pinning a prefix needs prefix_cache_slots >= 1")
        tokens = self.prefix_tokens(prefix)
        if not tokens or len(tokens) >= self.max_positions - 1:
            raise ContextLengthError(f"a pinned prefix needs 1 to {self.max_positions - 2} tokens, not {len(tokens)}")
        return self._pins.pin(tokens, ask=self._ask_pins, compute=self._compute_prefix)

    def prefix_tokens(self, prefix: str | Seq[int] | Seq[ChatMessage]) -> list[int]:
        """The tokens a prompt starting with ``prefix`` starts with (see ``pin_prefix``)."""
        return prefix_tokens(prefix, raw=lambda text: self.prompt_tokens(GenerationRequest(prompt=text)), chat=self.prompt_tokens)

    def _ask_pins(self, job: PinJob) -> bytes | str | None:
        with self._submit_lock:
            if self._closing:
                raise EngineError(f"engine {self.name} is closed")
            self._inbox.put(job)
        return job.future.result()

    def _compute_prefix(self, tokens: list[int]) -> None:
        """Runs ``tokens`` as a prompt of one generated token: its slot stays cached, holding exactly them."""
        with self._submit_lock:
            if self._closing:
                raise EngineError(f"engine {self.name} is closed")
            handle = self._submit(GenerationRequest(prompt="(pinned prefix)", max_tokens=1), tokens)
        handle.result()

    def embed(self, texts: Seq[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of ``texts`` from this engine's model, float32 of
        shape ``(len(texts), n_embd)``; each text cut to its first 512 tokens. Blocks; thread-safe;
        runs on the worker between decode steps (see ``orchestrator.engine.embedder``)."""
        with self._submit_lock:  # the model stays loaded while its tokenizer runs
            if self._closing:
                raise EngineError(f"engine {self.name} is closed")
            tokens = embed_tokens(self._model, texts)
            if not tokens:
                return np.zeros((0, self._model.n_embd), dtype=np.float32)
            job = EmbedJob(tokens)
            self._inbox.put(job)
        return job.future.result()

    @property
    def speculator(self) -> Speculator:
        """Speculation's state: ``fixed_costs()`` (what drafts are sized by), ``costs`` (live step times)."""
        return self._spec

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text, add_special=False, parse_special=True)

    def stats(self) -> EngineStats:
        return EngineStats(
            model=self.name,
            n_ctx=self._ledger.n_cells,
            max_positions=self.max_positions,
            kv_type_k=self.config.type_k,
            kv_type_v=self.config.type_v,
            kv_bytes_per_token=self.kv_bytes_per_token,
            kv_cells_used=self._ledger.used,
            live_sequences=len(self._live),
            waiting_requests=len(self._waiting),
            cached_prefixes=len(self._slots.cached),
            prefill_computed_tokens=self._totals["computed"],
            prefill_reused_tokens=self._totals["reused"],
            decode_steps=self._totals["steps"],
            pinned_prefixes=self._slots.pinned,
            restored_prefix_tokens=self._pins.restored_tokens, step_threads=self._threads.choices(),
        )

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (the model is freed, or being freed)."""
        return self._closing

    def close(self) -> None:
        """Fails what is still running with EngineError, stops the worker, frees the model."""
        with self._submit_lock:
            if self._closing:
                return
            self._closing = True
        self._inbox.put(_CLOSE)
        self._thread.join()
        self._embeds.close()
        self._spec.close()
        self._batch.free()
        self._ctx.free()
        self._model.free()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        self._inbox.put(_WAKE)

    def chat_text(self, messages: Seq[ChatMessage]) -> str | None:
        """The text the model reads for ``messages`` in its chat template, the assistant's turn
        opened; None when the model has no usable template (a base model: write a raw prompt)."""
        if self._template is None:
            return None
        return self._template.render([m.model_dump(exclude_none=True, exclude={"tool_calls"}) for m in messages])

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The tokens the model reads for this request: the raw prompt, or the messages in the chat template."""
        if request.messages is None:
            assert request.prompt is not None
            return self._model.tokenize(request.prompt, add_special=True, parse_special=True)
        if self._template is None:
            raise ChatTemplateError(f"{self.name} has no usable chat template; send a raw prompt instead")
        # Tool calls and results reach the engine written as text (``LocalBackend``): no empty tool fields for the template.
        text = self._template.render([m.model_dump(exclude_none=True, exclude={"tool_calls"}) for m in request.messages])
        bos_text = self._model.token_text(self._model.bos)
        add_bos = self._model.add_bos and not (bos_text and text.startswith(bos_text))
        return self._model.tokenize(text, add_special=add_bos, parse_special=True)

    # ------------------------------------------------------------------
    # worker side (the engine thread only)
    # ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._read_inbox(block=not (self._live or self._waiting or self._embeds))
            if self._closing:
                break
            try:
                self._reap_cancelled()
                self._admit()
                if self._live:
                    self._step()
                if self._embeds:
                    self._embeds.step()  # one pack of texts between decode steps
            except Exception as exc:  # a native failure: fail the batch, keep serving
                log.exception("decode step failed on %s", self.name)
                self._fail_live(exc if isinstance(exc, EngineError) else EngineError(str(exc)))
        closed = EngineError(f"engine {self.name} was closed")
        self._fail_live(closed)
        while self._waiting:
            self._fail_job(self._waiting.popleft(), closed)
        self._embeds.fail_all(closed)
        while True:  # requests that raced with close()
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                self._fail_job(item, closed)
            elif isinstance(item, EmbedJob | PinJob):
                item.future.set_exception(closed)

    def _read_inbox(self, block: bool) -> None:
        item = self._inbox.get() if block else None
        while True:
            if item is _CLOSE:
                self._closing = True
            elif isinstance(item, Job):
                self._waiting.append(item)
            elif isinstance(item, EmbedJob):
                self._embeds.add(item)
            elif isinstance(item, PinJob):
                self._pins.answer(item, live=[s.slot for s in self._live], growth=self._growth())
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _reap_cancelled(self) -> None:
        for job in [j for j in self._waiting if j.handle.cancel_requested]:
            self._waiting.remove(job)
            for seq in job.seqs:
                seq.end("cancelled")
            self._complete(job)
        for job in {s.job: None for s in self._live if s.job.handle.cancel_requested}:
            for seq in job.seqs:
                if seq.finish is None:
                    seq.end("cancelled")
                if seq in self._live:
                    self._release(seq)
            self._complete(job)

    # -- admission ---------------------------------------------------------
    def _admit(self) -> None:
        """Starts waiting requests in order while sequences and KV cells allow."""
        while self._waiting:
            job = self._waiting[0]
            if self._reserved_sequences() + job.request.n > self.config.max_sequences:
                return
            src, reuse = self._ledger.longest_prefix(job.prompt, [s.slot for s in self._live] + self._slots.cached)
            src, reuse = self._pins.restore_for(job.prompt, src, reuse, growth=self._growth())  # a stored prefix, if longer
            # Compute at least two prompt tokens: llama.cpp's kernels differ between one-row and
            # multi-row batches, and a multi-row suffix gives bit-identical logits to a fresh prefill.
            reuse = max(0, min(reuse, len(job.prompt) - 2))
            if self._shared_prefill_pending(job.prompt, reuse):
                return
            need = len(job.prompt) - reuse + job.request.n * job.max_tokens
            if not self._slots.make_room(need, growth=self._growth(), keep=src):
                if self._live:
                    return  # wait for running sequences to finish
                self._waiting.popleft()
                self._fail_job(job, CapacityError(f"request needs {need} KV cells; {self._ledger.free} are free"))
                continue
            self._waiting.popleft()
            self._start(job, src, reuse)

    def _reserved_sequences(self) -> int:
        """Live sequences plus the choices that requests still prefilling will fan out to."""
        return len(self._live) + sum(s.job.request.n - 1 for s in self._live if s.index == 0 and not s.job.t_prefilled)

    def _shared_prefill_pending(self, prompt: list[int], reuse: int) -> bool:
        """True when a sequence still prefilling will soon hold much more of ``prompt``."""
        return any(
            common_prefix_len(s.job.prompt, prompt) > reuse + _WAIT_FOR_SHARED_PREFILL
            for s in self._live
            if s.prefilling
        )

    def _growth(self) -> int:
        """KV cells the live requests may still add (remaining prompt + remaining tokens)."""
        total = 0
        for job in {s.job for s in self._live}:
            leader = job.seqs[0]
            total += len(leader.pending) if leader.prefilling else 0
            total += sum(job.max_tokens - len(s.out) for s in job.seqs if s.finish is None)
        return total

    def _start(self, job: Job, src: int | None, reuse: int) -> None:
        job.t_admit = time.perf_counter()
        leader = job.seqs[0]
        leader.slot = self._slots.open()
        if src is not None and reuse > 0:
            self._slots.share(src, leader.slot, reuse)
        leader.n_past = reuse
        leader.pending = job.prompt[reuse:]
        self._spec.attach(leader)
        job.prefill_reused = reuse
        job.prefill_computed = len(job.prompt) - reuse
        self._totals["reused"] += reuse
        self._totals["computed"] += job.prefill_computed
        self._live.append(leader)

    # -- one batched decode step ----------------------------------------------
    def _step(self) -> None:
        """Decodes one token of each generating sequence plus prompt chunks, in one batch."""
        batch = self._batch
        generating = [s for s in self._live if not s.prefilling]
        speculating = any(s.drafter is not None for s in generating)
        batch.clear()
        rows: list[tuple[Sequence, list[int], int | None]] = []
        # 1. every generating sequence feeds the token it sampled last, plus any draft to verify
        spare = batch.capacity - len(generating)
        if speculating:  # rejected drafts briefly hold unreserved cells
            spare = min(spare, self._ledger.n_cells - self._ledger.used - self._growth())
        drafts: dict[int, list[int]] = {}
        for seq in generating:
            draft = self._spec.draft(seq, spare) if seq.drafter is not None else []
            spare -= len(draft)
            fed = seq.pending + draft
            idx = batch.add(fed, seq.n_past, seq.slot, True, logits_all=bool(draft))
            rows.append((seq, fed, idx))
            if draft:
                drafts[id(seq)] = draft
        # 2. prefilling sequences fill the rest of the batch, oldest first
        for seq in self._live:
            if seq.prefilling and batch.room:
                take = batch.room
                if len(seq.pending) - take == 1 and take > 1:
                    take -= 1  # never leave a lone last prompt token for a batch of one row
                chunk = seq.pending[:take]
                last = len(chunk) == len(seq.pending)
                idx = batch.add(chunk, seq.n_past, seq.slot, last)
                rows.append((seq, chunk, idx if last else None))
        # 3. one native decode; its CPU time and energy are shared out by tokens
        cpu0, j0 = self._meter.read()
        t0 = time.perf_counter()
        self._held = max(self._held, self._ledger.used)
        steady = batch.n_tokens == 1 and self._held >= 256  # its logits may depend on the count (thread_policy.py)
        self._threads.decode(self._ctx, batch, steady=steady)  # on the thread count picked for its size
        now = time.perf_counter()
        cpu1, j1 = self._meter.read()
        self._totals["steps"] += 1
        if len(rows) == len(generating):  # prefill rows cost less (no logits): keep them out of the fit
            self._spec.observe_step(batch.n_tokens, now - t0)
        for seq, fed, idx in rows:
            share = len(fed) / batch.n_tokens
            seq.cpu_s += (cpu1 - cpu0) * share
            seq.energy_j += (j1 - j0) * share
            draft = drafts.get(id(seq))
            if draft:
                self._spec.verify(seq, fed, draft, idx)
                continue
            self._ledger.append(seq.slot, fed)
            seq.n_past += len(fed)
            seq.pending = seq.pending[len(fed) :]
            if idx is None:
                continue
            if seq.out:
                seq.target_steps += 1
            # 4. sample where logits came out; a finished prompt may fan out to n choices
            group = [seq]
            if not seq.out and not seq.job.t_prefilled:
                seq.job.t_prefilled = now
                group += self._spawn_choices(seq)
            for s in group:
                token = s.sampler.sample(self._ctx, idx)
                logprob = s.sampler.logprob(self._ctx, idx, token) if s.logprobs is not None else None
                s.accept(token, self._model.piece(token), self._model.is_eog(token), self.max_positions, logprob)
        # 5. finished sequences leave the batch, then their requests complete (all of a request's
        # slots are free by the time its caller has the result)
        finished = [s for s in self._live if s.finish is not None]
        for seq in finished:
            self._release(seq)
        for job in dict.fromkeys(s.job for s in finished):
            if job.done:
                self._complete(job)

    def _spawn_choices(self, leader: Sequence) -> list[Sequence]:
        """Choices 1..n-1 share the leader's prompt cells and sample from its logits."""
        followers = leader.job.seqs[1:]
        for seq in followers:
            seq.slot = self._slots.open()
            self._slots.share(leader.slot, seq.slot, leader.n_past)
            seq.n_past = leader.n_past
            self._spec.attach(seq)
            leader.job.prefill_reused += leader.n_past
            self._live.append(seq)
        return followers

    # -- endings ----------------------------------------------------------------
    def _release(self, seq: Sequence) -> None:
        """Takes a finished sequence out of the batch; keeps its cells as a cached prefix or frees them."""
        self._live.remove(seq)
        seq.sampler.free()
        if seq.drafter is not None:
            seq.drafter.close()
            seq.drafter = None
        if seq.lookup is not None:  # its text joins its tenant's history (when it names one)
            seq.lookup.finish(seq.job.prompt + seq.out, cancelled=seq.finish == "cancelled")
        keep = self.config.prefix_cache_slots > 0 and seq.index == 0 and seq.finish != "cancelled"
        if keep:
            self._slots.keep(seq.slot)
        else:
            self._slots.close(seq.slot)

    def _complete(self, job: Job) -> None:
        for seq in job.seqs:
            seq.sampler.free()
        job.handle.put(job.completion(self.name, self._meter.source))

    def _fail_job(self, job: Job, exc: BaseException) -> None:
        for seq in job.seqs:
            seq.sampler.free()
        job.handle.put(exc)

    def _fail_live(self, exc: BaseException) -> None:
        jobs = {s.job: None for s in self._live}
        for seq in list(self._live):
            seq.finish = "cancelled"
            self._release(seq)
        self._slots.evict_all()
        for job in jobs:
            self._fail_job(job, exc)
