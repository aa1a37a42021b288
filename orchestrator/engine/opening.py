"""Opening a model for ``LocalEngine``: from a name or path to checked, loaded native objects.

The steps, in order, so that a bad file or setting fails typed before the next step costs more:

1. resolve the name (``models.catalogue``) and read the GGUF header in pure Python: hostile
   files fail here, before any native load;
2. probe-load untrusted files in a child process (``probe.check_loadable``);
3. check that the KV cache fits the memory budget;
4. load the weights and create the context, the batch (``native``) and the policy that
   picks each step's thread count (``thread_policy``);
5. compile the model's chat template (one that cannot compile is ignored, with a warning);
6. load the draft model, if one is configured (one that cannot load leaves speculation off,
   and says why).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.draft_model import DraftModel
from orchestrator.engine.metrics import available_memory_bytes
from orchestrator.engine.native import Batch, NativeContext, NativeModel
from orchestrator.engine.probe import check_loadable
from orchestrator.engine.thread_policy import StepThreads
from orchestrator.errors import CapacityError, ChatTemplateError, ModelError
from orchestrator.models.catalogue import model_name, resolve_model
from orchestrator.models.gguf import GGUFInfo, read_gguf

if TYPE_CHECKING:
    from orchestrator.engine.chat_template import ChatTemplate

__all__ = ["OpenedModel", "open_model"]

log = logging.getLogger(__name__)

_DEFAULT_MEMORY = 8 << 30


@dataclass(frozen=True)
class OpenedModel:
    """What ``open_model`` hands the engine; the engine frees ``batch``, ``ctx`` and ``model``."""

    name: str
    info: GGUFInfo
    kv_bytes_per_token: int
    model: NativeModel
    ctx: NativeContext
    batch: Batch
    threads: StepThreads
    max_positions: int
    template: ChatTemplate | None
    draft: DraftModel | None
    draft_error: str | None


def open_model(model: str | Path, cfg: EngineConfig, *, name: str | None, n_seq_max: int) -> OpenedModel:
    """Steps 1 to 6 above; when a step fails, what the steps before it loaded is freed."""
    # 1. the name and the header
    path = resolve_model(model)
    info = read_gguf(path)  # hostile files fail here, before any native load
    # 2. untrusted files load in a child first
    check_loadable(path, cfg.probe, info=info)
    name = name or model_name(model)
    # 3. the KV cache's memory
    kv_bytes_per_token = info.kv_bytes_per_token(cfg.type_k, cfg.type_v)
    _check_budget(cfg, kv_bytes_per_token)
    with ExitStack() as undo:  # on any failure below, frees what was loaded (last first)
        # 4. the weights, the context and the batch
        native = NativeModel(path)
        undo.callback(native.free)
        ctx = NativeContext(
            native,
            n_ctx=cfg.n_ctx,
            n_batch=cfg.n_batch,
            n_seq_max=n_seq_max,
            n_threads=cfg.threads,
            type_k=cfg.type_k,
            type_v=cfg.type_v,
            flash_attn=cfg.flash,
        )
        undo.callback(ctx.free)
        batch = Batch(cfg.n_batch)
        undo.callback(batch.free)
        # 5. the chat template
        template = _load_template(info, native, name)
        # 6. the draft model; a draft of another vocabulary raises (IncompatibleDraftError)
        draft, draft_error = _load_draft(cfg.draft_model, cfg, native, n_ctx=ctx.n_ctx) if cfg.draft_model else (None, None)
        undo.pop_all()  # loaded: from here the engine frees them
    max_positions = min(ctx.n_ctx, native.n_ctx_train or ctx.n_ctx)
    return OpenedModel(
        name=name, info=info, kv_bytes_per_token=kv_bytes_per_token, model=native, ctx=ctx, batch=batch,
        threads=StepThreads(cfg.threads, adaptive=cfg.thread_policy == "adaptive"), max_positions=max_positions, template=template, draft=draft, draft_error=draft_error,
    )


def _check_budget(cfg: EngineConfig, kv_bytes_per_token: int) -> None:
    """Raises ``CapacityError`` when a KV cache of ``cfg.n_ctx`` tokens would not fit the budget
    (``kv_budget_bytes``, or half the available memory)."""
    budget = cfg.kv_budget_bytes or (available_memory_bytes() or _DEFAULT_MEMORY) // 2
    need = cfg.n_ctx * kv_bytes_per_token
    if need > budget:
        raise CapacityError(
            f"a KV cache of {cfg.n_ctx} tokens at {kv_bytes_per_token} bytes/token needs "
            f"{need / 2**20:.0f} MiB; the budget is {budget / 2**20:.0f} MiB "
            f"(lower n_ctx, quantize the KV cache with type_k/type_v, or raise kv_budget_bytes)"
        )


def _load_draft(name: str, cfg: EngineConfig, target: NativeModel, *, n_ctx: int) -> tuple[DraftModel | None, str | None]:
    """Loads the draft model; a draft that cannot load leaves speculation off (and says why),
    but a draft whose vocabulary differs is the caller's mistake and raises."""
    try:
        path = resolve_model(name)
        check_loadable(path, cfg.probe, info=read_gguf(path))
        draft = DraftModel(
            str(path), target, n_ctx=n_ctx, n_seq_max=cfg.max_sequences,
            n_batch=cfg.n_batch, threads=cfg.threads,
        )
        return draft, None
    except ModelError as exc:
        error = f"draft model {name} did not load: {exc}"
        log.warning("%s; speculation with it stays off", error)
        return None, error


def _load_template(info: GGUFInfo, model: NativeModel, name: str) -> ChatTemplate | None:
    if not info.chat_template:
        return None
    from orchestrator.engine.chat_template import ChatTemplate

    try:
        return ChatTemplate(
            info.chat_template,
            bos_token=model.token_text(model.bos),
            eos_token=model.token_text(model.eos),
        )
    except ChatTemplateError as exc:
        log.warning("ignoring the chat template of %s: %s", name, exc)
        return None
