"""``orchestrator demo``: a short tour of what the engine does, on the embedded default model.

It goes through ``SyncOrchestrator``, the facade an app embeds: every section below is what an
app would write.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from orchestrator.cli.tune import weights_line
from orchestrator.engine import EngineConfig
from orchestrator.engine.variants import stored_record
from orchestrator.models.catalogue import DEFAULT_MODEL, resolve_model
from orchestrator.models.gguf import read_gguf
from orchestrator.sync_facade import SyncOrchestrator
from orchestrator.types import ChatMessage, GenerationRequest, SamplingParams, TokenDelta

__all__ = ["run_demo"]

_LARGER = "gemma3-270m"  # the cascade's second tier
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


class _Out:
    """The demo's output: ``say(line)`` writes a whole line, ``say.write(text)`` a streamed piece."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def __call__(self, line: str = "") -> None:
        self.write(line + "\n")


def _chat(question: str, **kw: object) -> GenerationRequest:
    messages = (ChatMessage(role="system", content=_SYSTEM), ChatMessage(role="user", content=question))
    return GenerationRequest(messages=messages, **kw)  # type: ignore[arg-type]


def _streamed_chat(orch: SyncOrchestrator, say: _Out) -> None:
    """One chat request, its tokens printed as they come, then its timings."""
    say(f"   user: {_QUESTIONS[0]}")
    say.write("   assistant: ")
    stream = orch.stream(_chat(_QUESTIONS[0], max_tokens=40))
    for event in stream:
        if isinstance(event, TokenDelta):
            say.write(event.text)
    t = stream.result().timings
    say(
        f"\n   ttft {t.ttft_s * 1000:.0f} ms, prefill {t.prefill_tokens} tokens at {t.prefill_tok_s:.0f} tok/s, "
        f"decode {t.decode_tok_s:.0f} tok/s, cpu {t.cpu_s:.2f} s, energy {t.energy_j:.1f} J ({t.energy_source})"
    )


def _parallel_branches(orch: SyncOrchestrator, say: _Out) -> None:
    """Six requests at once: the engine decodes them in one batch and shares the system prompt's KV."""
    start = time.perf_counter()
    streams = [orch.stream(_chat(q, max_tokens=32)) for q in _QUESTIONS]
    results = [s.result() for s in streams]
    wall = time.perf_counter() - start
    for q, r in zip(_QUESTIONS, results):
        t = r.timings
        say(f"   {q:<38} -> {r.text.strip()[:60]!r}")
        say(f"   {'':<38}    prefill computed {t.prefill_tokens}, reused {t.prefill_reused_tokens}")
    tokens = sum(r.tokens for r in results)
    say(f"   {tokens} tokens in {wall:.2f} s = {tokens / wall:.0f} tok/s aggregate")


def _samples(orch: SyncOrchestrator, say: _Out) -> None:
    """n=3 samples of one prompt, sharing its KV."""
    r = orch.generate(_chat("Suggest a name for a cat.", max_tokens=16, n=3, sampling=SamplingParams(temperature=0.8, seed=7)))
    for c in r.choices:
        say(f"   [{c.index}] {c.text.strip()!r}")
    say(f"   prompt computed once ({r.timings.prefill_tokens} tokens), reused {r.timings.prefill_reused_tokens}")


def _cancellation(orch: SyncOrchestrator, say: _Out) -> None:
    """A stop button pressed after five tokens: the sequence ends at its next token."""
    stream = orch.stream(GenerationRequest(prompt="Once upon a time", max_tokens=400))
    seen = 0
    for event in stream:
        if isinstance(event, TokenDelta):
            seen += 1
            if seen == 5:
                stream.cancel()
    c = stream.result()
    say(f"   finish_reason={c.finish_reason} after {c.tokens} tokens")


def _speculation(orch: SyncOrchestrator, say: _Out) -> None:
    """Prompt lookup on a copying task, against plain decoding: the speed and the identity."""
    text = (
        "The survey team counted 41 herons at Alder Creek on 12 March, 23 herons at Birch Hollow "
        "on 19 March and 58 herons at Cedar Marsh on 26 March."
    )
    prompt = f"Text: {text}\nRepeat the text word for word.\nRepeated: The survey team"
    runs = {}
    for mode in ("off", "prompt-lookup"):
        start = time.perf_counter()
        r = orch.generate(GenerationRequest(prompt=prompt, max_tokens=48, speculative=mode))
        runs[mode] = (r, r.tokens / (time.perf_counter() - start))
    (plain, plain_rate), (r, rate) = runs["off"], runs["prompt-lookup"]
    sp = r.speculative
    assert sp is not None
    same = "identical to" if r.choices[0].token_ids == plain.choices[0].token_ids else "differs (near-tie) from"
    say(f"   plain {plain_rate:.0f} tok/s; prompt-lookup {rate:.0f} tok/s ({rate / plain_rate:.2f}x), {same} plain greedy")
    say(f"   drafted {sp.drafted}, accepted {sp.accepted} ({sp.acceptance_rate:.0%}), {sp.tokens_per_step:.2f} tokens per target step")
    again = orch.generate(GenerationRequest(prompt=prompt, max_tokens=48, speculative="prompt-lookup"))
    repeat = (again.choices[0].token_ids, again.speculative.drafted, again.speculative.target_steps) == (
        r.choices[0].token_ids, sp.drafted, sp.target_steps)
    say(f"   run again: {'the same tokens, drafts and steps' if repeat else 'DIFFERENT'} (draft lengths follow fixed costs, not clocks)")


def _pinned_prefix(orch: SyncOrchestrator, say: _Out) -> None:
    """A long system prompt pinned: computed once, stored with its KV state, restored by later runs."""
    rules = " ".join(f"Rule {i}: answer politely, briefly and only about the shop's orders." for i in range(1, 25))
    system = f"You are the support assistant of a small bookshop. {rules}"
    start = time.perf_counter()
    pinned = orch.pin_prefix(system)
    took = time.perf_counter() - start
    where = {"disk": "restored from disk", "computed": "computed and stored", "kv": "already in the KV cache"}[pinned.source]
    say(f"   {pinned.tokens} tokens {where} in {took:.2f} s (the next `make demo` restores them from disk)")
    r = orch.generate(GenerationRequest(messages=(
        ChatMessage(role="system", content=system), ChatMessage(role="user", content="Do you sell maps?")), max_tokens=24))
    say(f"   a question after it reused {r.timings.prefill_reused_tokens} cached tokens: {r.text.strip()!r}")


def _graph_demo(orch: SyncOrchestrator, say: _Out) -> None:
    """Runs the SoT pattern durably (a throwaway store) and shows what the run reports."""
    from orchestrator.taskgraph.patterns import skeleton_of_thought
    from orchestrator.taskgraph.store import RunStore

    question = "How can a small team make its software more reliable?"
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "runs.sqlite3") as store:
        result = orch.run_graph(skeleton_of_thought(points=4, point_tokens=40), {"question": question}, store=store)
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


def _agent_demo(orch: SyncOrchestrator, say: _Out) -> None:
    """An agent with two tools on the small model: scored decisions with a confidence per step."""
    from agents.agent import Agent
    from orchestrator.agent_runner import AgentEvent
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
        decide="scored",
    )

    def show(event: AgentEvent) -> None:
        if event.kind == "tool_started":
            say(f"   -> tool {event.tool} started")
        elif event.kind == "tool_finished":
            say(f"   <- tool {event.tool} finished" + (f" with error: {event.error}" if event.error else ""))

    for task in ("What's the weather in Lisbon?", "What is 12 * 34?"):
        say(f"   user: {task}")
        start = time.perf_counter()
        result = orch.run_agent(agent, task, on_event=show)
        for r in result.calls:
            say(f"   call {r.call.tool.name}({', '.join(f'{k}={v!r}' for k, v in r.call.arguments.items())}) = {r.value!r}")
        say(f"   answer: {str(result.output)[:100]!r}  ({result.steps} model turns, {time.perf_counter() - start:.1f} s)")
        sure = ", ".join(f"step {d.step} {d.kind} {d.confidence:.2f}" for d in result.decisions)
        say(f"   confidence per step (calibrated; below Agent(escalate_below=...) a step escalates): {sure}")
    say("   decide='scored': the tool (or none) is chosen by scores, each argument among grounded\n"
        "   candidates of the request, and every step gets a calibrated confidence")


def _routing_demo(orch: SyncOrchestrator, say: _Out) -> None:
    """Routing decisions as data: privacy, a remote that is down, a confidence cascade."""
    import anyio

    from orchestrator.backends.base import complete
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
    local = orch.backend()
    router = Router([cloud, local], policies=[PrivacyPolicy(allow_egress=True), ConnectivityPolicy()])
    private = _chat("Draft a reply to jane.doe@example.com about the invoice.", max_tokens=8)
    say("   a request holding an e-mail address (decided, not run):")
    show(router.decide(private))
    say("   a plain request; egress is granted, but the cloud server is down:")
    done = anyio.run(lambda: complete(router, _chat(_QUESTIONS[0], max_tokens=16)))
    say(f"   answer {done.text.strip()!r}")
    assert done.route is not None
    show(done.route)

    say(f"   a confidence cascade ({local.name}, then {_LARGER}): the small model answers with token\n"
        "   log-probabilities; an answer below the confidence threshold escalates")
    # The second tier keeps its shipped file until `orchestrator models tune gemma3-270m` has measured it
    # (its tune takes minutes: an F32 reference of 1 GB); the demo does not start that tune.
    weights = "auto" if stored_record(_LARGER) is not None else "shipped"
    say(f"   {_LARGER} weights: {'as tuned on this machine' if weights == 'auto' else 'the shipped file (not tuned here yet)'}")
    with SyncOrchestrator({_LARGER: _LARGER}, engine_config=EngineConfig(n_ctx=1024, max_sequences=2, weights=weights)) as larger:
        router = Router([local, larger.backend()], policies=[PrivacyPolicy(), CascadePolicy(CascadeSettings(threshold=0.5))])
        for question in ("The capital of France is", "The author of the novel Middlemarch is"):
            request = GenerationRequest(prompt=question, max_tokens=6, stop=("\n", "."))
            done = anyio.run(lambda request=request: complete(router, request))
            assert done.route is not None
            step = done.route.trail[-1]
            say(f"   {question!r:<42} -> {done.route.backend}: {done.text.strip()[:40]!r}")
            say(f"      {step.policy} {step.action}: {step.reason}")


def _escalation_demo(orch: SyncOrchestrator, say: _Out) -> None:
    """One agent step escalated to a second tier, an OpenAI-compatible server on loopback
    (``orchestrator serve``, here over the same small model: the embedded gemma3-270m file has
    no chat template, so it cannot run an agent's chat), then a private task whose escalation
    the privacy policy refuses; each decision printed."""
    from typing import Annotated

    import anyio
    from pydantic import AfterValidator, BaseModel

    from agents.agent import Agent
    from orchestrator.agent_runner import run_agent
    from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint
    from orchestrator.errors import ConfigError
    from tools.tool import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
            city: City name, e.g. "Paris".
        """
        return f"{city}: 18 degrees, light rain"

    checked: list[str] = []

    def reviewed(summary: str) -> str:  # stands in for a check the small model fails (a validator, a reviewer)
        checked.append(summary)
        if len(checked) == 1:
            raise ValueError("too vague: say the temperature and the rain")
        return summary

    class Report(BaseModel):
        city: str
        summary: Annotated[str, AfterValidator(reviewed)]

    agent = Agent("reporter", "You report the weather.", tools=(get_weather,), output_type=Report, escalate_to="larger",
                  max_retries=0, max_steps=3, max_tokens=128,
                  examples=(("Is it cold in Oslo?", {"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}),))

    def show(task: str, backends: dict) -> None:
        checked.clear()
        result = anyio.run(lambda: run_agent(agent, task, backends))
        say(f"   user: {task}")
        for r in result.calls:
            say(f"   call {r.call.tool.name}({', '.join(f'{k}={v!r}' for k, v in r.call.arguments.items())}) = {r.value!r}")
        say(f"   first answer refused by the check: {checked[0][:60]!r}" if checked else "   (no answer was checked)")
        d = result.escalation
        if d is not None:
            say(f"   escalation -> {d.backend} (decided by {d.policy}: {d.reason})")
            for step in d.trail:
                say(f"      {step.policy:<8} {step.action:<7} {step.reason}")
        say(f"   answer from {'the second tier' if result.escalated else 'the small model'}: {result.output!r}")

    local = orch.backend()
    try:
        from orchestrator.server import BackgroundServer, ServerConfig
    except ConfigError as exc:  # the server extra is not installed
        say(f"   (skipped: {exc})")
        return
    with BackgroundServer({"assistant": local}, ServerConfig(port=0)) as server:
        say(f"   second tier: an OpenAI-compatible server at {server.url} (native tool calls and response_format)")
        show("What's the weather in Lisbon?", {"default": local, "larger": RemoteBackend(RemoteEndpoint(base_url=server.url, model="assistant"))})
    # A remote tier at a loopback port where nothing listens: the privacy policy refuses before any socket.
    cloud = RemoteBackend(RemoteEndpoint(base_url="http://127.0.0.1:9/v1", model="large", name="cloud"))
    say("   the same agent with a remote tier, on a task holding an e-mail address:")
    show("What's the weather in Lisbon? Mail it to jane.doe@example.com", {"default": local, "larger": cloud})


def _model_header(model: str, say: _Out) -> None:
    """What the GGUF header says, read before loading the model."""
    path = resolve_model(model)
    info = read_gguf(path)
    say(f"== model: {model}  ({path.name})")
    say(
        f"   read from the GGUF header before loading: {info.architecture}, {info.n_params / 1e6:.0f}M params, "
        f"{info.file_type}, vocab {info.vocab_size} ({info.vocab_type}), trained context {info.context_length}"
    )
    say(f"   weights of {model}: {weights_line(model)}")  # measured once per machine (about a minute), then remembered


_SECTIONS: list[tuple[str, Callable[[SyncOrchestrator, _Out], None]]] = [
    ("1. one chat request, streamed", _streamed_chat),
    ("2. six parallel branches, one batched decode, shared system-prompt KV", _parallel_branches),
    ("3. n=3 samples of one prompt (temperature 0.8), sharing the prompt's KV", _samples),
    ("4. cancellation stops a sequence at its next token and frees its KV cells", _cancellation),
    ("5. speculative decoding: prompt lookup drafts from the input, verified in one batched step", _speculation),
    ("6. a task graph: Skeleton-of-Thought, the outline's points expanded as parallel branches", _graph_demo),
    ("7. an agent with tools: scored tool decisions with a calibrated confidence on the small model", _agent_demo),
    ("8. routing: each decision is data (backend, deciding policy, reason, trail)", _routing_demo),
    ("9. one agent step escalated to a second tier; a private task kept on the device", _escalation_demo),
    ("10. a long system prompt pinned: its KV state kept on disk for the next process", _pinned_prefix),
]


def run_demo(out: TextIO, model: str = DEFAULT_MODEL) -> int:
    say = _Out(out)
    _model_header(model, say)
    with SyncOrchestrator({model: model}, engine_config=EngineConfig(n_ctx=4096, max_sequences=16)) as orch:
        engine = orch.engine()
        say(f"   KV cache: {engine.kv_bytes_per_token} bytes/token (f16); {engine.stats().n_ctx} cells shared by 16 sequences")
        for title, section in _SECTIONS:
            say(f"\n== {title}")
            section(orch, say)
        s = engine.stats()
        say(
            f"\n== engine: {s.decode_steps} batched steps, prefill computed {s.prefill_computed_tokens} tokens, "
            f"reused {s.prefill_reused_tokens}; {s.cached_prefixes} cached prefixes"
        )
        threads = ", ".join(f"{rows} -> {n}" for rows, n in s.step_threads.items())
        say(f"   rows per step -> threads, chosen by measured step times (EngineConfig.thread_policy): {threads}")
    return 0
