"""The child side of ``probe_load``: load one GGUF with llama.cpp, print one JSON line, exit.

Run as ``python -m orchestrator.engine._probe_child PATH [MEMORY_LIMIT_BYTES]``. It loads
the weights (memory-mapped), makes a 64-cell context and decodes one token, so that
shape, type and graph errors show up here and not in the application. Then it does with
text what the engine will do: tokenizes text with every ASCII character and many scripts
(bytes outside the vocabulary included), renders the chat template and tokenizes the
prompt, and turns every token of the vocabulary back into text. A native crash
kills only this process; the parent maps its exit to ``ModelLoadError``. Exit codes:
0 loaded (facts on stdout), 2 llama.cpp refused the file (reason on stderr), 3 bad usage.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["SAMPLE_TEXT", "main"]

log = logging.getLogger("orchestrator.probe")

HANG_ENV = "ORCHESTRATOR_PROBE_TEST_SLEEP_S"
"""Test hook: the child sleeps this many seconds before loading (simulates a hang)."""


def _limit_memory(limit: int) -> None:
    """Caps this process's address space, so a file that asks for absurd buffers fails here (POSIX only)."""
    try:
        import resource
    except ImportError:  # Windows: the time limit still applies
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# Every ASCII character, Latin accents, Greek, Cyrillic, CJK, Hangul, Hebrew, Arabic,
# Devanagari, emoji (a ZWJ sequence too), a combining accent, zero-width and BOM characters.
SAMPLE_TEXT = (
    "".join(chr(c) for c in range(128))
    + " héllo wörld ñ ß ø Ελληνικά русский 中文 日本語 한국어 עברית العربية हिन्दी 🙂🚀 "
    + "e\u0301 \u200b\ufeff \U0001F468\u200D\U0001F469 <|im_start|> <s> </s> [INST] {{ x }}"
)
_MAX_PIECES = 1_000_000  # vocabularies are far smaller; the header check caps tokens at 10M


def _exercise_text(model: Any, path: str) -> None:
    """Tokenizes, renders the chat template and detokenizes as the engine will (see module doc)."""
    from orchestrator.engine.chat_template import ChatTemplate
    from orchestrator.errors import ChatTemplateError
    from orchestrator.models.gguf import read_gguf

    # 1. Raw prompts: with and without special-token parsing, like prompts and chat text.
    for parse_special in (True, False):
        model.tokenize(SAMPLE_TEXT, add_special=True, parse_special=parse_special)
    # 2. The chat template, as the engine loads and renders it; a template the engine would
    #    refuse (ChatTemplateError) is the engine's typed error, not a crash.
    bos, eos = model.token_text(model.bos), model.token_text(model.eos)
    source = read_gguf(path).chat_template
    if source:
        messages = [{"role": "system", "content": SAMPLE_TEXT}, {"role": "user", "content": SAMPLE_TEXT},
                    {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]
        try:
            prompt = ChatTemplate(source, bos_token=bos, eos_token=eos).render(messages)
        except ChatTemplateError as exc:
            log.warning("the chat template will not be used: %s", exc)
        else:
            model.tokenize(prompt, add_special=model.add_bos, parse_special=True)
    # 3. Any token may be sampled: each one's text and end-of-generation flag.
    for token in range(min(model.n_vocab, _MAX_PIECES)):
        model.piece(token)
        model.is_eog(token)


def main(argv: list[str]) -> int:
    # 1. Only errors reach stderr: the parent keeps its tail as the reason.
    logging.basicConfig(level=logging.ERROR, format="%(message)s", stream=sys.stderr)
    if len(argv) not in (1, 2):
        log.error("usage: python -m orchestrator.engine._probe_child PATH [MEMORY_LIMIT_BYTES]")
        return 3
    path = argv[0]
    hang = os.environ.get(HANG_ENV)
    if hang:
        time.sleep(float(hang))
    if len(argv) == 2:
        _limit_memory(int(argv[1]))

    from orchestrator.engine.native import Batch, NativeContext, NativeModel, llama
    from orchestrator.errors import OrchestratorError

    start = time.perf_counter()
    try:
        # 2. The weights: llama.cpp checks every tensor's name, shape and type here.
        model = NativeModel(path)
        lc = llama()
        # 3. A tiny context and one decoded token build and run the model's graph once.
        ctx = NativeContext(
            model, n_ctx=64, n_batch=32, n_seq_max=1, n_threads=1,
            type_k="f16", type_v="f16", flash_attn="off",
        )  # fmt: skip
        batch = Batch(1)
        token = max(model.bos, 0)
        batch.add([token], 0, 0, True)
        ctx.decode(batch)
        # 4. Text, as the engine handles it: an uncaught C++ exception in the tokenizer aborts here.
        _exercise_text(model, path)
    except OrchestratorError as exc:
        log.error("%s", exc)
        return 2
    desc = ctypes.create_string_buffer(256)
    lc.llama_model_desc(model.ptr, desc, len(desc))
    facts = {
        "ok": True,
        "description": desc.value.decode("utf-8", "replace"),
        "n_params": int(lc.llama_model_n_params(model.ptr)),
        "n_vocab": model.n_vocab,
        "n_ctx_train": model.n_ctx_train,
        "n_embd": int(lc.llama_model_n_embd(model.ptr)),
        "n_layer": int(lc.llama_model_n_layer(model.ptr)),
        "load_s": round(time.perf_counter() - start, 3),
    }
    batch.free()
    ctx.free()
    model.free()
    sys.stdout.write(json.dumps(facts) + "\n")  # the one line the parent reads
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
