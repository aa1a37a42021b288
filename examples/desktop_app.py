"""Embedding in a desktop app: the sync facade from plain threads, tokens to a callback, a Stop button.

A GUI toolkit would call ``on_event`` from its own thread-safe hook (``root.after``, ``QMetaObject
.invokeMethod``); here the main thread plays the UI: it prints what arrives in its inbox and
"presses Stop" after 24 pieces, a cancel from outside the orchestrator's loop thread.

Run: .venv/bin/python examples/desktop_app.py
"""

from __future__ import annotations

import queue
import threading

from orchestrator import Completion, SamplingParams, TokenDelta
from orchestrator.sync_facade import SyncOrchestrator


def main() -> None:
    ui_events: queue.SimpleQueue[TokenDelta | Completion] = queue.SimpleQueue()  # the UI thread's inbox

    with SyncOrchestrator({"assistant": "smollm2-135m"}) as orch:
        orch.load()  # load the model up front, e.g. behind a splash screen

        # 1. A blocking call from any thread (a worker, a button handler that may block).
        print("Q: Name a fruit.")
        print("A:", orch.generate("Name a fruit.", max_tokens=12, sampling=SamplingParams(temperature=0)).text.strip())

        # 2. Stream into the UI through a callback; the user presses Stop part-way.
        stream = orch.stream("Tell me a long story about a dragon.", max_tokens=300, on_event=ui_events.put)
        print("Story: ", end="", flush=True)
        pieces = 0
        while True:
            event = ui_events.get()  # the UI thread takes events from its inbox
            if isinstance(event, TokenDelta):
                print(event.text, end="", flush=True)
                pieces += 1
                if pieces == 24:
                    stream.cancel()  # the Stop button: generation ends at the next token
            else:
                print(f"\n[{event.finish_reason} after {event.tokens} tokens]")
                break

        # 3. Several threads at once share the model (their requests decode in one batch).
        answers: dict[str, str] = {}

        def ask(question: str) -> None:
            answers[question] = orch.generate(question, max_tokens=16, sampling=SamplingParams(temperature=0)).text.strip()

        threads = [threading.Thread(target=ask, args=(q,)) for q in ("What is rain?", "What is snow?", "What is wind?")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for question, answer in answers.items():
            print(f"Q: {question}\nA: {answer}")
    # Leaving the with-block cancels anything still running and frees the model.


if __name__ == "__main__":
    main()
