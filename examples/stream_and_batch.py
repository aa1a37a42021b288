"""Embedding the engine in an app: stream one answer, run several in one batch, cancel one.

Run: .venv/bin/python examples/stream_and_batch.py
"""

from __future__ import annotations

import anyio

from orchestrator import ChatMessage, EngineConfig, GenerationRequest, LocalEngine, TokenDelta


def ask(question: str, **kw: object) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage(role="user", content=question),), **kw)  # type: ignore[arg-type]


async def main() -> None:
    with LocalEngine("smollm2-135m", EngineConfig(n_ctx=4096)) as engine:
        # 1. Stream tokens into a UI as they arrive.
        async for event in engine.submit(ask("Give me a tip for learning to cook.", max_tokens=48)):
            if isinstance(event, TokenDelta):
                print(event.text, end="", flush=True)
        print()

        # 2. Independent questions from different parts of the app decode together.
        questions = ["What is a noun?", "What is a verb?", "What is an adjective?"]
        async with anyio.create_task_group() as tg:
            for q in questions:
                tg.start_soon(answer, engine, q)

        # 3. A "stop" button: cancelling stops the sequence at its next token.
        handle = engine.submit(ask("Write a long poem about the sea.", max_tokens=500))
        with anyio.move_on_after(0.5):
            await handle.completion()
        handle.cancel()
        print("poem:", handle.result().finish_reason)


async def answer(engine: LocalEngine, question: str) -> None:
    done = await engine.agenerate(ask(question, max_tokens=32))
    print(f"{question} -> {done.text.strip()} ({done.timings.ttft_s * 1000:.0f} ms to first token)")


if __name__ == "__main__":
    anyio.run(main)
