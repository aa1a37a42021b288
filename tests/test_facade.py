"""The embedding facade: ``Orchestrator`` (async) and ``SyncOrchestrator`` (threads, GUI code).

Logic on ``ScriptedBackend`` fakes; cancellation at the next token and freeing the models on the
real smollm2-135m.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from agents.agent import Agent
from orchestrator.backends import ScriptedBackend
from orchestrator.errors import (
    ConfigError,
    EngineError,
    RequestError,
    RunCancelledError,
)
from orchestrator.facade import CancelHandle, Orchestrator
from orchestrator.taskgraph.graph import Generate, Input, TaskGraph
from orchestrator.sync_facade import SyncOrchestrator
from orchestrator.types import Completion, GenerationRequest, SamplingParams, TokenDelta

pytestmark = pytest.mark.timeout(60)



class Gate:
    """Streams words forever, each after the previous one was taken; ``closed`` is set when its stream is closed."""

    def __init__(self) -> None:
        self.name = "gate"
        self.closed = threading.Event()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        try:
            i = 0
            while True:
                await anyio.sleep(0.01)
                i += 1
                yield TokenDelta(index=0, text=f" w{i}")
        finally:
            self.closed.set()


# -- async -------------------------------------------------------------------------------------


def test_async_generate_and_stream():
    async def main() -> tuple[Completion, list]:
        async with Orchestrator({"fake": ScriptedBackend(lambda r: "hello small world")}) as orch:
            done = await orch.generate("hi", max_tokens=2)
            events = [e async for e in orch.stream(GenerationRequest(prompt="x"), model="default")]
            return done, events

    done, events = anyio.run(main)
    assert done.text == "hello small" and done.finish_reason == "length"
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == "hello small world"
    assert isinstance(events[-1], Completion) and events[-1].finish_reason == "stop"


def test_bad_arguments_are_typed_errors():
    async def main() -> None:
        orch = Orchestrator({"fake": ScriptedBackend(lambda r: "x")})
        with pytest.raises(ConfigError, match="no model named 'nope'"):
            await orch.generate("hi", model="nope")
        with pytest.raises(RequestError, match="max_tokens"):
            await orch.generate("hi", max_tokens=0)
        with pytest.raises(ConfigError, match="not both"):
            await orch.generate(GenerationRequest(prompt="x"), max_tokens=3)
        await orch.aclose()
        with pytest.raises(EngineError, match="closed"):
            await orch.generate("hi")

    anyio.run(main)
    with pytest.raises(ConfigError, match="reserved"):
        Orchestrator({"default": ScriptedBackend(["x"])})


def test_cancel_from_another_thread_ends_any_backend_with_a_cancelled_completion():
    gate = Gate()

    async def main() -> tuple[Completion, int]:
        orch = Orchestrator({"gate": gate})
        cancel = CancelHandle()
        pieces = 0
        async for event in orch.stream("go", cancel=cancel):
            if isinstance(event, TokenDelta):
                pieces += 1
                if pieces == 3:
                    await anyio.to_thread.run_sync(cancel.cancel)  # a UI thread presses "stop"
            else:
                return event, pieces
        raise AssertionError("no completion")

    done, pieces = anyio.run(main)
    assert done.finish_reason == "cancelled" and pieces == 3
    assert done.text == " w1 w2 w3" and gate.closed.is_set()


def test_cancel_before_start_and_run_agent_and_graph():
    agent = Agent("helper", "Answer briefly.")
    graph = TaskGraph("g").add("ask", Generate("Q: {question}"), inputs={"question": Input("question")})

    async def main() -> None:
        backend = ScriptedBackend(lambda r: json.dumps({"answer": "42"}) if r.response_format else "A: " + r.prompt)
        async with Orchestrator({"fake": backend}) as orch:
            result = await orch.run_agent(agent, "What is six times seven?")
            assert result.output == "42"
            run = await orch.run_graph(graph, {"question": "why"})
            assert run.status == "done" and run.output == "A: Q: why"
            early = CancelHandle()
            early.cancel()
            with pytest.raises(RunCancelledError):
                await orch.run_agent(agent, "never", cancel=early)
            done = await orch.generate("never", cancel=early)
            assert done.finish_reason == "cancelled" and done.text == ""

    anyio.run(main)


# -- sync ------------------------------------------------------------------------------------


def test_sync_facade_from_several_threads():
    backend = ScriptedBackend(lambda r: "echo " + r.messages[-1].content)
    results: dict[int, str] = {}
    with SyncOrchestrator({"fake": backend}) as orch:

        def work(i: int) -> None:
            results[i] = orch.generate(f"n{i}").text
            streamed = orch.stream(f"s{i}")
            assert "".join(e.text for e in streamed if isinstance(e, TokenDelta)) == f"echo s{i}"

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == {i: f"echo n{i}" for i in range(8)}
    assert len(backend.requests) == 16


def test_sync_stream_callbacks_iterator_and_cancel():
    seen: list[TokenDelta | Completion] = []
    with SyncOrchestrator({"gate": Gate()}) as orch:
        stream = orch.stream("go", on_event=seen.append)
        got = []
        for event in stream:
            got.append(event)
            if len(got) == 4:
                threading.Thread(target=stream.cancel).start()  # cancel from yet another thread
        done = stream.result(5)
    assert done.finish_reason == "cancelled" and got[-1] is done
    assert seen == got  # the callback saw the same events, in order
    assert 4 <= len(got) <= 8  # stopped within a few pieces of the cancel


def test_close_cancels_in_flight_work_and_refuses_more():
    gate = Gate()
    orch = SyncOrchestrator({"gate": gate})
    stream = orch.stream("go")
    first = next(iter(stream))
    assert isinstance(first, TokenDelta)
    orch.close()
    assert gate.closed.wait(5)
    assert stream.result(5).finish_reason == "cancelled"
    with pytest.raises(EngineError, match="closed"):
        orch.generate("again")
    orch.close()  # idempotent


def test_errors_reach_the_calling_thread():
    with SyncOrchestrator({"fake": ScriptedBackend([])}) as orch:
        with pytest.raises(ConfigError, match="no reply left"):
            orch.generate("hi")
        stream = orch.stream("hi")
        with pytest.raises(ConfigError, match="no reply left"):
            list(stream)


def test_imports_stay_light():
    code = (
        "import sys, orchestrator, orchestrator.facade, orchestrator.sync_facade, orchestrator.server; "
        "print(sorted(m for m in sys.modules if 'llama' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- the real model --------------------------------------------------------------------------


@pytest.mark.model
def test_smollm2_cancel_at_the_next_token_and_close_frees(smollm2_path):
    orch = SyncOrchestrator({"small": str(smollm2_path)})
    try:
        greedy = SamplingParams(temperature=0.0)
        assert orch.generate("Say hello.", max_tokens=4, sampling=greedy).tokens <= 4
        tokens = 0
        stream = orch.stream(GenerationRequest(prompt="Once upon a time", max_tokens=400, sampling=greedy))
        for event in stream:
            if isinstance(event, TokenDelta):
                tokens += 1
                if tokens == 3:
                    threading.Thread(target=stream.cancel).start()
        done = stream.result(30)
        assert done.finish_reason == "cancelled"
        assert 3 <= done.tokens <= 12  # stopped at the next token or so, far from 400
        engine = orch.orchestrator._engines["small"]
    finally:
        orch.close()
    with pytest.raises(EngineError, match="closed"):
        engine.submit(GenerationRequest(prompt="x", max_tokens=1))
    assert orch.orchestrator._engines == {}


# -- what the CLI uses: lazy backends, engines, resuming -----------------------------------------


def test_lazy_backends_decide_without_loading_and_load_on_first_use():
    from orchestrator.backends import complete
    from orchestrator.errors import ModelFileError
    from orchestrator.routing.router import Router

    fake = ScriptedBackend(lambda r: "fine", name="fake")
    orch = Orchestrator({"ghost": "/nonexistent/ghost.gguf", "fake": fake})
    ghost = orch.lazy_backend("ghost")
    assert orch.lazy_backend("fake") is fake  # a ready backend is itself
    assert ghost.available is False  # not installed here: a router will not pick it
    decision = Router([ghost, fake]).decide(GenerationRequest(prompt="x"))
    assert decision.backend == "fake" and orch._engines == {}
    with pytest.raises(ModelFileError, match="ghost.gguf"):  # generating loads it (and fails clearly)
        anyio.run(complete, ghost, GenerationRequest(prompt="x"))
    with pytest.raises(ConfigError, match="ready backend"):
        anyio.run(orch.engine, "fake")


def test_resume_graph_finishes_a_failed_run_on_other_backends(tmp_path):
    from orchestrator.errors import NodeFailedError
    from orchestrator.taskgraph.store import RunStore

    graph = TaskGraph("g").add("ask", Generate("Q: {question}"), inputs={"question": Input("question")})

    async def main() -> object:
        async with Orchestrator({"fake": ScriptedBackend([])}) as orch:  # no reply: the node fails
            with RunStore(tmp_path / "runs.sqlite3") as store:
                with pytest.raises(NodeFailedError):
                    await orch.run_graph(graph, {"question": "why"}, store=store, run_id="r1")
                fixed = {"default": ScriptedBackend(["because"])}
                return await orch.resume_graph("r1", graph, store=store, backends=fixed)

    result = anyio.run(main)
    assert result.status == "done" and result.output == "because"
