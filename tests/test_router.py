"""The Router and Hedged wrappers on fakes (and one cascade on the real smollm2-135m)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from orchestrator.routing.backend_stats import BackendStats, Measured
from orchestrator.backends.base import complete
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import (
    ConfigError,
    EgressRefusedError,
    RemoteServerError,
    RemoteUnavailableError,
    RoutingError,
    StreamBrokenError,
)
from orchestrator.taskgraph.graph import Generate, TaskGraph
from orchestrator.routing.hedge import Hedged
from orchestrator.routing.router import Router, backend_available
from orchestrator.taskgraph.scheduler import Runner
from orchestrator.types import (
    Choice,
    Completion,
    GenerationRequest,
    RouteDecision,
    Timings,
    TokenDelta,
)
from policies.budgets import BudgetPolicy
from policies.cascade import CascadePolicy, CascadeSettings
from policies.connectivity import ConnectivityPolicy
from policies.privacy import PrivacyPolicy

GRANT = PrivacyPolicy(allow_egress=True)


class Located(ScriptedBackend):
    """A scripted backend that says where it runs and whether it is up."""

    def __init__(self, replies, *, name: str, location: str = "local", available: bool = True, delay: float = 0.0) -> None:
        super().__init__(replies, name=name, delay=delay)
        self.location = location
        self.available = available


class Down:
    """A remote whose every request fails as unreachable, before any token."""

    location = "remote"

    def __init__(self, name: str = "down") -> None:
        self.name = name
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        self.requests.append(request)
        raise RemoteUnavailableError(f"{self.name}: connection refused", endpoint="http://127.0.0.1:9")
        yield  # pragma: no cover  (makes this an async generator)


class WithLogprobs:
    """A small local model whose answer carries the given token log-probabilities."""

    location = "local"

    def __init__(self, text: str, logprobs: Sequence[float] | None, *, name: str = "small", timings: Timings | None = None) -> None:
        self.name, self.text, self.logprobs, self.timings = name, text, logprobs, timings or Timings()
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        self.requests.append(request)
        yield TokenDelta(index=0, text=self.text)
        lp = tuple(self.logprobs) if self.logprobs is not None and request.logprobs else None
        yield Completion(model=self.name, choices=(Choice(index=0, text=self.text, tokens=len(self.text.split()), finish_reason="stop", logprobs=lp),),
                         timings=self.timings)


class Stuck:
    """Never answers until cancelled; says whether it was."""

    location = "local"

    def __init__(self, name: str = "stuck") -> None:
        self.name = name
        self.cancelled = False
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        self.requests.append(request)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        yield  # pragma: no cover


def req(text: str = "What is the capital of France?", max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(prompt=text, max_tokens=max_tokens)


def go(backend, request: GenerationRequest) -> Completion:
    return anyio.run(complete, backend, request)


# ---------------------------------------------------------------- privacy, connectivity, fallback


def test_default_router_never_sends_to_a_remote_and_records_the_decision():
    local, remote = Located(["Paris"], name="small"), Located(["Paris!"], name="remote", location="remote")
    seen: list[RouteDecision] = []
    router = Router([remote, local], on_decision=seen.append)
    out = go(router, req())
    assert out.text == "Paris" and not remote.requests
    assert out.route is not None and out.route.backend == "small"
    assert out.route.trail[0].policy == "privacy" and out.route.trail[0].forbidden == ("remote",)
    assert seen == [out.route]


def test_private_data_with_remote_only_is_refused_before_the_remote_is_called():
    remote = Located(["never"], name="remote", location="remote")
    router = Router([remote], policies=[GRANT, ConnectivityPolicy()])
    with pytest.raises(EgressRefusedError) as err:
        go(router, req("my card is 4111 1111 1111 1111, is it valid?"))
    assert err.value.data_classes == ("payment_card",) and remote.requests == []
    labelled = router.labelled("medical")
    with pytest.raises(EgressRefusedError):
        go(labelled, req("an ordinary question"))
    assert remote.requests == []
    assert go(router, req("an ordinary question")).text == "never"  # the same router without the label may go out


def test_decide_runs_nothing():
    local, remote = Located([], name="small"), Located([], name="remote", location="remote")
    d = Router([local, remote], policies=[GRANT, ConnectivityPolicy(), BudgetPolicy(prefer="cost")]).decide(req())
    assert d.backend == "small" and d.policy == "budget" and "lowest predicted cost" in d.reason
    assert local.requests == [] and remote.requests == []


def test_unavailable_remote_is_skipped_and_a_failing_one_falls_back():
    local = Located(["local answer", "local answer"], name="small")
    remote = Located(["x"], name="remote", location="remote", available=False)
    out = go(Router([remote, local], policies=[GRANT, ConnectivityPolicy()]), req())
    assert out.text == "local answer" and not remote.requests and "down: remote" in out.route.trail[1].reason
    down = Down()
    out = go(Router([down, local], policies=[GRANT, ConnectivityPolicy()]), req())
    assert out.text == "local answer" and len(down.requests) == 1
    assert out.route.backend == "small" and out.route.trail[-1].action == "fallback" and "connection refused" in out.route.trail[-1].reason


def test_fallback_never_reaches_a_backend_a_policy_forbade():
    local = Located(["local"], name="small")
    fast_down = Down("fast")
    slow = Located(["slow remote"], name="slow", location="remote")
    stats = BackendStats(priors={
        "fast": Measured(ttft_s=0.1, tok_s=500.0), "slow": Measured(ttft_s=5.0, tok_s=10.0), "small": Measured(ttft_s=0.2, tok_s=50.0),
    })
    router = Router([local, fast_down, slow], stats=stats, policies=[GRANT, ConnectivityPolicy(), BudgetPolicy(max_latency_s=2.0, prefer="latency")])
    out = go(router, req(max_tokens=16))
    assert out.text == "local" and slow.requests == []  # slow was over the latency budget
    assert [s.action for s in out.route.trail] == ["pass", "pass", "pick", "fallback"]


def test_fallback_exhausted_raises_the_remote_error():
    router = Router([Down("a"), Down("b")], policies=[GRANT])
    with pytest.raises(RemoteUnavailableError):
        go(router, req())


class Breaks:
    """A remote whose stream breaks (``StreamBrokenError``) after ``pieces`` tokens."""

    location = "remote"

    def __init__(self, pieces: Sequence[str], name: str = "breaks") -> None:
        self.name, self.pieces = name, list(pieces)
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
        self.requests.append(request)
        for piece in self.pieces:
            yield TokenDelta(index=0, text=piece)
        raise StreamBrokenError(f"{self.name}: the connection broke mid-reply", partial_text="".join(self.pieces))


def test_a_stream_broken_before_any_token_falls_back_but_never_after_one():
    local = Located(["local answer"], name="small")
    out = go(Router([Breaks([]), local], policies=[GRANT, ConnectivityPolicy()]), req())
    assert out.text == "local answer" and out.route.trail[-1].action == "fallback" and "broke" in out.route.trail[-1].reason
    spoken, local = Breaks(["Par"]), Located(["local answer"], name="small")
    with pytest.raises(StreamBrokenError) as info:
        go(Router([spoken, local], policies=[GRANT, ConnectivityPolicy()]), req())
    assert info.value.partial_text == "Par" and local.requests == []  # the caller saw text: never re-sent


def test_a_remote_servers_streamed_error_falls_back_to_the_next_tier():
    """llama.cpp's `error:` line was a protocol error that the router did not fall back on."""
    from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint
    from orchestrator.backends.retry import Retry
    from tests.fault_server import FaultServer, llama_error_stream

    message = "slot unavailable: the server is shutting down " * 3
    error = {"code": 503, "message": message, "type": "unavailable_error"}
    with FaultServer([llama_error_stream(error), llama_error_stream(error, [{"choices": [{"index": 0, "text": "Li"}]}])]) as server:
        remote = RemoteBackend(RemoteEndpoint(base_url=server.base_url, model="m", name="cloud", retry=Retry(attempts=1)))
        local = Located(["local answer"], name="small")
        out = go(Router([remote, local], policies=[GRANT, ConnectivityPolicy()]), req())
        assert out.text == "local answer" and out.route.backend == "small" and message.strip() in out.route.trail[-1].reason
        with pytest.raises(RemoteServerError, match="shutting down"):  # text had reached the caller
            go(Router([remote, Located(["local answer"], name="small")], policies=[GRANT, ConnectivityPolicy()]), req())
    assert len(server.seen) == 2


def test_a_remote_servers_error_about_the_request_does_not_fall_back():
    class Refuses(Down):
        async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | Completion]:
            self.requests.append(request)
            raise RemoteServerError("the request exceeds the available context size", status=400)
            yield  # pragma: no cover

    local = Located(["local answer"], name="small")
    with pytest.raises(RemoteServerError, match="context size"):
        go(Router([Refuses(), local], policies=[GRANT, ConnectivityPolicy()]), req())
    assert local.requests == []


def test_router_checks_its_configuration():
    with pytest.raises(ConfigError, match="PrivacyPolicy"):
        Router([Located([], name="a")], policies=[ConnectivityPolicy()])
    with pytest.raises(ConfigError, match="two routed backends"):
        Router([Located([], name="a"), Located([], name="a")])
    with pytest.raises(ConfigError):
        Router([])
    with pytest.raises(ConfigError):
        Router([Located([], name="a", location="moon")])
    with pytest.raises(ConfigError):
        Router([Located([], name="a")], labels=["Bad Label"])


def test_availability_probe_reads_attributes_and_methods():
    class Method:
        def available(self) -> bool:
            return False

    class Broken:
        @property
        def available(self) -> bool:
            raise RuntimeError("probe failed")

    assert backend_available(object()) and not backend_available(Method()) and not backend_available(Broken())


def test_stats_are_updated_from_completions():
    small = WithLogprobs("ok", None, timings=Timings(ttft_s=0.1, decode_tokens=10, decode_tok_s=50.0, prefill_tokens=10, energy_j=2.0))
    router = Router([small])
    go(router, req())
    m = router.stats.get("small")
    assert (m.ttft_s, m.tok_s, m.energy_j_per_token, m.samples) == (0.1, 50.0, 0.1, 1)
    go(router, req())
    assert router.stats.get("small").samples == 2
    again = BackendStats.from_json(router.stats.to_json())
    assert again.get("small") == router.stats.get("small")


# ---------------------------------------------------------------- cascade


def cascade_router(small, large, *, threshold: float = 0.6, validator=None) -> Router:
    return Router([small, large], policies=[PrivacyPolicy(), CascadePolicy(CascadeSettings(threshold=threshold))], validator=validator)


def test_cascade_keeps_a_confident_answer():
    small, large = WithLogprobs("Paris", [math.log(0.95)] * 3), Located(["large"], name="large")
    out = go(cascade_router(small, large), req())
    assert out.text == "Paris" and not large.requests
    assert small.requests[0].logprobs is True  # the cascade asked for log-probabilities
    assert out.route.policy == "cascade" and out.route.trail[-1].action == "keep" and "0.950" in out.route.reason


def test_cascade_escalates_a_weak_answer_with_the_trail():
    small, large = WithLogprobs("Lyon?", [math.log(0.2)] * 3), Located(["Paris"], name="large")
    out = go(cascade_router(small, large), req())
    assert out.text == "Paris" and len(large.requests) == 1 and large.requests[0].logprobs is False
    assert out.route.backend == "large"
    assert [s.action for s in out.route.trail][-2:] == ["pick", "escalate"]
    assert "confidence 0.200 < threshold 0.600" in out.route.reason


def test_cascade_escalates_without_logprobs_and_on_a_failed_validation():
    large = Located(["big", "big"], name="large")
    out = go(cascade_router(WithLogprobs("x", None), large), req())
    assert out.route.backend == "large" and "no log-probabilities" in out.route.reason
    must_be_json = lambda c: None if c.text.startswith("{") else "not JSON"
    out = go(cascade_router(WithLogprobs("sure", [0.0]), large, validator=must_be_json), req())
    assert out.route.backend == "large" and "not JSON" in out.route.reason


def test_cascade_keeps_the_small_answer_when_the_target_is_down():
    small, down = WithLogprobs("maybe", [math.log(0.1)]), Down("big")
    router = Router([small, down], policies=[GRANT, CascadePolicy()])
    out = go(router, req())
    assert out.text == "maybe" and len(down.requests) == 1
    assert out.route.backend == "small" and "unavailable" in out.route.reason


@pytest.mark.model
def test_cascade_on_smollm2_reads_the_engines_logprobs(smollm2):
    from orchestrator.backends.local import LocalBackend

    large = Located(["large answer"], name="large")
    keep_all = cascade_router(LocalBackend(smollm2), large, threshold=0.0)
    out = go(keep_all, req("The capital of France is", max_tokens=4))
    # Threshold 0 keeps any answer that has log-probabilities: the engine must have given them.
    assert out.route.backend == smollm2.name and not large.requests, out.route
    assert out.choices[0].logprobs is not None and len(out.choices[0].logprobs) == out.tokens
    escalate_all = cascade_router(LocalBackend(smollm2), large, threshold=1.0)
    out = go(escalate_all, req("The capital of France is", max_tokens=4))
    assert out.text == "large answer" and out.route.trail[-1].action == "escalate"


# ---------------------------------------------------------------- graph nodes


def test_routing_per_graph_node_and_explicit_bypass():
    local, remote = Located(lambda r: "local:" + r.prompt, name="small"), Located(lambda r: "remote:" + r.prompt, name="remote", location="remote")
    g = TaskGraph("g")
    g.add("routed", Generate("hi", backend="auto"))
    g.add("private", Generate("mail bob@example.org", backend="auto"))
    g.add("named", Generate("hi", backend="remote"))  # names a backend: no routing
    router = Router([remote, local], policies=[GRANT, ConnectivityPolicy()])
    result = anyio.run(lambda: Runner({"auto": router, "remote": remote, "small": local}).run(g))
    assert result.outputs == {"routed": "remote:hi", "private": "local:mail bob@example.org", "named": "remote:hi"}
    nodes = result.summary()["nodes"]
    assert nodes["routed"]["route"] == {"backend": "remote", "policy": "default", "reason": "no policy picked; the first allowed backend in preference order"}
    assert nodes["private"]["route"]["backend"] == "small"
    assert "route" not in nodes["named"]


# ---------------------------------------------------------------- hedging


def test_hedge_keeps_a_fast_primary_and_never_starts_the_secondary():
    primary, secondary = Located(["fast"], name="p"), Located(["slow"], name="s")
    out = go(Hedged(primary, secondary, deadline_s=30.0), req())
    assert out.text == "fast" and secondary.requests == []
    assert out.route.backend == "p" and out.route.trail[-1].reason == "first valid answer came from the primary"


def test_hedge_starts_the_secondary_after_the_deadline_and_cancels_the_primary():
    primary, secondary = Stuck("p"), Located(["rescue"], name="s")
    out = go(Hedged(primary, secondary, deadline_s=0.01), req())
    assert out.text == "rescue" and primary.cancelled
    assert [s.action for s in out.route.trail] == ["hedge", "pick"] and out.route.backend == "s"


def test_hedge_cancels_the_secondary_when_the_primary_wins_late():
    primary = Located(["late primary"], name="p", delay=0.02)
    secondary = Stuck("s")
    out = go(Hedged(primary, secondary, deadline_s=0.0), req())
    assert out.text == "late primary" and secondary.cancelled and len(secondary.requests) == 1


def test_hedge_skips_an_invalid_primary_at_once_and_reports_double_failure():
    must_be_number = lambda c: None if c.text.strip().isdigit() else "not a number"
    primary, secondary = Located(["words"], name="p"), Located(["42"], name="s")
    out = go(Hedged(primary, secondary, deadline_s=30.0, validator=must_be_number), req())
    assert out.text == "42" and [s.action for s in out.route.trail] == ["pass", "pick"]
    with pytest.raises(RoutingError, match="not a number"):
        go(Hedged(Located(["a"], name="p"), Down("s"), deadline_s=30.0, validator=must_be_number), req())


def test_hedge_appends_to_a_routed_decision():
    router = Router([Located(["routed"], name="small")])
    out = go(Hedged(router, Located(["other"], name="s"), deadline_s=30.0), req())
    assert out.route.trail[0].policy == "privacy" and out.route.trail[-1].policy == "hedge"
    with pytest.raises(ConfigError):
        Hedged(router, router, deadline_s=1.0)


def test_egress_refusal_opens_no_socket_to_a_real_remote_backend():
    import socket

    from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        remote = RemoteBackend(RemoteEndpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m"))
        router = Router([remote], policies=[GRANT, ConnectivityPolicy()])
        with pytest.raises(EgressRefusedError):
            go(router, req("IBAN GB82 WEST 1234 5698 7654 32"))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_agent_steps_are_routed_and_private_tasks_stay_on_the_device() -> None:
    import json

    from agents.agent import Agent
    from orchestrator.agent_runner import run_agent
    from tools.tool import tool

    @tool
    def lookup(name: str) -> str:
        """Look a contact up."""
        return f"{name}: room 12"

    def agent_reply(request: GenerationRequest) -> str:  # a call, then an answer once a tool result is in
        done = any(m.role == "tool" for m in request.messages or ())
        return json.dumps({"answer": "room 12"} if done else {"calls": [{"name": "lookup", "arguments": {"name": "Ana"}}]})

    local = Located(agent_reply, name="small", location="local")
    remote = Located(agent_reply, name="cloud", location="remote")
    decisions: list = []
    router = Router([remote, local], policies=[PrivacyPolicy(allow_egress=True), ConnectivityPolicy()], on_decision=decisions.append)
    agent = Agent("a", "Be brief.", tools=(lookup,), model="auto")

    result = anyio.run(lambda: run_agent(agent, "Where is Ana?", {"auto": router}))
    assert result.output == "room 12" and len(remote.requests) == 2 and local.requests == []  # both steps went out
    result = anyio.run(lambda: run_agent(agent, "Where is Ana? Her mail is ana@example.org", {"auto": router}))
    assert result.output == "room 12" and len(remote.requests) == 2 and len(local.requests) == 2  # both steps stayed local
    assert [d.backend for d in decisions] == ["cloud", "cloud", "small", "small"]
    assert decisions[-1].data_classes == ("email",)
