"""One fresh process for ``orchestrator bench prefix``: loads the engine, asks one question, reports.

    python bench/_prefix_worker.py MODE MODEL_PATH STORE_DIR SYSTEM_FILE THREADS MAX_TOKENS [PREFIX_TOKENS]

Modes (one JSON line on stdout each):
- ``seed``: writes a system prompt of at least PREFIX_TOKENS tokens into SYSTEM_FILE, pins it
  (computed, stored in STORE_DIR), and reports its size and the time pinning took;
- ``restored``: an engine with the store on; the request finds the stored prefix and restores it
  (``LocalEngine`` does so at admission, no pin call), so its time to first token includes the restore;
- ``computed``: an engine with the store off; the request computes the whole prompt.
Both answer modes send the same request (the system prompt, one user question, greedy) and
report its time to first token (``Timings.ttft_s``: from submit to the first token), the
prompt tokens reused, the restored tokens, the generated token ids and the engine's load time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.types import ChatMessage, GenerationRequest

QUESTION = "Which rule covers lost keys? Answer in one sentence."
_FACTS = [
    ("visitors", "sign the book at the front desk and wear a badge"),
    ("lost keys", "are reported to the caretaker, who changes the lock within a day"),
    ("the kitchen", "is cleaned by whoever used it last, before six in the evening"),
    ("parcels", "are kept in the post room for two weeks, then returned"),
    ("bicycles", "go in the shed behind the building, never in the hallway"),
    ("noise", "after ten at night is not allowed on any floor"),
    ("the roof terrace", "opens from May to September, from eight to eight"),
    ("pets", "are welcome if they are registered with the office"),
]


def system_prompt(n: int) -> str:
    """A house handbook of ``n`` numbered rules, in the voice of an assistant's instructions."""
    head = "You are the assistant of the Linden Street house. Answer residents' questions from the handbook below.\n\n"
    rules = [f"Rule {i + 1}: {_FACTS[i % len(_FACTS)][0]} {_FACTS[i % len(_FACTS)][1]} (section {i // len(_FACTS) + 1})."
             for i in range(n)]
    return head + "\n".join(rules)


def messages(system: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage(role="system", content=system),)


def config(store: str, threads: int, persist: bool) -> EngineConfig:
    return EngineConfig(n_ctx=4096, max_sequences=2, prefix_cache_slots=2, n_threads=threads, prefix_dir=store, persist_prefixes=persist)


def seed(engine: LocalEngine, system_file: Path, want: int) -> dict:
    n = 8
    while len(engine.prefix_tokens(messages(system_prompt(n)))) < want:
        n += 4
    system = system_prompt(n)
    system_file.write_text(system, encoding="utf-8")
    start = time.perf_counter()
    pinned = engine.pin_prefix(messages(system))
    return {"prefix_tokens": pinned.tokens, "pin_s": time.perf_counter() - start, "source": pinned.source,
            "stored_bytes": pinned.stored.stat().st_size if pinned.stored else 0}


def answer(engine: LocalEngine, system: str, max_tokens: int) -> dict:
    request = GenerationRequest(messages=(*messages(system), ChatMessage(role="user", content=QUESTION)), max_tokens=max_tokens)
    done = engine.generate(request)
    return {"ttft_s": done.timings.ttft_s, "prompt_tokens": done.timings.prefill_tokens + done.timings.prefill_reused_tokens,
            "reused": done.timings.prefill_reused_tokens, "restored": engine.stats().restored_prefix_tokens,
            "ids": list(done.choices[0].token_ids), "text": done.choices[0].text}


def main() -> None:
    mode, model, store, system_file, threads, max_tokens = sys.argv[1:7]
    start = time.perf_counter()
    with LocalEngine(model, config(store, int(threads), persist=mode != "computed")) as engine:
        loaded = time.perf_counter() - start
        if mode == "seed":
            out = seed(engine, Path(system_file), int(sys.argv[7]))
        else:
            out = answer(engine, Path(system_file).read_text(encoding="utf-8"), int(max_tokens))
    print(json.dumps({"mode": mode, "load_s": loaded, **out}), flush=True)


if __name__ == "__main__":
    main()
