"""``orchestrator demo``: a short tour of what the engine does, on the embedded default model."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from orchestrator.cli.tune import weights_line
from orchestrator.engine import EngineConfig, LocalEngine
from orchestrator.models.catalogue import DEFAULT_MODEL, resolve_model
from orchestrator.models.gguf import read_gguf
from orchestrator.types import ChatMessage, GenerationRequest, SamplingParams, TokenDelta

__all__ = ["run_demo"]

_SYSTEM = (
    "You are a concise assistant running on the user's own computer. "
    "Answer in one short sentence. Do not add explanations."
)
_QUESTIONS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "What is 2 + 2?",
    "Which planet is closest to the sun?",
    "What do bees make?",
    "What language is spoken in Brazil?",
]


def _chat(question: str, **kw: object) -> GenerationRequest:
    messages = (ChatMessage(role="system", content=_SYSTEM), ChatMessage(role="user", content=question))
    return GenerationRequest(messages=messages, **kw)  # type: ignore[arg-type]


def _graph_demo(engine: LocalEngine, say: Callable[[str], None]) -> None:
    """Runs the SoT pattern durably (a throwaway store) and shows what the run reports."""
    import anyio

    from orchestrator.backends.local import LocalBackend
    from orchestrator.taskgraph.patterns import skeleton_of_thought
    from orchestrator.taskgraph.scheduler import Runner
    from orchestrator.taskgraph.store import RunStore

    question = "How can a small team make its software more reliable?"
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "runs.sqlite3") as store:
        runner = Runner(LocalBackend(engine), store=store)
        result = anyio.run(lambda: runner.run(skeleton_of_thought(points=4, point_tokens=40), {"question": question}))
        say(f"   question: {question}")
        for line in str(result.output).splitlines():
            say(f"   {line[:110]}")
        for key, node in result.nodes.items():
            timing = f", ttft {node.info['ttft_s']:.2f} s, {node.info['decode_tokens']} tokens" if "ttft_s" in node.info else ""
            say(f"   {key:<13} {node.status:<5} {node.duration_s:6.2f} s{timing}")
        say(
            f"   run {result.run_id}: {result.wall_s:.1f} s; prefill {result.prefill_computed} tokens computed, "
            f"{result.prefill_reused} reused; critical path {' -> '.join(result.critical_path)}"
        )
        say("   each node's output was committed to SQLite before anything used it (a throwaway store here); with\n"
            "   `orchestrator run sot ...` a killed run finishes with `orchestrator resume RUN_ID`")


def _agent_demo(engine: LocalEngine, say: Callable[[str], None]) -> None:
    """An agent with two tools on the small model: grammar-constrained, grounded calls."""
    import anyio

    from agents.agent import Agent
    from orchestrator.agent_runner import AgentEvent, run_agent
    from orchestrator.backends.local import LocalBackend
    from tools.builtin import calculator
    from tools.tool import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
            city: City name, e.g. "Paris".
        """
        return f"{city}: 18 degrees, light rain"  # a canned reply: the demo opens no socket

    def calls(name: str, **arguments: object) -> dict:
        return {"calls": [{"name": name, "arguments": arguments}]}

    agent = Agent(
        "assistant", "You are a helpful assistant.", tools=(get_weather, calculator), ground_arguments=True,
        examples=(("Is it cold in Oslo?", calls("get_weather", city="Oslo")), ("What is 6 * 7?", calls("calculator", expression="6 * 7"))),
    )

    def show(event: AgentEvent) -> None:
        if event.kind == "tool_started":
            say(f"   -> tool {event.tool} started")
        elif event.kind == "tool_finished":
            say(f"   <- tool {event.tool} finished" + (f" with error: {event.error}" if event.error else ""))

    for task in ("What's the weather in Lisbon?", "What is 12 * 34?"):
        say(f"   user: {task}")
        start = time.perf_counter()
        result = anyio.run(lambda task=task: run_agent(agent, task, LocalBackend(engine), on_event=show))
        for r in result.calls:
            say(f"   call {r.call.tool.name}({', '.join(f'{k}={v!r}' for k, v in r.call.arguments.items())}) = {r.value!r}")
        say(f"   answer: {str(result.output)[:100]!r}  ({result.steps} model turns, {time.perf_counter() - start:.1f} s)")
    say("   every turn was decoded under a grammar made from the tool schemas, so each call parsed and\n"
        "   validated; with ground_arguments the city had to be words of the request")


def _routing_demo(engine: LocalEngine, say: Callable[[str], None]) -> None:
    """Routing decisions as data: privacy, a remote that is down, a confidence cascade."""
    import anyio

    from orchestrator.backends.base import complete
    from orchestrator.backends.local import LocalBackend
    from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint
    from orchestrator.routing.router import Router
    from policies.cascade import CascadePolicy, CascadeSettings
    from policies.connectivity import ConnectivityPolicy
    from policies.privacy import PrivacyPolicy

    def show(decision: object) -> None:
        d = decision  # a RouteDecision
        say(f"   -> {d.backend} (decided by {d.policy}: {d.reason})")  # type: ignore[attr-defined]
        for step in d.trail:  # type: ignore[attr-defined]
            say(f"      {step.policy:<12} {step.action:<8} {step.reason}")

    # A "cloud" tier at a loopback port where nothing listens: the demo never leaves this machine.
    cloud = RemoteBackend(RemoteEndpoint(base_url="http://127.0.0.1:9/v1", model="large", name="cloud"))
    local = LocalBackend(engine)
    router = Router([cloud, local], policies=[PrivacyPolicy(allow_egress=True), ConnectivityPolicy()])
    private = _chat("Draft a reply to jane.doe@example.com about the invoice.", max_tokens=8)
    say("   a request holding an e-mail address (decided, not run):")
    show(router.decide(private))
    say("   a plain request; egress is granted, but the cloud server is down:")
    done = anyio.run(lambda: complete(router, _chat(_QUESTIONS[0], max_tokens=16)))
    say(f"   answer {done.text.strip()!r}")
    assert done.route is not None
    show(done.route)

    say("   a confidence cascade (smollm2-135m, then gemma3-270m): the small model answers with token\n"
        "   log-probabilities; an answer below the confidence threshold escalates")
    with LocalEngine("gemma3-270m", EngineConfig(n_ctx=1024, max_sequences=2)) as larger:
        router = Router([local, LocalBackend(larger)], policies=[PrivacyPolicy(), CascadePolicy(CascadeSettings(threshold=0.5))])
        for question in ("The capital of France is", "The author of the novel Middlemarch is"):
            request = GenerationRequest(prompt=question, max_tokens=6, stop=("\n", "."))
            done = anyio.run(lambda request=request: complete(router, request))
            assert done.route is not None
            step = done.route.trail[-1]
            say(f"   {question!r:<42} -> {done.route.backend}: {done.text.strip()[:40]!r}")
            say(f"      {step.policy} {step.action}: {step.reason}")


def run_demo(out: TextIO, model: str = DEFAULT_MODEL) -> int:
    def say(line: str = "") -> None:
        out.write(line + "\n")
        out.flush()

    path = resolve_model(model)
    info = read_gguf(path)
    say(f"== model: {model}  ({path.name})")
    say(
        f"   read from the GGUF header before loading: {info.architecture}, {info.n_params / 1e6:.0f}M params, "
        f"{info.file_type}, vocab {info.vocab_size} ({info.vocab_type}), trained context {info.context_length}"
    )
    for name in (model, "gemma3-270m"):  # measured once per machine (a minute each), then remembered
        say(f"   weights of {name}: {weights_line(name)}")

    with LocalEngine(model, EngineConfig(n_ctx=4096, max_sequences=16)) as engine:
        say(f"   KV cache: {engine.kv_bytes_per_token} bytes/token (f16); {engine.stats().n_ctx} cells shared by 16 sequences")

        say("\n== 1. one chat request, streamed")
        say(f"   user: {_QUESTIONS[0]}")
        out.write("   assistant: ")
        handle = engine.submit(_chat(_QUESTIONS[0], max_tokens=40))
        for event in handle:
            if isinstance(event, TokenDelta):
                out.write(event.text)
                out.flush()
        done = handle.result()
        t = done.timings
        say(
            f"\n   ttft {t.ttft_s * 1000:.0f} ms, prefill {t.prefill_tokens} tokens at {t.prefill_tok_s:.0f} tok/s, "
            f"decode {t.decode_tok_s:.0f} tok/s, cpu {t.cpu_s:.2f} s, energy {t.energy_j:.1f} J ({t.energy_source})"
        )

        say("\n== 2. six parallel branches, one batched decode, shared system-prompt KV")
        start = time.perf_counter()
        handles = [engine.submit(_chat(q, max_tokens=32)) for q in _QUESTIONS]
        results = [h.result() for h in handles]
        wall = time.perf_counter() - start
        for q, r in zip(_QUESTIONS, results):
            t = r.timings
            say(f"   {q:<38} -> {r.text.strip()[:60]!r}")
            say(f"   {'':<38}    prefill computed {t.prefill_tokens}, reused {t.prefill_reused_tokens}")
        tokens = sum(r.tokens for r in results)
        say(f"   {tokens} tokens in {wall:.2f} s = {tokens / wall:.0f} tok/s aggregate")

        say("\n== 3. n=3 samples of one prompt (temperature 0.8), sharing the prompt's KV")
        r = engine.generate(
            _chat("Suggest a name for a cat.", max_tokens=16, n=3, sampling=SamplingParams(temperature=0.8, seed=7))
        )
        for c in r.choices:
            say(f"   [{c.index}] {c.text.strip()!r}")
        say(f"   prompt computed once ({r.timings.prefill_tokens} tokens), reused {r.timings.prefill_reused_tokens}")

        say("\n== 4. cancellation stops a sequence at its next token and frees its KV cells")
        handle = engine.submit(GenerationRequest(prompt="Once upon a time", max_tokens=400))
        seen = 0
        for event in handle:
            if isinstance(event, TokenDelta):
                seen += 1
                if seen == 5:
                    handle.cancel()
        c = handle.result()
        say(f"   finish_reason={c.finish_reason} after {c.tokens} tokens")

        say("\n== 5. speculative decoding: prompt lookup drafts from the input, verified in one batched step")
        text = (
            "The survey team counted 41 herons at Alder Creek on 12 March, 23 herons at Birch Hollow "
            "on 19 March and 58 herons at Cedar Marsh on 26 March."
        )
        prompt = f"Text: {text}\nRepeat the text word for word.\nRepeated: The survey team"
        for mode in ("off", "prompt-lookup"):
            start = time.perf_counter()
            r = engine.generate(GenerationRequest(prompt=prompt, max_tokens=48, speculative=mode))
            rate = r.tokens / (time.perf_counter() - start)
            if mode == "off":
                plain, plain_rate = r, rate
                continue
            sp = r.speculative
            assert sp is not None
            same = "identical to" if r.choices[0].token_ids == plain.choices[0].token_ids else "differs (near-tie) from"
            say(f"   plain {plain_rate:.0f} tok/s; prompt-lookup {rate:.0f} tok/s ({rate / plain_rate:.2f}x), {same} plain greedy")
            say(
                f"   drafted {sp.drafted}, accepted {sp.accepted} ({sp.acceptance_rate:.0%}), "
                f"{sp.tokens_per_step:.2f} tokens per target step"
            )

        say("\n== 6. a task graph: Skeleton-of-Thought, the outline's points expanded as parallel branches")
        _graph_demo(engine, say)

        say("\n== 7. an agent with tools: grammar-constrained, grounded tool calls on the small model")
        _agent_demo(engine, say)

        say("\n== 8. routing: each decision is data (backend, deciding policy, reason, trail)")
        _routing_demo(engine, say)

        s = engine.stats()
        say(
            f"\n== engine: {s.decode_steps} batched steps, prefill computed {s.prefill_computed_tokens} tokens, "
            f"reused {s.prefill_reused_tokens}; {s.cached_prefixes} cached prefixes"
        )
    return 0
